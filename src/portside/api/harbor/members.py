"""``/api/v2.0`` project members: who belongs to a project, with which of Harbor's roles.

Shaped as Harbor's ``ProjectMember`` (request), ``RoleRequest`` and ``ProjectMemberEntity``
(response) models. Listing and reading need ``member:list`` / ``member:read`` (Guest and
above); adding, changing and removing need ``member:create`` / ``update`` / ``delete``
(ProjectAdmin). Every change drops the access policy's cached decisions, so a removed member
loses access at once on this replica (and within the cache lifetime on others), and is written
to the audit log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from portside.api.harbor.access import MAX_ID, Caller, record_change, services_of
from portside.api.harbor.errors import HarborError
from portside.api.harbor.listing import Page, PageParams, set_page_headers
from portside.api.harbor.projects import project_for, text_filter
from portside.auth.access import Principal
from portside.auth.rbac import Permission, Role
from portside.projects.members import EntityType, Member
from portside.projects.projects import Project
from portside.text import has_control_characters

__all__ = ["MemberOut", "ProjectMemberReq", "RoleRequest", "router"]

router = APIRouter(tags=["member"])


def _one_line(value: str) -> str:
    if has_control_characters(value):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_one_line)]
Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
RoleId = Annotated[
    StrictInt,
    Field(
        ge=1, le=5, description="1 projectAdmin, 2 developer, 3 guest, 4 maintainer, 5 limitedGuest"
    ),
]


class UserEntity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Id | None = None
    username: Name | None = None


class UserGroupEntity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id | None = None
    group_name: Name | None = None
    group_type: StrictInt | None = None
    ldap_group_dn: Name | None = None


class ProjectMemberReq(BaseModel):
    """Harbor's ``ProjectMember``: a user (by ``user_id`` or ``username``) or a group (by
    ``id``, ``group_name`` or ``ldap_group_dn``), and the role to give it."""

    model_config = ConfigDict(extra="forbid")

    role_id: RoleId
    member_user: UserEntity | None = None
    member_group: UserGroupEntity | None = None


class RoleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role_id: RoleId


class MemberOut(BaseModel):
    """Harbor's ``ProjectMemberEntity``."""

    id: int
    project_id: int
    entity_name: str
    role_name: str
    role_id: int
    entity_id: int
    entity_type: str = Field(description="u for a user, g for a user group.")


def _out(member: Member) -> MemberOut:
    return MemberOut(
        id=member.id,
        project_id=member.project_id,
        entity_name=member.entity_name,
        role_name=member.role.harbor_name,
        role_id=int(member.role),
        entity_id=member.entity_id,
        entity_type=member.entity_type,
    )


def _changed(
    request: Request,
    principal: Principal,
    operation: str,
    project: Project,
    entity_name: str,
    detail: str,
) -> None:
    """After a membership change: drop cached decisions, and audit it."""
    services_of(request).policy.forget()
    record_change(
        request,
        principal,
        operation,
        "member",
        f"{project.name}/{entity_name}",
        project_id=project.id,
        detail=detail,
    )


async def _entity(request: Request, body: ProjectMemberReq) -> tuple[EntityType, int, str]:
    """The user or group a request names: ``(entity_type, id, name)``; 400 unless exactly one
    is named, 404 when it does not exist."""
    members = services_of(request).members
    user = body.member_user
    group = body.member_group
    wants_user = user is not None and (user.user_id is not None or user.username is not None)
    wants_group = group is not None and (
        group.id is not None or group.group_name is not None or group.ldap_group_dn is not None
    )
    if wants_user == wants_group:
        raise HarborError(
            400, "name exactly one of member_user (user_id or username) and member_group"
        )
    if user is not None and wants_user:
        found = await members.find_user(user.user_id, user.username)
        if found is None:
            raise HarborError(404, f"user {user.username or user.user_id!s:.64} not found")
        return "u", *found
    assert group is not None
    found = await members.find_group(group.id, group.group_name, group.ldap_group_dn)
    if found is None:
        what = group.group_name or group.ldap_group_dn or group.id
        raise HarborError(404, f"user group {what!s:.64} not found")
    return "g", *found


_MEMBERS = "/projects/{project_name_or_id}/members"
_MEMBER = f"{_MEMBERS}/{{mid}}"
MemberId = Annotated[int, Path(ge=1, le=MAX_ID, description="The member id.")]


@router.get(_MEMBERS, response_model=list[MemberOut], summary="List a project's members.")
async def list_members(
    request: Request,
    response: Response,
    principal: Caller,
    project_name_or_id: str,
    page: Annotated[Page, Depends(PageParams)],
    entityname: Annotated[str | None, Query(description="Fuzzy match on the name.")] = None,
) -> list[MemberOut]:
    project = await project_for(
        request, principal, project_name_or_id, Permission("member", "list")
    )
    total, found = await services_of(request).members.list(
        project.id, text_filter(entityname, "entityname"), page.offset, page.page_size
    )
    set_page_headers(request, response, page, total)
    return [_out(member) for member in found]


@router.post(
    _MEMBERS,
    status_code=201,
    summary="Add a user or group to a project.",
    responses={201: {"description": "Created; Location names the new member."}},
)
async def create_member(
    request: Request,
    principal: Caller,
    project_name_or_id: str,
    body: Annotated[ProjectMemberReq, Body()],
) -> Response:
    project = await project_for(
        request, principal, project_name_or_id, Permission("member", "create")
    )
    entity_type, entity_id, entity_name = await _entity(request, body)
    role = Role(body.role_id)
    member_id = await services_of(request).members.add(project.id, entity_type, entity_id, role)
    if member_id is None:
        raise HarborError(409, f"{entity_name} is already a member of {project.name}")
    _changed(request, principal, "create", project, entity_name, f"role {role.harbor_name}")
    location = f"{request.url.path.rstrip('/')}/{member_id}"
    return Response(status_code=201, headers={"Location": location})


async def _existing(request: Request, project: Project, mid: int) -> Member:
    member = await services_of(request).members.get(project.id, mid)
    if member is None:
        raise HarborError(404, f"member {mid} not found in project {project.name}")
    return member


@router.get(_MEMBER, response_model=MemberOut, summary="Get a project member.")
async def get_member(
    request: Request, principal: Caller, project_name_or_id: str, mid: MemberId
) -> MemberOut:
    project = await project_for(
        request, principal, project_name_or_id, Permission("member", "read")
    )
    return _out(await _existing(request, project, mid))


@router.put(_MEMBER, summary="Change a project member's role.")
async def update_member(
    request: Request,
    principal: Caller,
    project_name_or_id: str,
    mid: MemberId,
    body: Annotated[RoleRequest, Body()],
) -> Response:
    project = await project_for(
        request, principal, project_name_or_id, Permission("member", "update")
    )
    member = await _existing(request, project, mid)
    role = Role(body.role_id)
    if not await services_of(request).members.set_role(project.id, mid, role):
        raise HarborError(404, f"member {mid} not found in project {project.name}")
    detail = f"role {member.role.harbor_name} -> {role.harbor_name}"
    _changed(request, principal, "update", project, member.entity_name, detail)
    return Response(status_code=200)


@router.delete(_MEMBER, summary="Remove a member from a project.")
async def delete_member(
    request: Request, principal: Caller, project_name_or_id: str, mid: MemberId
) -> Response:
    project = await project_for(
        request, principal, project_name_or_id, Permission("member", "delete")
    )
    member = await _existing(request, project, mid)
    if not await services_of(request).members.remove(project.id, mid):
        raise HarborError(404, f"member {mid} not found in project {project.name}")
    _changed(
        request, principal, "delete", project, member.entity_name, f"was {member.role.harbor_name}"
    )
    return Response(status_code=200)
