"""Everything a request handler may call, built once per application by :func:`build_services`.

Handlers reach services through ``request.app.state.services``; nothing is a module global.
"""

from __future__ import annotations

from dataclasses import dataclass

from portside.auth.access import AccessPolicy, AdminOnlyPolicy
from portside.auth.accounts import Accounts
from portside.auth.tokens import TokenService
from portside.config import Settings
from portside.db.engine import Database
from portside.registry.blobs import Blobs
from portside.registry.manifests import Manifests
from portside.registry.repositories import Repositories
from portside.registry.uploads import Uploads
from portside.storage.base import StorageDriver
from portside.storage.factory import create_driver

__all__ = ["Services", "build_services"]


@dataclass
class Services:
    settings: Settings
    db: Database
    storage: StorageDriver
    repositories: Repositories
    blobs: Blobs
    uploads: Uploads
    manifests: Manifests
    accounts: Accounts
    tokens: TokenService
    policy: AccessPolicy

    async def close(self) -> None:
        await self.uploads.close()
        await self.storage.close()
        await self.db.close()


def build_services(settings: Settings) -> Services:
    db = Database(settings.database_url, settings.database.pool_size)
    storage = create_driver(settings)
    ttl = settings.registry.cache_ttl_seconds
    repositories = Repositories(db, ttl)
    blobs = Blobs(db, storage, repositories, ttl)
    return Services(
        settings=settings,
        db=db,
        storage=storage,
        repositories=repositories,
        blobs=blobs,
        uploads=Uploads(db, storage, blobs, settings.registry.upload_purge_age_seconds),
        manifests=Manifests(db, storage, repositories, settings.registry.max_manifest_bytes, ttl),
        accounts=Accounts(db),
        tokens=TokenService(
            db,
            settings.auth.token_issuer,
            settings.auth.token_service,
            settings.auth.token_ttl_seconds,
        ),
        policy=AdminOnlyPolicy(),
    )
