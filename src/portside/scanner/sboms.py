"""SBOM accessories: an SBOM of an image stored next to it as an OCI artifact whose ``subject``
is the image, as Harbor stores the SBOMs it generates. So the referrers API lists it, ``oras
discover`` finds it, and the artifact listing shows it as an ``sbom.harbor`` accessory.

Harbor's shape is kept exactly (its UI and tools look for it): an image manifest whose config
media type is ``application/vnd.goharbor.harbor.sbom.v1``, with one layer of type
``application/vnd.oci.image.layer.v1.tar`` holding the SBOM JSON itself, and Harbor's
annotations. The SBOM's format is named by ``artifactType`` too, so OCI 1.1 clients that filter
referrers by type find SPDX and CycloneDX documents without opening them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json

from sqlalchemy import Connection

from portside.db.engine import Database
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest
from portside.oci.errors import RegistryError
from portside.registry.blobs import Blobs
from portside.registry.manifests import Manifests, Reference
from portside.scanner.sbom import (
    CYCLONEDX_MEDIA_TYPE,
    HARBOR_SBOM_ARTIFACT_TYPE,
    HARBOR_SBOM_LAYER_MEDIA_TYPE,
    harbor_sbom_annotations,
)
from portside.storage.base import StorageDriver
from portside.storage.layout import blob_path

__all__ = ["SbomAccessories"]

_DESCRIPTIONS = {CYCLONEDX_MEDIA_TYPE: "CycloneDX JSON SBOM"}
_EMPTY_CONFIG = b"{}"


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


class SbomAccessories:
    def __init__(
        self, db: Database, storage: StorageDriver, blobs: Blobs, manifests: Manifests
    ) -> None:
        self._db = db
        self._storage = storage
        self._blobs = blobs
        self._manifests = manifests

    async def _store_blob(self, repository: str, data: bytes) -> Digest:
        digest = Digest.of(data)
        await self._storage.put_new(blob_path(digest), data)

        def link(connection: Connection) -> None:
            self._blobs.link(connection, repository, digest, len(data))

        await self._db.write(link)
        return digest

    async def store(
        self,
        repository: str,
        subject_digest: str,
        subject_media_type: str,
        subject_size: int,
        document: bytes,
        media_type: str,
        created: dt.datetime,
    ) -> Digest:
        """Push ``document`` as an SBOM accessory of the subject; returns its manifest digest.
        Counts towards the project's quota like any push (raises ``QuotaExceeded``)."""
        config = await self._store_blob(repository, _EMPTY_CONFIG)
        layer = await self._store_blob(repository, document)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "artifactType": media_type,
            "config": {
                "mediaType": HARBOR_SBOM_ARTIFACT_TYPE,
                "digest": str(config),
                "size": len(_EMPTY_CONFIG),
            },
            "layers": [
                {
                    "mediaType": HARBOR_SBOM_LAYER_MEDIA_TYPE,
                    "digest": str(layer),
                    "size": len(document),
                }
            ],
            "subject": {
                "mediaType": subject_media_type,
                "digest": subject_digest,
                "size": subject_size,
            },
            "annotations": harbor_sbom_annotations(
                created, _DESCRIPTIONS.get(media_type, "SPDX JSON SBOM")
            ),
        }
        raw = _json(manifest)
        pushed = await self._manifests.put(
            repository, Reference(None, Digest.of(raw)), raw, mt.OCI_MANIFEST
        )
        return pushed.digest

    async def remove(self, repository: str, digest: str) -> None:
        """Delete an SBOM accessory replaced by a newer one; gone already is fine."""
        with contextlib.suppress(RegistryError):
            await self._manifests.delete(repository, Reference(None, Digest.parse(digest)))
