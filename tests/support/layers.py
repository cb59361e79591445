"""Image layers made in the test: real tar archives, gzip- or zstd-compressed or plain."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Mapping, Sequence

from tests.support.oci import OCI_CONFIG, Blob, Manifest, image_manifest, to_json

__all__ = ["dist_info", "image_of", "tar_layer"]

LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


def tar_layer(files: Mapping[str, bytes], compression: str = "gzip") -> Blob:
    """A layer holding ``files`` (path -> content); a ``.wh.`` name is a whiteout, as in any
    image. Parent directories are added first, as real layers have them."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories: set[str] = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[path]))
    data = raw.getvalue()
    if compression == "gzip":
        data = gzip.compress(data, mtime=0)
    elif compression == "zstd":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    return Blob(data, LAYER_TYPES[compression])


def image_of(layers: Sequence[Blob]) -> Manifest:
    """An OCI image over ``layers`` with a real (unique) image config."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"nonce": os.urandom(8).hex()}},
    }
    return image_manifest(config=Blob(to_json(config), OCI_CONFIG), layers=layers)


def dist_info(
    name: str, version: str, site: str = "usr/lib/python3.11/site-packages"
) -> dict[str, bytes]:
    """The METADATA of an installed Python distribution, as pip writes it."""
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test\n\n"
    folder = f"{site}/{name.replace('-', '_')}-{version}.dist-info"
    return {
        f"{folder}/METADATA": metadata.encode(),
        f"{folder}/RECORD": b"",
        f"{folder}/INSTALLER": b"pip\n",
    }


def json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()
