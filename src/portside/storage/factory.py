"""Choosing the storage driver by name. An unknown name is an error, never a silent fallback."""

from __future__ import annotations

from portside.config import Settings
from portside.storage.base import StorageDriver

__all__ = ["create_driver"]


def create_driver(settings: Settings) -> StorageDriver:
    driver = settings.storage.driver
    if driver == "filesystem":
        from portside.storage.filesystem import FilesystemDriver

        return FilesystemDriver(settings.storage_root)
    if driver == "memory":
        from portside.storage.memory import MemoryDriver

        return MemoryDriver()
    if driver == "s3":
        from portside.storage.s3 import S3Driver

        return S3Driver(settings.storage.s3)
    raise ValueError(f"unknown storage driver {driver!r}")
