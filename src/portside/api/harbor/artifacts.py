"""``/api/v2.0`` artifacts of a repository: list, read, delete, copy; their tags, accessories,
additions and labels. Shaped as Harbor's ``Artifact``, ``Tag``, ``Label``, ``Accessory``,
``Reference`` and ``AdditionLink`` models.

Listing costs one page: :mod:`portside.registry.artifacts` picks the page of manifests first and
fetches tags, labels, children and accessories for those ids only. ``extra_attrs`` and the
platforms of an index come from the stored config and index, read once per digest and cached.

Permissions (Harbor's): ``artifact:list/read/create/delete``, ``tag:list/create/delete``,
``accessory:list``, ``artifact-addition:read``, ``artifact-label:create/delete``; a copy needs
``repository:pull`` on the source and ``artifact:create`` on the target. Reads are open to
anonymous callers on public projects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy import Connection, delete, select

from portside.api.harbor.access import MAX_ID, Caller, record_change, require_project, services_of
from portside.api.harbor.errors import HarborError
from portside.api.harbor.labels import LabelOut
from portside.api.harbor.listing import (
    ID,
    Key,
    Page,
    parse_query,
    parse_sort,
    q_query,
    set_page_headers,
    sort_query,
)
from portside.api.harbor.repositories import full_name
from portside.api.harbor.scan_results import scan_overviews, vulnerability_reports
from portside.audit.log import iso8601
from portside.auth.access import Principal
from portside.auth.rbac import Permission
from portside.db.queries import insert_ignore, now
from portside.db.tables import artifact_labels, labels, manifests
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest, DigestError
from portside.oci.errors import RegistryError
from portside.oci.names import validate_name, validate_tag
from portside.projects.projects import Project
from portside.registry.artifacts import (
    ARTIFACT_SORT,
    Accessory,
    Artifact,
    ArtifactDetails,
    Includes,
    LabelRow,
    TagRow,
    accessory_type,
    artifact_by_digest,
    artifact_by_tag,
    artifact_details,
    label_condition,
    list_artifacts,
    tag_condition,
    type_condition,
)
from portside.registry.charts import CONTENT_TYPES as CHART_CONTENT_TYPES
from portside.registry.charts import MISSING_CONTENT, ChartError
from portside.registry.manifests import Reference

__all__ = ["router"]

router = APIRouter(tags=["artifact"])

_ARTIFACTS = "/projects/{project_name}/repositories/{repository_name}/artifacts"
_ARTIFACT = f"{_ARTIFACTS}/{{reference}}"
NEVER = "0001-01-01T00:00:00.000Z"  # Harbor's zero time: never pulled
HELM_ADDITIONS = ("values.yaml", "readme.md", "dependencies")

Flag = Annotated[bool, Query()]
_EXACT = ("exact",)
ArtifactQ = Annotated[
    str | None,
    q_query(
        {
            "tags": Key(),
            "labels": Key(ID, ("exact", "all", "any")),
            "digest": Key(),
            "media_type": Key(),
            "type": Key(forms=_EXACT),
        }
    ),
]
TagQ = Annotated[str | None, q_query({"name": Key()})]
AccessoryQ = Annotated[str | None, q_query({"type": Key(forms=_EXACT)})]
ArtifactSort = Annotated[str | None, sort_query(ARTIFACT_SORT)]
PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=100)]


class ArtifactFlags:
    """Harbor's ``with_*`` query flags of an artifact read: what each artifact carries.

    ``with_signature`` and ``with_immutable_status`` are accepted for compatibility and change
    nothing: signatures are listed as accessories, and tags always read ``immutable: false``.
    """

    def __init__(
        self,
        with_tag: Flag = True,
        with_label: Flag = False,
        with_scan_overview: Flag = False,
        with_sbom_overview: Flag = False,
        with_signature: Flag = False,
        with_immutable_status: Flag = False,
        with_accessory: Flag = False,
    ) -> None:
        self.includes = Includes(tags=with_tag, labels=with_label, accessories=with_accessory)
        self.scan_overview = with_scan_overview
        self.sbom_overview = with_sbom_overview


Flags = Annotated[ArtifactFlags, Depends()]


class TagReq(BaseModel):
    """Harbor's ``Tag`` as the body of a tag creation: only ``name`` matters."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(..., max_length=128)
    id: StrictInt | None = None
    repository_id: StrictInt | None = None
    artifact_id: StrictInt | None = None
    push_time: StrictStr | None = Field(None, max_length=64)
    pull_time: StrictStr | None = Field(None, max_length=64)
    immutable: bool | None = None


class LabelRef(BaseModel):
    """Harbor's ``Label`` as the body of attaching one: only ``id`` matters."""

    model_config = ConfigDict(extra="allow")

    id: StrictInt = Field(..., ge=1, le=MAX_ID)


class TagOut(BaseModel):
    """Harbor's ``Tag``."""

    id: int
    repository_id: int
    artifact_id: int
    name: str
    push_time: str
    pull_time: str
    immutable: bool


class AccessoryOut(BaseModel):
    """Harbor's ``Accessory``."""

    id: int
    artifact_id: int
    subject_artifact_id: int
    subject_artifact_digest: str
    subject_artifact_repo: str
    size: int
    digest: str
    type: str
    icon: str
    creation_time: str


class ReferenceOut(BaseModel):
    """Harbor's ``Reference``: a child of an index, with the platform the index gives it."""

    parent_id: int
    child_id: int
    child_digest: str
    platform: dict[str, str] | None = None


class AdditionLink(BaseModel):
    """Harbor's ``AdditionLink``."""

    href: str
    absolute: bool


class ArtifactOut(BaseModel):
    """Harbor's ``Artifact``."""

    id: int
    type: str
    media_type: str
    manifest_media_type: str
    artifact_type: str
    project_id: int
    repository_id: int
    repository_name: str
    digest: str
    size: int
    icon: str
    push_time: str
    pull_time: str
    extra_attrs: dict[str, Any]
    annotations: dict[str, str]
    references: list[ReferenceOut] | None = None
    tags: list[TagOut] | None = None
    labels: list[LabelOut] | None = None
    accessories: list[AccessoryOut] | None = None
    addition_links: dict[str, AdditionLink]
    scan_overview: dict[str, Any] | None = None
    sbom_overview: dict[str, Any] | None = None


# -- addressing ---------------------------------------------------------------------------------


def _reference(value: str) -> Reference:
    """A digest or a tag from the path; 400 when it is neither."""
    try:
        if ":" in value:
            return Reference(None, Digest.parse(value))
        return Reference(validate_tag(value), None)
    except (DigestError, RegistryError):
        raise HarborError(400, f"invalid reference {value[:128]!r}: not a tag or digest") from None


async def _repository_id(request: Request, name: str) -> int:
    found = await services_of(request).repositories.id_of(name)
    if found is None:
        raise HarborError(404, f"repository {name[:255]!r} not found")
    return found


async def _artifact(request: Request, repository_id: int, reference: str) -> Artifact:
    ref = _reference(reference)
    db = services_of(request).db
    if ref.digest is not None:
        digest = str(ref.digest)
        found = await db.read(lambda c: artifact_by_digest(c, repository_id, digest))
    else:
        tag = str(ref.tag)
        found = await db.read(lambda c: artifact_by_tag(c, repository_id, tag))
    if found is None:
        raise HarborError(404, f"artifact {reference[:200]!r} not found")
    return found


async def _target(
    request: Request,
    principal: Principal,
    project_name: str,
    repo: str,
    reference: str,
    permission: Permission,
) -> tuple[Project, str, int, Artifact]:
    project = await require_project(request, principal, project_name, permission, by_name=True)
    name = full_name(project, repo)
    repository_id = await _repository_id(request, name)
    return project, name, repository_id, await _artifact(request, repository_id, reference)


def _audit(
    request: Request,
    principal: Principal,
    operation: str,
    resource_type: str,
    resource: str,
    project: Project,
) -> None:
    record_change(request, principal, operation, resource_type, resource, project_id=project.id)


# -- shapes -------------------------------------------------------------------------------------


def _time(value: Any) -> str:
    return NEVER if value is None else iso8601(value)


def _tag(tag: TagRow, artifact: Artifact) -> dict[str, Any]:
    return {
        "id": tag.id,
        "repository_id": tag.repository_id,
        "artifact_id": tag.artifact_id,
        "name": tag.name,
        "push_time": iso8601(tag.push_time),
        "pull_time": _time(artifact.pull_time),
        "immutable": False,
    }


def _label(label: LabelRow) -> dict[str, Any]:
    return {
        "id": label.id,
        "name": label.name,
        "description": label.description or "",
        "color": label.color or "",
        "scope": label.scope,
        "project_id": label.project_id or 0,
        "creation_time": iso8601(label.created_at),
        "update_time": iso8601(label.updated_at),
    }


def _accessory(accessory: Accessory, repository: str) -> dict[str, Any]:
    artifact = accessory.artifact
    return {
        "id": artifact.id,
        "artifact_id": artifact.id,
        "subject_artifact_id": accessory.subject_id,
        "subject_artifact_digest": accessory.subject_digest,
        "subject_artifact_repo": repository,
        "size": artifact.size,
        "digest": artifact.digest,
        "type": accessory_type(artifact.type),
        "icon": "",
        "creation_time": iso8601(artifact.push_time),
    }


def _addition_links(project: str, repository: str, artifact: Artifact) -> dict[str, Any]:
    base = (
        f"/api/v2.0/projects/{project}/repositories/{quote(quote(repository, safe=''), safe='')}"
        f"/artifacts/{artifact.digest}/additions"
    )
    kind = artifact.type
    names: tuple[str, ...] = ()
    if kind == "IMAGE" and artifact.media_type not in mt.INDEXES:
        names = ("build_history", "vulnerabilities")
    elif kind == "CHART":
        names = HELM_ADDITIONS
    return {name: {"href": f"{base}/{name}", "absolute": False} for name in names}


async def _artifact_json(
    request: Request,
    project: Project,
    name: str,
    artifact: Artifact,
    details: ArtifactDetails,
    includes: Includes,
    overviews: dict[str, Any],
) -> dict[str, Any]:
    facts = await services_of(request).artifacts.facts(artifact)
    repository = name.partition("/")[2]
    media_type = artifact.media_type
    if media_type not in mt.INDEXES:
        media_type = artifact.config_media_type or artifact.artifact_type or media_type
    out: dict[str, Any] = {
        "id": artifact.id,
        "type": artifact.type,
        "media_type": media_type,
        "manifest_media_type": artifact.media_type,
        "artifact_type": artifact.artifact_type or artifact.media_type,
        "project_id": project.id,
        "repository_id": artifact.repository_id,
        "repository_name": name,
        "digest": artifact.digest,
        "size": artifact.size,
        "icon": "",
        "push_time": iso8601(artifact.push_time),
        "pull_time": _time(artifact.pull_time),
        "extra_attrs": facts.extra_attrs,
        "annotations": artifact.annotations,
        "references": None,
        "tags": None,
        "labels": None,
        "accessories": None,
        "addition_links": _addition_links(project.name, repository, artifact),
    }
    if artifact.media_type in mt.INDEXES:
        position = {digest: i for i, digest in enumerate(facts.platforms)}  # the index's order
        children = sorted(
            details.children.get(artifact.id, []),
            key=lambda child: (position.get(child.child_digest, len(position)), child.child_digest),
        )
        out["references"] = [
            {
                "parent_id": child.parent_id,
                "child_id": child.child_id or 0,
                "child_digest": child.child_digest,
                "platform": facts.platforms.get(child.child_digest),
            }
            for child in children
        ]
    if includes.tags:
        out["tags"] = [_tag(t, artifact) for t in details.tags.get(artifact.id, [])]
    if includes.labels:
        out["labels"] = [_label(label) for label in details.labels.get(artifact.id, [])]
    if includes.accessories:
        out["accessories"] = [_accessory(a, name) for a in details.accessories.get(artifact.id, [])]
    out.update(overviews.get(artifact.digest, {}))
    return out


# -- listing ------------------------------------------------------------------------------------


def _label_ids(values: tuple[str, ...]) -> list[int]:
    ids = []
    for value in values:
        if not value.isascii() or not value.isdigit() or int(value) > MAX_ID:
            raise HarborError(400, f"invalid label id {value[:32]!r}")
        ids.append(int(value))
    return ids


def _conditions(q: str | None) -> list[Any]:
    terms = parse_query(q, {"tags", "labels", "digest", "media_type", "type"})
    conditions: list[Any] = []
    for key, term in terms.items():
        try:
            if key == "tags":
                conditions.append(tag_condition(term.kind, term.values))
            elif key == "labels":
                if term.kind not in ("exact", "all", "any"):
                    raise ValueError("labels supports =id, ={a b} and =(a b)")
                conditions.append(label_condition(_label_ids(term.values), term.kind != "any"))
            elif key == "type":
                if term.kind != "exact":
                    raise ValueError("type supports only an exact value")
                conditions.append(type_condition(term.values[0]))
            else:
                column = manifests.c.digest if key == "digest" else manifests.c.media_type
                if term.kind == "exact":
                    conditions.append(column == term.values[0])
                elif term.kind == "fuzzy":
                    conditions.append(column.contains(term.values[0], autoescape=True))
                elif term.kind == "any":
                    conditions.append(column.in_(list(term.values)))
                else:
                    raise ValueError(f"{key} supports =v, =~v and =(a b)")
        except ValueError as exc:
            raise HarborError(400, f"invalid query for {key!r}: {exc}") from None
    return conditions


def _order(sort: str | None) -> list[Any] | None:
    """The requested order, or None for the default (newest first)."""
    order: list[Any] = []
    for key, descending in parse_sort(sort, set(ARTIFACT_SORT)):
        column = ARTIFACT_SORT[key]
        order.append(column.desc() if descending else column.asc())
    if not order:
        return None
    order.append(manifests.c.id.desc())
    return order


@router.get(
    _ARTIFACTS, response_model=list[ArtifactOut], summary="List the artifacts of a repository."
)
async def list_artifacts_route(
    request: Request,
    response: Response,
    principal: Caller,
    project_name: str,
    repository_name: str,
    flags: Flags,
    q: ArtifactQ = None,
    sort: ArtifactSort = None,
    page: PageNumber = 1,
    page_size: PageSize = 10,
) -> list[dict[str, Any]]:
    project = await require_project(
        request, principal, project_name, Permission("artifact", "list"), by_name=True
    )
    name = full_name(project, repository_name)
    repository_id = await _repository_id(request, name)
    conditions, order, paging = _conditions(q), _order(sort), Page(page, page_size)

    def fetch(connection: Connection) -> tuple[int, list[Artifact], ArtifactDetails]:
        total, rows = list_artifacts(
            connection, repository_id, conditions, order, paging.offset, paging.page_size
        )
        details = artifact_details(connection, repository_id, rows, flags.includes)
        return total, rows, details

    total, rows, details = await services_of(request).db.read(fetch)
    set_page_headers(request, response, paging, total)
    overviews = await scan_overviews(
        request, [a.digest for a in rows], scan=flags.scan_overview, sbom=flags.sbom_overview
    )
    return [
        await _artifact_json(request, project, name, artifact, details, flags.includes, overviews)
        for artifact in rows
    ]


@router.get(_ARTIFACT, response_model=ArtifactOut, summary="Get an artifact by digest or tag.")
async def get_artifact(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    flags: Flags,
) -> dict[str, Any]:
    project, name, repository_id, artifact = await _target(
        request, principal, project_name, repository_name, reference, Permission("artifact", "read")
    )
    details = await services_of(request).db.read(
        lambda c: artifact_details(c, repository_id, [artifact], flags.includes)
    )
    overviews = await scan_overviews(
        request, [artifact.digest], scan=flags.scan_overview, sbom=flags.sbom_overview
    )
    includes = flags.includes
    return await _artifact_json(request, project, name, artifact, details, includes, overviews)


@router.delete(_ARTIFACT, summary="Delete an artifact with its tags.")
async def delete_artifact(
    request: Request, principal: Caller, project_name: str, repository_name: str, reference: str
) -> Response:
    project, name, _, artifact = await _target(
        request,
        principal,
        project_name,
        repository_name,
        reference,
        Permission("artifact", "delete"),
    )
    try:
        await services_of(request).manifests.delete(
            name, Reference(None, Digest.parse(artifact.digest))
        )
    except RegistryError:
        raise HarborError(404, f"artifact {reference[:200]!r} not found") from None
    _audit(request, principal, "delete", "artifact", f"{name}@{artifact.digest}", project)
    return Response(status_code=200)


def _source(value: str) -> tuple[str, Reference]:
    """``<project>/<repo>:<tag>`` or ``<project>/<repo>@<digest>``."""
    if "@" in value:
        repo, _, ref = value.partition("@")
    else:
        slash = value.rfind("/")
        colon = value.rfind(":")
        if colon <= slash:
            raise HarborError(400, "from must look like <project>/<repository>:<tag> or @<digest>")
        repo, ref = value[:colon], value[colon + 1 :]
    try:
        validate_name(repo)
    except RegistryError:
        raise HarborError(400, f"invalid source repository {repo[:128]!r}") from None
    if "/" not in repo:
        raise HarborError(400, "from must name a project and a repository")
    return repo, _reference(ref)


@router.post(_ARTIFACTS, status_code=201, summary="Copy an artifact from another repository.")
async def copy_artifact(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    from_: Annotated[str | None, Query(alias="from", max_length=512)] = None,
) -> Response:
    project = await require_project(
        request, principal, project_name, Permission("artifact", "create"), by_name=True
    )
    target = full_name(project, repository_name)
    if not from_:
        raise HarborError(400, "from is required: <project>/<repository>:<tag> or @<digest>")
    source, reference = _source(from_)
    source_project = source.partition("/")[0]
    await require_project(
        request, principal, source_project, Permission("repository", "pull"), by_name=True
    )
    services = services_of(request)
    try:
        digest = await services.manifests.copy(source, reference, target)
    except RegistryError as exc:
        if exc.status == 404 or exc.code.name in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"):
            raise HarborError(404, f"artifact {from_[:200]!r} not found") from None
        raise
    _audit(request, principal, "create", "artifact", f"{target}@{digest}", project)
    location = (
        f"/api/v2.0/projects/{project.name}/repositories/{repository_name}/artifacts/{digest}"
    )
    return Response(status_code=201, headers={"Location": location})


# -- tags ---------------------------------------------------------------------------------------


_TAG_SORT: dict[str, Callable[[TagRow], Any]] = {
    "id": lambda t: t.id,
    "name": lambda t: t.name,
    "push_time": lambda t: t.push_time,
}


TagSort = Annotated[str | None, sort_query(_TAG_SORT)]
_ACCESSORY_SORT = ("creation_time", "id")
AccessorySort = Annotated[str | None, sort_query(_ACCESSORY_SORT)]


@router.get(f"{_ARTIFACT}/tags", response_model=list[TagOut], summary="List an artifact's tags.")
async def list_tags(
    request: Request,
    response: Response,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    page: PageNumber = 1,
    page_size: PageSize = 10,
    q: TagQ = None,
    sort: TagSort = None,
    with_signature: Flag = False,
    with_immutable_status: Flag = False,
) -> list[dict[str, Any]]:
    _, _, repository_id, artifact = await _target(
        request, principal, project_name, repository_name, reference, Permission("tag", "list")
    )
    terms = parse_query(q, {"name"})
    order = parse_sort(sort, set(_TAG_SORT))
    details = await services_of(request).db.read(
        lambda c: artifact_details(c, repository_id, [artifact], Includes(tags=True))
    )
    found = details.tags.get(artifact.id, [])
    if "name" in terms:
        term = terms["name"]
        if term.kind == "fuzzy":
            found = [t for t in found if term.values[0] in t.name]
        else:
            found = [t for t in found if t.name in term.values]
    # Python's sort is stable: sorting by the last key first leaves the first key in charge.
    for field, descending in reversed(order):
        found.sort(key=_TAG_SORT[field], reverse=descending)
    paging = Page(page, page_size)
    set_page_headers(request, response, paging, len(found))
    chosen = found[paging.offset : paging.offset + paging.page_size]
    return [_tag(t, artifact) for t in chosen]


@router.post(f"{_ARTIFACT}/tags", status_code=201, summary="Tag an artifact.")
async def create_tag(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    body: TagReq,
) -> Response:
    project, name, _, artifact = await _target(
        request, principal, project_name, repository_name, reference, Permission("tag", "create")
    )
    try:
        tag = validate_tag(body.name)
    except RegistryError:
        raise HarborError(400, f"invalid tag name {body.name[:128]!r}") from None
    created = await services_of(request).manifests.add_tag(name, tag, Digest.parse(artifact.digest))
    if not created:
        raise HarborError(409, f"tag {tag!r} already exists in {name}")
    _audit(request, principal, "create", "tag", f"{name}:{tag}", project)
    location = (
        f"/api/v2.0/projects/{project.name}/repositories/{repository_name}"
        f"/artifacts/{artifact.digest}/tags/{tag}"
    )
    return Response(status_code=201, headers={"Location": location})


@router.delete(f"{_ARTIFACT}/tags/{{tag_name}}", summary="Delete a tag.")
async def delete_tag(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    tag_name: str,
) -> Response:
    project, name, repository_id, artifact = await _target(
        request, principal, project_name, repository_name, reference, Permission("tag", "delete")
    )
    try:
        tag = validate_tag(tag_name)
    except RegistryError:
        raise HarborError(404, f"tag {tag_name[:128]!r} not found") from None
    owner = await services_of(request).db.read(lambda c: artifact_by_tag(c, repository_id, tag))
    if owner is None or owner.id != artifact.id:
        raise HarborError(404, f"tag {tag!r} not found on this artifact")
    try:
        await services_of(request).manifests.delete(name, Reference(tag, None))
    except RegistryError:
        raise HarborError(404, f"tag {tag!r} not found") from None
    _audit(request, principal, "delete", "tag", f"{name}:{tag}", project)
    return Response(status_code=200)


# -- accessories and additions ------------------------------------------------------------------


@router.get(
    f"{_ARTIFACT}/accessories",
    response_model=list[AccessoryOut],
    summary="List an artifact's accessories.",
)
async def list_accessories(
    request: Request,
    response: Response,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    page: PageNumber = 1,
    page_size: PageSize = 10,
    q: AccessoryQ = None,
    sort: AccessorySort = None,
) -> list[dict[str, Any]]:
    _, name, repository_id, artifact = await _target(
        request,
        principal,
        project_name,
        repository_name,
        reference,
        Permission("accessory", "list"),
    )
    terms = parse_query(q, {"type"})
    parse_sort(sort, set(_ACCESSORY_SORT))
    details = await services_of(request).db.read(
        lambda c: artifact_details(c, repository_id, [artifact], Includes(accessories=True))
    )
    found = [_accessory(a, name) for a in details.accessories.get(artifact.id, [])]
    if "type" in terms:
        found = [a for a in found if a["type"] in terms["type"].values]
    paging = Page(page, page_size)
    set_page_headers(request, response, paging, len(found))
    return found[paging.offset : paging.offset + paging.page_size]


async def _chart_addition(
    request: Request, name: str, artifact: Artifact, addition: str
) -> Response:
    """A Helm chart's values.yaml, readme.md or dependencies; 404 when the chart content cannot
    be read (broken, hostile or over a size cap).

    A file the chart does not have is an empty 200 with the addition's content type, as on
    Harbor (its chart processor serves the file map's empty string for a missing name).
    """
    try:
        files = await services_of(request).charts.files(name, artifact.digest)
        body = files.addition(addition)
    except ChartError as error:
        raise HarborError(404, str(error)) from None
    except MISSING_CONTENT:
        raise HarborError(404, "the chart content is missing from storage") from None
    return Response(body or b"", media_type=CHART_CONTENT_TYPES[addition])


@router.get(f"{_ARTIFACT}/additions/{{addition}}", summary="Get an addition of an artifact.")
async def get_addition(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    addition: str,
) -> Response:
    _, name, _, artifact = await _target(
        request,
        principal,
        project_name,
        repository_name,
        reference,
        Permission("artifact-addition", "read"),
    )
    kind = artifact.type
    if addition == "vulnerabilities":
        reports = await vulnerability_reports(request, artifact.digest)
        return Response(json.dumps(reports), media_type="application/json")
    if addition == "build_history" and kind == "IMAGE" and artifact.media_type not in mt.INDEXES:
        facts = await services_of(request).artifacts.facts(artifact)
        return Response(json.dumps(facts.history), media_type="application/json")
    if addition.lower() in HELM_ADDITIONS and kind == "CHART":
        return await _chart_addition(request, name, artifact, addition.lower())
    raise HarborError(404, f"addition {addition[:64]!r} not found for this artifact")


# -- labels -------------------------------------------------------------------------------------


@router.post(f"{_ARTIFACT}/labels", summary="Add a label to an artifact.")
async def add_label(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    body: LabelRef,
) -> Response:
    project, name, _, artifact = await _target(
        request,
        principal,
        project_name,
        repository_name,
        reference,
        Permission("artifact-label", "create"),
    )
    label_id = body.id

    def attach(connection: Connection) -> str:
        row = connection.execute(
            select(labels.c.scope, labels.c.project_id).where(labels.c.id == label_id)
        ).first()
        if row is None:
            return "missing"
        if row.scope != "g" and row.project_id != project.id:
            return "foreign"
        inserted = insert_ignore(
            connection,
            artifact_labels,
            manifest_id=artifact.id,
            label_id=label_id,
            created_at=now(),
        )
        return "added" if inserted else "conflict"

    outcome = await services_of(request).db.write(attach)
    if outcome == "missing":
        raise HarborError(404, f"label {label_id} not found")
    if outcome == "foreign":
        raise HarborError(400, f"label {label_id} belongs to another project")
    if outcome == "conflict":
        raise HarborError(409, f"label {label_id} is already on this artifact")
    _audit(request, principal, "create", "artifact-label", f"{name}@{artifact.digest}", project)
    return Response(status_code=200)


@router.delete(f"{_ARTIFACT}/labels/{{label_id}}", summary="Remove a label from an artifact.")
async def remove_label(
    request: Request,
    principal: Caller,
    project_name: str,
    repository_name: str,
    reference: str,
    label_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> Response:
    project, name, _, artifact = await _target(
        request,
        principal,
        project_name,
        repository_name,
        reference,
        Permission("artifact-label", "delete"),
    )
    statement = delete(artifact_labels).where(
        artifact_labels.c.manifest_id == artifact.id, artifact_labels.c.label_id == label_id
    )
    removed = await services_of(request).db.write(lambda c: c.execute(statement).rowcount)
    if not removed:
        raise HarborError(404, f"label {label_id} is not on this artifact")
    _audit(request, principal, "delete", "artifact-label", f"{name}@{artifact.digest}", project)
    return Response(status_code=200)
