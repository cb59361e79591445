"""``/api/v2.0/usergroups``: Harbor's user-group API, plus Portside's membership endpoints.

Harbor fills its groups from LDAP, OIDC or an HTTP authenticator; Portside's groups are local
(type 2, "HTTP") and their users are managed through an extension of the API:

- ``GET    /usergroups/{group_id}/members``            list the users in a group;
- ``PUT    /usergroups/{group_id}/members/{user_id}``  add a user;
- ``DELETE /usergroups/{group_id}/members/{user_id}``  remove a user.

Everything is for system admins, except ``/usergroups/search``, which every user may call (as in
Harbor). Robots may call none of it. A group's project roles reach its users through the access
policy, so membership changes drop the policy's cached decisions at once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from portside.api.harbor import documented
from portside.api.harbor.access import (
    MAX_ID,
    Caller,
    deny,
    record_change,
    require_admin,
    services_of,
)
from portside.api.harbor.errors import HarborError
from portside.api.harbor.listing import Paging, set_page_headers
from portside.auth.access import Principal
from portside.auth.groups import (
    GROUP_TYPE_HTTP,
    MAX_GROUP_DN,
    MAX_GROUP_NAME,
    GroupConflict,
    NoSuchAccount,
    UserGroup,
    UserGroups,
    group_name_problem,
)
from portside.db.tables import usergroups
from portside.text import has_control_characters

__all__ = ["router"]

router = APIRouter(tags=["usergroup"])

GroupId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user group's id.")]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id.")]


class UserGroupReq(BaseModel):
    """Harbor's ``UserGroup`` as a request. ``id`` is accepted and ignored, as in Harbor."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: int | None = None
    group_name: str = documented.not_blank(MAX_GROUP_NAME)
    group_type: int | None = Field(None, json_schema_extra={"enum": [GROUP_TYPE_HTTP, None]})
    ldap_group_dn: str | None = None


class UserGroupResp(BaseModel):
    id: int
    group_name: str
    group_type: int
    ldap_group_dn: str


class UserGroupSearchItem(BaseModel):
    id: int
    group_name: str
    group_type: int


class GroupMemberResp(BaseModel):
    """Portside extension: one user of a group (the shape of Harbor's user search items)."""

    user_id: int
    username: str


def _response(group: UserGroup) -> UserGroupResp:
    return UserGroupResp(
        id=group.id,
        group_name=group.group_name,
        group_type=group.group_type,
        ldap_group_dn=group.ldap_group_dn or "",
    )


def _groups(request: Request) -> UserGroups:
    return services_of(request).groups


def _require_user(request: Request, principal: Principal, what: str) -> None:
    """Only user accounts may use this API: anonymous callers get 401, robots 403."""
    if principal.kind != "user":
        raise deny(request, principal, what)


def _require_admin(request: Request, principal: Principal, what: str) -> None:
    _require_user(request, principal, what)
    require_admin(request, principal, what)


def _checked(body: UserGroupReq, current_type: int = GROUP_TYPE_HTTP) -> None:
    """400 unless the body describes a local group with an acceptable name."""
    problem = group_name_problem(body.group_name)
    if problem:
        raise HarborError(400, problem)
    if body.group_type is not None and body.group_type != current_type:
        raise HarborError(
            400, f"Portside has local groups only: group_type must be {GROUP_TYPE_HTTP} (HTTP)"
        )
    dn = body.ldap_group_dn
    if dn is not None and (len(dn) > MAX_GROUP_DN or has_control_characters(dn)):
        raise HarborError(
            400, f"ldap_group_dn must be at most {MAX_GROUP_DN} characters, without control ones"
        )


def _audit(
    request: Request, principal: Principal, operation: str, resource: str, detail: str | None
) -> None:
    record_change(request, principal, operation, "usergroup", resource, detail=detail)


async def _existing(request: Request, group_id: int) -> UserGroup:
    group = await _groups(request).get(group_id)
    if group is None:
        raise HarborError(404, f"the user group with id {group_id} is not found")
    return group


async def _existing_user(request: Request, user_id: int) -> str:
    """The username of ``user_id``; 404 when there is no such account."""
    record = await services_of(request).accounts.get(user_id)
    if record is None:
        raise HarborError(404, f"user {user_id} not found")
    return record.username


@router.get("/usergroups", response_model=list[UserGroupResp])
async def list_user_groups(
    request: Request,
    response: Response,
    principal: Caller,
    page: Paging,
    group_name: Annotated[str | None, Query(max_length=255)] = None,
    ldap_group_dn: Annotated[str | None, Query(max_length=MAX_GROUP_DN)] = None,
) -> list[UserGroupResp]:
    """All groups (system admins); ``group_name`` is a substring filter."""
    _require_admin(request, principal, "list user groups")
    where = []
    if group_name:
        where.append(usergroups.c.group_name.contains(group_name, autoescape=True))
    if ldap_group_dn:
        where.append(usergroups.c.ldap_group_dn == ldap_group_dn)
    total, groups = await _groups(request).list_groups(where, page.offset, page.page_size)
    set_page_headers(request, response, page, total)
    return [_response(group) for group in groups]


@router.post("/usergroups", status_code=201, response_class=Response)
async def create_user_group(request: Request, body: UserGroupReq, principal: Caller) -> Response:
    _require_admin(request, principal, "create user groups")
    _checked(body)
    try:
        group_id = await _groups(request).create(
            body.group_name, GROUP_TYPE_HTTP, body.ldap_group_dn
        )
    except GroupConflict as conflict:
        raise HarborError(409, str(conflict)) from None
    _audit(request, principal, "create", body.group_name, None)
    location = f"{request.url.path.rstrip('/')}/{group_id}"
    return Response(status_code=201, headers={"Location": location})


@router.get("/usergroups/search", response_model=list[UserGroupSearchItem])
async def search_user_groups(
    request: Request,
    response: Response,
    principal: Caller,
    page: Paging,
    groupname: Annotated[str, Query(min_length=1, max_length=255)],
) -> list[UserGroupSearchItem]:
    """Groups whose name contains ``groupname``, for every user."""
    _require_user(request, principal, "search user groups")
    where = [usergroups.c.group_name.contains(groupname, autoescape=True)]
    total, groups = await _groups(request).list_groups(where, page.offset, page.page_size)
    set_page_headers(request, response, page, total)
    return [
        UserGroupSearchItem(id=g.id, group_name=g.group_name, group_type=g.group_type)
        for g in groups
    ]


@router.get("/usergroups/{group_id}", response_model=UserGroupResp)
async def get_user_group(request: Request, group_id: GroupId, principal: Caller) -> UserGroupResp:
    _require_admin(request, principal, "read user groups")
    return _response(await _existing(request, group_id))


@router.put("/usergroups/{group_id}", response_class=Response)
async def update_user_group(
    request: Request, group_id: GroupId, body: UserGroupReq, principal: Caller
) -> Response:
    """Rename a group; as in Harbor, the name is the only thing that changes."""
    _require_admin(request, principal, "update user groups")
    current = await _existing(request, group_id)
    _checked(body, current.group_type)
    try:
        renamed = await _groups(request).rename(group_id, body.group_name)
    except GroupConflict as conflict:
        raise HarborError(409, str(conflict)) from None
    if renamed is None:
        raise HarborError(404, f"the user group with id {group_id} is not found")
    _audit(request, principal, "update", body.group_name, f"renamed from {current.group_name}")
    return Response(status_code=200)


@router.delete("/usergroups/{group_id}", response_class=Response)
async def delete_user_group(request: Request, group_id: GroupId, principal: Caller) -> Response:
    """Delete a group, its project memberships and its user list."""
    _require_admin(request, principal, "delete user groups")
    deleted = await _groups(request).delete(group_id)
    if deleted is None:
        raise HarborError(404, f"the user group with id {group_id} is not found")
    services_of(request).policy.forget()
    _audit(request, principal, "delete", deleted.group_name, None)
    return Response(status_code=200)


@router.get("/usergroups/{group_id}/members", response_model=list[GroupMemberResp])
async def list_group_members(
    request: Request, response: Response, group_id: GroupId, principal: Caller, page: Paging
) -> list[GroupMemberResp]:
    """Portside extension: the users in a group, by username (system admins)."""
    _require_admin(request, principal, "list user group members")
    await _existing(request, group_id)
    total, members = await _groups(request).members(group_id, page.offset, page.page_size)
    set_page_headers(request, response, page, total)
    return [GroupMemberResp(user_id=m.user_id, username=m.username) for m in members]


@router.put("/usergroups/{group_id}/members/{user_id}", response_class=Response)
async def add_group_member(
    request: Request, group_id: GroupId, user_id: UserId, principal: Caller
) -> Response:
    """Portside extension: put a user in a group (system admins). Idempotent."""
    _require_admin(request, principal, "change user group members")
    group = await _existing(request, group_id)
    user = await _existing_user(request, user_id)
    try:
        added = await _groups(request).add_member(group_id, user_id)
    except NoSuchAccount as missing:
        raise HarborError(404, str(missing)) from None
    if added:
        services_of(request).policy.forget()
        _audit(request, principal, "add_member", group.group_name, f"user {user}")
    return Response(status_code=200)


@router.delete("/usergroups/{group_id}/members/{user_id}", response_class=Response)
async def remove_group_member(
    request: Request, group_id: GroupId, user_id: UserId, principal: Caller
) -> Response:
    """Portside extension: take a user out of a group (system admins)."""
    _require_admin(request, principal, "change user group members")
    group = await _existing(request, group_id)
    user = await _existing_user(request, user_id)
    if not await _groups(request).remove_member(group_id, user_id):
        raise HarborError(404, f"user {user!r} is not in user group {group.group_name!r}")
    services_of(request).policy.forget()
    _audit(request, principal, "remove_member", group.group_name, f"user {user}")
    return Response(status_code=200)
