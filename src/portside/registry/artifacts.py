"""Artifact and repository queries for the management API, and artifact type classification.

Listing is built to cost one page, whatever the registry holds: the page of manifests is
chosen first (``ix_manifests_repository_created`` serves the default newest-first order), and
tags, labels, children and accessories are then fetched for that page's ids only.

An artifact's type comes from what the manifest row records (media type, ``artifactType`` or
the config's media type): no manifest or config has to be read to list artifacts by type.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    exists,
    func,
    not_,
    or_,
    select,
)

from portside.db.tables import (
    artifact_labels,
    labels,
    manifest_references,
    manifests,
    repositories,
    tags,
)
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest, DigestError
from portside.oci.errors import RegistryError
from portside.registry.cache import LRUCache
from portside.registry.manifests import Manifests
from portside.storage.base import PathNotFound, StorageDriver
from portside.storage.layout import blob_path

__all__ = [
    "LISTED",
    "Accessory",
    "Artifact",
    "ArtifactContent",
    "ArtifactDetails",
    "ImageFacts",
    "Includes",
    "LabelRow",
    "RepositoryRow",
    "TagRow",
    "accessory_type",
    "artifact_by_digest",
    "artifact_by_tag",
    "artifact_details",
    "artifact_type",
    "count_listed",
    "list_artifacts",
    "list_repositories",
    "repository_by_name",
    "type_condition",
]

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
COSIGN_TYPES = frozenset(
    {
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        "application/vnd.dev.cosign.simplesigning.v1+json",
    }
)
SBOM_MARKERS = ("spdx", "cyclonedx", "harbor.sbom", "syft")
IMAGE_CONFIGS = frozenset({mt.OCI_IMAGE_CONFIG, mt.DOCKER_CONTAINER_CONFIG})
TYPES = ("IMAGE", "CHART", "SBOM", "SIGNATURE", "OCI", "UNKNOWN")


def artifact_type(
    media_type: str, artifact_type_value: str | None, config_media_type: str | None
) -> str:
    """Harbor's artifact type. An index is an IMAGE (its children are listed as references)."""
    if media_type in mt.INDEXES:
        return "IMAGE"
    kind = (artifact_type_value or config_media_type or "").lower()
    if kind == HELM_CONFIG:
        return "CHART"
    if kind in COSIGN_TYPES or "cosign" in kind:
        return "SIGNATURE"
    if any(marker in kind for marker in SBOM_MARKERS):
        return "SBOM"
    if kind in IMAGE_CONFIGS:
        return "IMAGE"
    if kind:
        return "OCI"
    return "UNKNOWN"


def accessory_type(kind: str) -> str:
    """Harbor's accessory type for a referrer of this artifact type."""
    if kind == "SIGNATURE":
        return "signature.cosign"
    if kind == "SBOM":
        return "sbom.harbor"
    return "subject.accessory"


def type_condition(kind: str) -> ColumnElement[bool]:
    """SQL for ``type=<kind>``, the same decision as :func:`artifact_type`."""
    column = func.lower(func.coalesce(manifests.c.artifact_type, manifests.c.config_media_type, ""))
    is_index = manifests.c.media_type.in_(sorted(mt.INDEXES))
    chart = column == HELM_CONFIG
    signature = or_(column.in_(sorted(COSIGN_TYPES)), column.contains("cosign"))
    sbom = or_(*(column.contains(marker) for marker in SBOM_MARKERS))
    image = or_(is_index, column.in_(sorted(IMAGE_CONFIGS)))
    kind = kind.upper()
    if kind == "IMAGE":
        return image
    if kind == "CHART":
        return and_(not_(is_index), chart)
    if kind == "SIGNATURE":
        return and_(not_(is_index), not_(chart), signature)
    if kind == "SBOM":
        return and_(not_(is_index), not_(chart), not_(signature), sbom)
    others = and_(not_(image), not_(chart), not_(signature), not_(sbom))
    if kind == "OCI":
        return and_(others, column != "")
    if kind == "UNKNOWN":
        return and_(others, column == "")
    raise ValueError(f"unknown artifact type; one of {', '.join(TYPES)}")


# -- repositories -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    id: int
    project_id: int | None
    name: str
    description: str | None
    artifact_count: int
    pull_count: int
    created_at: dt.datetime
    updated_at: dt.datetime | None


_REPOSITORY_COLUMNS = (
    repositories.c.id,
    repositories.c.project_id,
    repositories.c.name,
    repositories.c.description,
    repositories.c.pull_count,
    repositories.c.created_at,
    repositories.c.updated_at,
)
REPOSITORY_SORT = {
    "name": repositories.c.name,
    "creation_time": repositories.c.created_at,
    "update_time": repositories.c.updated_at,
    "pull_count": repositories.c.pull_count,
    "id": repositories.c.id,
}


def _repository_rows(connection: Connection, rows: Sequence[Any]) -> list[RepositoryRow]:
    ids = [int(row.id) for row in rows]
    # One indexed count per repository of the page.
    counts = {repository_id: count_listed(connection, repository_id) for repository_id in ids}
    return [
        RepositoryRow(
            int(row.id),
            None if row.project_id is None else int(row.project_id),
            row.name,
            row.description,
            counts.get(int(row.id), 0),
            int(row.pull_count or 0),
            row.created_at,
            row.updated_at,
        )
        for row in rows
    ]


def list_repositories(
    connection: Connection,
    conditions: Sequence[ColumnElement[bool]],
    order: Sequence[Any],
    offset: int,
    limit: int,
) -> tuple[int, list[RepositoryRow]]:
    """One page of repositories (with their artifact counts) and how many match."""
    total = int(
        connection.scalar(select(func.count()).select_from(repositories).where(*conditions)) or 0
    )
    query = (
        select(*_REPOSITORY_COLUMNS).where(*conditions).order_by(*order).offset(offset).limit(limit)
    )
    return total, _repository_rows(connection, connection.execute(query).all())


def repository_by_name(connection: Connection, name: str) -> RepositoryRow | None:
    rows = connection.execute(select(*_REPOSITORY_COLUMNS).where(repositories.c.name == name)).all()
    found = _repository_rows(connection, rows)
    return found[0] if found else None


# -- artifacts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Artifact:
    id: int
    repository_id: int
    digest: str
    media_type: str
    artifact_type: str | None
    config_media_type: str | None
    size: int
    subject_digest: str | None
    annotations: dict[str, str]
    push_time: dt.datetime
    pull_time: dt.datetime | None

    @property
    def type(self) -> str:
        return artifact_type(self.media_type, self.artifact_type, self.config_media_type)


@dataclass(frozen=True, slots=True)
class TagRow:
    id: int
    artifact_id: int
    repository_id: int
    name: str
    push_time: dt.datetime


@dataclass(frozen=True, slots=True)
class LabelRow:
    id: int
    name: str
    description: str | None
    color: str | None
    scope: str
    project_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Child:
    parent_id: int
    child_id: int | None
    child_digest: str


@dataclass(frozen=True, slots=True)
class Accessory:
    artifact: Artifact
    subject_id: int
    subject_digest: str


@dataclass
class ArtifactDetails:
    """What a page of artifacts needs besides their rows, keyed by artifact id."""

    tags: dict[int, list[TagRow]] = field(default_factory=dict)
    labels: dict[int, list[LabelRow]] = field(default_factory=dict)
    children: dict[int, list[Child]] = field(default_factory=dict)
    accessories: dict[int, list[Accessory]] = field(default_factory=dict)


_ARTIFACT_COLUMNS = (
    manifests.c.id,
    manifests.c.repository_id,
    manifests.c.digest,
    manifests.c.media_type,
    manifests.c.artifact_type,
    manifests.c.config_media_type,
    manifests.c.size,
    manifests.c.subject_digest,
    manifests.c.annotations,
    manifests.c.created_at,
    manifests.c.pull_time,
)
ARTIFACT_SORT = {
    "push_time": manifests.c.created_at,
    "pull_time": manifests.c.pull_time,
    "size": manifests.c.size,
    "digest": manifests.c.digest,
    "id": manifests.c.id,
}


def _artifact(row: Any) -> Artifact:
    annotations: dict[str, str] = {}
    if row.annotations:
        try:
            loaded = json.loads(row.annotations)
            annotations = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            annotations = {}
    return Artifact(
        int(row.id),
        int(row.repository_id),
        row.digest,
        row.media_type,
        row.artifact_type,
        row.config_media_type,
        int(row.size),
        row.subject_digest,
        annotations,
        row.created_at,
        row.pull_time,
    )


def _listed_condition() -> ColumnElement[bool]:
    """What Harbor lists at the top level of a repository: no accessories (manifests with a
    subject), and no children of an index in the same repository unless they are tagged.

    The children are found once per query (not per row): the digests the repository's indexes
    reference. A correlated form made SQLite scan the repository for every row. The repository
    is the bound parameter ``listed_repository_id``.
    """
    parent = manifests.alias("parent_manifest")
    children = (
        select(manifest_references.c.digest)
        .join(parent, parent.c.id == manifest_references.c.manifest_id)
        .where(
            parent.c.repository_id == bindparam("listed_repository_id"),
            manifest_references.c.kind == "manifest",
        )
    )
    tagged = exists(select(1).where(tags.c.manifest_id == manifests.c.id))
    return and_(
        manifests.c.repository_id == bindparam("listed_repository_id"),
        manifests.c.subject_digest.is_(None),
        or_(manifests.c.digest.not_in(children), tagged),
    )


# Built once: a statement object memoizes its cache key (see db.queries).
LISTED = _listed_condition()
_COUNT_LISTED = select(func.count()).select_from(manifests).where(LISTED)
_DEFAULT_ORDER = (manifests.c.created_at.desc(), manifests.c.id.desc())
_DEFAULT_PAGE = (
    select(*_ARTIFACT_COLUMNS)
    .where(LISTED)
    .order_by(*_DEFAULT_ORDER)
    .limit(bindparam("page_limit"))
    .offset(bindparam("page_offset"))
)


def count_listed(connection: Connection, repository_id: int) -> int:
    return int(connection.scalar(_COUNT_LISTED, {"listed_repository_id": repository_id}) or 0)


def list_artifacts(
    connection: Connection,
    repository_id: int,
    conditions: Sequence[ColumnElement[bool]],
    order: Sequence[Any] | None,
    offset: int,
    limit: int,
) -> tuple[int, list[Artifact]]:
    """One page of the repository's listed artifacts, and how many there are. ``order`` None
    is newest first (the index order)."""
    params = {"listed_repository_id": repository_id, "page_limit": limit, "page_offset": offset}
    if not conditions:
        total = count_listed(connection, repository_id)
    else:
        count = select(func.count()).select_from(manifests).where(LISTED, *conditions)
        total = int(connection.scalar(count, params) or 0)
    if not conditions and order is None:
        query = _DEFAULT_PAGE
    else:
        query = (
            select(*_ARTIFACT_COLUMNS)
            .where(LISTED, *conditions)
            .order_by(*(order or _DEFAULT_ORDER))
            .limit(bindparam("page_limit"))
            .offset(bindparam("page_offset"))
        )
    return total, [_artifact(row) for row in connection.execute(query, params)]


def artifact_by_digest(connection: Connection, repository_id: int, digest: str) -> Artifact | None:
    row = connection.execute(
        select(*_ARTIFACT_COLUMNS).where(
            manifests.c.repository_id == repository_id, manifests.c.digest == digest
        )
    ).first()
    return None if row is None else _artifact(row)


def artifact_by_tag(connection: Connection, repository_id: int, tag: str) -> Artifact | None:
    row = connection.execute(
        select(*_ARTIFACT_COLUMNS)
        .join(tags, tags.c.manifest_id == manifests.c.id)
        .where(tags.c.repository_id == repository_id, tags.c.name == tag)
    ).first()
    return None if row is None else _artifact(row)


def tag_condition(term_kind: str, values: Sequence[str]) -> ColumnElement[bool]:
    """``tags=`` in ``q``: ``nil`` (untagged), ``*`` (tagged), a name, or ``~part``."""
    if term_kind == "exact" and values[0] == "nil":
        return not_(exists(select(1).where(tags.c.manifest_id == manifests.c.id)))
    if term_kind == "exact" and values[0] == "*":
        return exists(select(1).where(tags.c.manifest_id == manifests.c.id))
    if term_kind == "fuzzy":
        name = tags.c.name.contains(values[0], autoescape=True)
        return exists(select(1).where(tags.c.manifest_id == manifests.c.id, name))
    if term_kind == "exact":
        return exists(
            select(1).where(tags.c.manifest_id == manifests.c.id, tags.c.name == values[0])
        )
    if term_kind == "any":
        names = tags.c.name.in_(list(values))
        return exists(select(1).where(tags.c.manifest_id == manifests.c.id, names))
    raise ValueError("tags supports =name, =~part, =(a b), =nil and =*")


def label_condition(label_ids: Sequence[int], every: bool) -> ColumnElement[bool]:
    """``labels=`` in ``q``: artifacts carrying every (or any) of these label ids."""

    def carries(ids: Sequence[int]) -> ColumnElement[bool]:
        return exists(
            select(1).where(
                artifact_labels.c.manifest_id == manifests.c.id,
                artifact_labels.c.label_id.in_(list(ids)),
            )
        )

    if every:
        return and_(*(carries([label_id]) for label_id in label_ids))
    return carries(label_ids)


@dataclass(frozen=True, slots=True)
class Includes:
    """Which related records :func:`artifact_details` fetches (Harbor's ``with_*`` flags)."""

    tags: bool = False
    labels: bool = False
    accessories: bool = False


def artifact_details(
    connection: Connection, repository_id: int, page: Sequence[Artifact], includes: Includes
) -> ArtifactDetails:
    """Tags, labels, children and accessories of just these artifacts: a few indexed queries
    whose cost depends on the page, not on the repository or the registry."""
    details = ArtifactDetails()
    ids = [a.id for a in page]
    if not ids:
        return details
    if includes.tags:
        query = (
            select(
                tags.c.id, tags.c.manifest_id, tags.c.repository_id, tags.c.name, tags.c.updated_at
            )
            .where(tags.c.manifest_id.in_(ids))
            .order_by(tags.c.updated_at.desc(), tags.c.name)
        )
        for row in connection.execute(query):
            details.tags.setdefault(int(row.manifest_id), []).append(
                TagRow(
                    int(row.id),
                    int(row.manifest_id),
                    int(row.repository_id),
                    row.name,
                    row.updated_at,
                )
            )
    if includes.labels:
        label_query = (
            select(artifact_labels.c.manifest_id, *labels.c)
            .join(labels, labels.c.id == artifact_labels.c.label_id)
            .where(artifact_labels.c.manifest_id.in_(ids))
            .order_by(labels.c.id)
        )
        for row in connection.execute(label_query):
            details.labels.setdefault(int(row.manifest_id), []).append(
                LabelRow(
                    int(row.id),
                    row.name,
                    row.description,
                    row.color,
                    row.scope,
                    None if row.project_id is None else int(row.project_id),
                    row.created_at,
                    row.updated_at,
                )
            )
    index_ids = [a.id for a in page if a.media_type in mt.INDEXES]
    if index_ids:
        child = manifests.alias("child_manifest")
        child_query = (
            select(manifest_references.c.manifest_id, manifest_references.c.digest, child.c.id)
            .outerjoin(
                child,
                and_(
                    child.c.repository_id == repository_id,
                    child.c.digest == manifest_references.c.digest,
                ),
            )
            .where(
                manifest_references.c.manifest_id.in_(index_ids),
                manifest_references.c.kind == "manifest",
            )
        )
        for ref in connection.execute(child_query):
            details.children.setdefault(int(ref.manifest_id), []).append(
                Child(int(ref.manifest_id), None if ref.id is None else int(ref.id), ref.digest)
            )
    if includes.accessories:
        by_digest = {a.digest: a.id for a in page}
        accessory_query = (
            select(*_ARTIFACT_COLUMNS)
            .where(
                manifests.c.repository_id == repository_id,
                manifests.c.subject_digest.in_(list(by_digest)),
            )
            .order_by(manifests.c.id)
        )
        for accessory_row in connection.execute(accessory_query):
            accessory = _artifact(accessory_row)
            subject = str(accessory.subject_digest)
            details.accessories.setdefault(by_digest[subject], []).append(
                Accessory(accessory, by_digest[subject], subject)
            )
    return details


# -- what the stored content says ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What an artifact's manifest and config say that its row does not: Harbor's
    ``extra_attrs``, the build history, and the platforms of an index's children."""

    extra_attrs: dict[str, Any]
    history: list[dict[str, Any]]
    platforms: dict[str, dict[str, str]]  # child digest -> platform, for an index


class ArtifactContent:
    """Reads manifests and config blobs from storage, parsed and cached by digest: content
    addressed, so nothing cached here ever needs invalidating."""

    def __init__(self, manifests: Manifests, storage: StorageDriver) -> None:
        self._manifests = manifests
        self._storage = storage
        self._facts: LRUCache[str, ImageFacts] = LRUCache(20_000, float("inf"))

    async def facts(self, artifact: Artifact) -> ImageFacts:
        cached = self._facts.get(artifact.digest)
        if cached is not None:
            return cached
        facts, lasting = await self._read(artifact)
        if lasting:  # a failed read may be transient: try again next time
            self._facts.put(artifact.digest, facts)
        return facts

    async def _read(self, artifact: Artifact) -> tuple[ImageFacts, bool]:
        """The facts, and whether they may be cached (False after a failed read)."""
        empty = ImageFacts({}, [], {})
        try:
            body = json.loads(await self._manifests.content(Digest.parse(artifact.digest)))
        except RegistryError:
            return empty, False
        except ValueError:
            return empty, True
        if not isinstance(body, dict):
            return empty, True
        if artifact.media_type in mt.INDEXES:
            platforms: dict[str, dict[str, str]] = {}
            for entry in body.get("manifests") or []:
                if isinstance(entry, dict) and isinstance(entry.get("platform"), dict):
                    platform = {
                        k: v
                        for k, v in entry["platform"].items()
                        if k in ("architecture", "os", "variant", "os.version")
                        and isinstance(v, str)
                    }
                    platforms[str(entry.get("digest"))] = platform
            return ImageFacts({}, [], platforms), True
        config = body.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
            return empty, True
        if config.get("mediaType") not in IMAGE_CONFIGS and config.get("mediaType") != HELM_CONFIG:
            return empty, True
        try:
            raw = await self._storage.get(blob_path(Digest.parse(config["digest"])))
        except PathNotFound:
            return empty, False
        except DigestError:
            return empty, True
        try:
            loaded = json.loads(raw)
        except ValueError:
            return empty, True
        if not isinstance(loaded, dict):
            return empty, True
        if config.get("mediaType") == HELM_CONFIG:
            return ImageFacts(loaded, [], {}), True
        attrs: dict[str, Any] = {
            "architecture": loaded.get("architecture"),
            "os": loaded.get("os"),
            "config": loaded.get("config") if isinstance(loaded.get("config"), dict) else {},
            "created": loaded.get("created"),
            "author": loaded.get("author"),
        }
        if isinstance(loaded.get("variant"), str):
            attrs["variant"] = loaded["variant"]
        history = [h for h in loaded.get("history") or [] if isinstance(h, dict)]
        return ImageFacts(attrs, history, {}), True
