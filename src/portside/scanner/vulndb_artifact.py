"""Air-gapped updates of the vulnerability database: advisories pushed to this registry as an
OCI artifact, then imported from there.

Any client can push them, for example ``oras push registry/library/vulndb:2026-11 osv.zip``:
each layer is a zip of OSV records (as osv.dev's per-ecosystem downloads are) or a single OSV
record in JSON or YAML. The layers are copied from storage into a private temporary folder
under names we choose (never from the artifact), then imported in one transaction, so a
server sees either the old advisories or all of the new ones.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from sqlalchemy import select

from portside.db.engine import Database
from portside.db.tables import manifests, repositories, tags
from portside.oci.digest import Digest, DigestError
from portside.oci.errors import RegistryError
from portside.oci.names import validate_name, validate_tag
from portside.scanner.vulndb import ImportStats, VulnDB
from portside.storage.base import PathNotFound, StorageDriver
from portside.storage.layout import blob_path

__all__ = ["VulnDBArtifactError", "import_from_registry", "parse_artifact_reference"]

MAX_MANIFEST_BYTES = 4 << 20
MAX_LAYERS = 1000
MAX_TOTAL_BYTES = 4 << 30
_ZIP_MAGIC = b"PK\x03\x04"


class VulnDBArtifactError(Exception):
    """The artifact does not exist or is not a set of OSV advisories."""


def parse_artifact_reference(text: str) -> tuple[str, str]:
    """``project/repo:tag`` or ``project/repo@sha256:…`` to (repository, tag or digest)."""
    if "@" in text:
        name, _, reference = text.partition("@")
    else:
        slash, colon = text.rfind("/"), text.rfind(":")
        if colon <= slash:
            raise VulnDBArtifactError(f"{text[:200]!r}: expected REPOSITORY:TAG or @DIGEST")
        name, reference = text[:colon], text[colon + 1 :]
    try:
        validate_name(name)
    except RegistryError:
        raise VulnDBArtifactError(f"{name[:200]!r} is not a repository name") from None
    if not reference:
        raise VulnDBArtifactError("the tag or digest is empty")
    return name, reference


def _check_reference(repository: str, reference: str) -> None:
    """Both parts must be valid names before they reach a query (hostile text, NULs …)."""
    try:
        validate_name(repository)
        if ":" not in reference:
            validate_tag(reference)
    except RegistryError:
        raise VulnDBArtifactError(
            f"{repository[:200]!r}:{reference[:100]!r} is not a valid repository and tag"
        ) from None


async def _manifest_digest(db: Database, repository: str, reference: str) -> Digest:
    if ":" in reference:
        try:
            wanted = Digest.parse(reference)
        except DigestError:
            raise VulnDBArtifactError(f"{reference[:200]!r} is not a digest") from None
        query = (
            select(manifests.c.digest)
            .join(repositories, repositories.c.id == manifests.c.repository_id)
            .where(repositories.c.name == repository, manifests.c.digest == str(wanted))
        )
    else:
        query = (
            select(manifests.c.digest)
            .join(tags, tags.c.manifest_id == manifests.c.id)
            .join(repositories, repositories.c.id == tags.c.repository_id)
            .where(repositories.c.name == repository, tags.c.name == reference)
        )
    found = await db.read(lambda c: c.scalar(query))
    if found is None:
        raise VulnDBArtifactError(f"no artifact {repository}:{reference} in this registry")
    return Digest.parse(found)


def _layers(raw: bytes) -> list[tuple[Digest, int]]:
    try:
        body = json.loads(raw)
        layers = [(Digest.parse(item["digest"]), int(item["size"])) for item in body["layers"]]
    except (ValueError, KeyError, TypeError, DigestError):
        raise VulnDBArtifactError("the artifact is not an image manifest with layers") from None
    if not layers or len(layers) > MAX_LAYERS:
        raise VulnDBArtifactError(f"the artifact must have 1 to {MAX_LAYERS} layers")
    if sum(size for _, size in layers) > MAX_TOTAL_BYTES:
        raise VulnDBArtifactError("the artifact is too large to be an advisory database")
    return layers


async def _copy(storage: StorageDriver, digest: Digest, folder: Path, number: int) -> None:
    """Copy a layer to ``folder`` under a name that tells the importer its format."""
    head = b""
    target = folder / f"layer-{number}.part"
    written = 0
    with target.open("wb") as out:
        async for chunk in storage.reader(blob_path(digest)):
            data = bytes(chunk)
            if len(head) < 4:
                head += data[:4]
            written += len(data)
            if written > MAX_TOTAL_BYTES:
                raise VulnDBArtifactError("the artifact is too large to be an advisory database")
            await asyncio.to_thread(out.write, data)
    first = head.lstrip()[:1]
    if head.startswith(_ZIP_MAGIC):
        suffix = ".zip"
    elif first == b"{":
        suffix = ".json"
    else:
        suffix = ".yaml"  # anything else is tried as a YAML record, and counted malformed
    target.rename(target.with_suffix(suffix))


async def import_from_registry(
    db: Database, storage: StorageDriver, vulndb: VulnDB, repository: str, reference: str
) -> ImportStats:
    """Import the advisories held by ``repository:reference`` (a tag or a digest)."""
    _check_reference(repository, reference)
    digest = await _manifest_digest(db, repository, reference)
    try:
        raw = await storage.get(blob_path(digest))
        if len(raw) > MAX_MANIFEST_BYTES:
            raise VulnDBArtifactError("the manifest is too large")
        with tempfile.TemporaryDirectory(prefix="portside-vulndb-") as folder:
            for number, (layer, _size) in enumerate(_layers(raw)):
                await _copy(storage, layer, Path(folder), number)
            return await vulndb.import_path(Path(folder), source=f"registry: {repository}@{digest}")
    except PathNotFound:
        raise VulnDBArtifactError("the artifact's content is missing from storage") from None
