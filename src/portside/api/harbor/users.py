"""``/api/v2.0/users``: local accounts, shaped as Harbor's user API.

Who may do what (robots may use none of it; anonymous callers get 401, others 403):

- list, delete, grant or revoke system admin: system admins;
- read, update the profile, change the password: system admins, and each user for themself
  (changing one's own password needs the old one, even for an admin);
- the current user and the username search: every user;
- create: system admins, or anyone at all when ``auth.self_registration`` is on (the new
  account is then never a system admin).

Every change drops the credential and decision caches, so an old password, a deleted account or
a revoked admin flag stops working at once on this replica, and is audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict

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
from portside.api.harbor.listing import (
    ID,
    NOT_FUZZY,
    Key,
    Paging,
    parse_query,
    parse_sort,
    q_query,
    set_page_headers,
    sort_query,
    where_clauses,
)
from portside.api.security import login
from portside.audit.log import iso8601
from portside.auth.access import Principal
from portside.auth.accounts import (
    ADMIN_USERNAME,
    AccountConflict,
    LastAdminError,
    UserRecord,
    profile_problem,
    username_problem,
)
from portside.auth.passwords import password_problem
from portside.db.tables import users

__all__ = ["router"]

router = APIRouter(tags=["user"])

UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id.")]

_QUERY_KEYS = {"username", "email", "realname", "user_id"}
_SORT_COLUMNS = {
    "user_id": users.c.id,
    "username": users.c.username,
    "email": users.c.email,
    "realname": users.c.realname,
    "creation_time": users.c.created_at,
    "update_time": users.c.updated_at,
}


class _Body(BaseModel):
    """Request bodies: exact JSON types, and no fields beyond the documented ones."""

    model_config = ConfigDict(extra="forbid", strict=True)


class UserCreationReq(_Body):
    username: str = documented.username()
    password: str = documented.password()
    email: str = documented.email(required=True)
    realname: str | None = documented.realname()
    comment: str | None = documented.comment()
    sysadmin_flag: bool | None = None  # honoured for admins only


class UserProfile(_Body):
    email: str | None = documented.email()
    realname: str | None = documented.realname()
    comment: str | None = documented.comment()


class PasswordReq(_Body):
    old_password: str | None = None
    new_password: str = documented.password()


class UserSysAdminFlag(_Body):
    sysadmin_flag: bool


class UserResp(BaseModel):
    user_id: int
    username: str
    email: str
    realname: str
    comment: str
    sysadmin_flag: bool
    admin_role_in_auth: bool
    creation_time: str
    update_time: str


class UserSearchRespItem(BaseModel):
    user_id: int
    username: str


def _response(record: UserRecord) -> UserResp:
    return UserResp(
        user_id=record.id,
        username=record.username,
        email=record.email or "",
        realname=record.realname or "",
        comment=record.comment or "",
        sysadmin_flag=record.sysadmin_flag,
        admin_role_in_auth=False,
        creation_time=iso8601(record.created_at),
        update_time=iso8601(record.updated_at),
    )


def _require_user(request: Request, principal: Principal, what: str) -> None:
    """Only user accounts may use this API: anonymous callers get 401, robots 403."""
    if principal.kind != "user":
        raise deny(request, principal, what)


def _require_admin(request: Request, principal: Principal, what: str) -> None:
    _require_user(request, principal, what)
    require_admin(request, principal, what)


def _require_self_or_admin(request: Request, principal: Principal, user_id: int, what: str) -> None:
    _require_user(request, principal, what)
    if principal.id != user_id:
        require_admin(request, principal, what)


def _user_id_value(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_ID:
        raise ValueError("out of range")
    return number


def _audit(
    request: Request, principal: Principal, operation: str, username: str, detail: str | None
) -> None:
    record_change(request, principal, operation, "user", username, detail=detail)


def _changed(request: Request) -> None:
    """Drop every cached credential and decision after a change to an account."""
    services = services_of(request)
    services.accounts.forget()
    services.policy.forget()


@router.get("/users", response_model=list[UserResp])
async def list_users(
    request: Request,
    response: Response,
    principal: Caller,
    page: Paging,
    q: Annotated[
        str | None,
        q_query(
            {
                "username": Key(),
                "email": Key(),
                "realname": Key(),
                "user_id": Key(ID, NOT_FUZZY),
            }
        ),
    ] = None,
    sort: Annotated[str | None, sort_query(_SORT_COLUMNS, max_length=512)] = None,
    username: Annotated[str | None, Query(max_length=255)] = None,
    email: Annotated[str | None, Query(max_length=255)] = None,
) -> list[UserResp]:
    """List accounts (system admins). ``q`` keys: username, email, realname, user_id;
    ``username=``/``email=`` are substring filters, as in Harbor."""
    _require_admin(request, principal, "list users")
    terms = parse_query(q, _QUERY_KEYS)
    where = where_clauses(
        terms,
        {
            "username": (users.c.username, str),
            "email": (users.c.email, str),
            "realname": (users.c.realname, str),
            "user_id": (users.c.id, _user_id_value),
        },
    )
    for column, fragment in ((users.c.username, username), (users.c.email, email)):
        if fragment:
            where.append(column.contains(fragment, autoescape=True))
    order = [
        _SORT_COLUMNS[field].desc() if descending else _SORT_COLUMNS[field].asc()
        for field, descending in parse_sort(sort, set(_SORT_COLUMNS))
    ]
    total, records = await services_of(request).accounts.list_users(
        where, order, page.offset, page.page_size
    )
    set_page_headers(request, response, page, total)
    return [_response(record) for record in records]


@router.post("/users", status_code=201, response_class=Response)
async def create_user(request: Request, body: UserCreationReq, principal: Caller) -> Response:
    """Create a local account: system admins, or anyone when self-registration is on."""
    services = services_of(request)
    admin = principal.kind == "user" and principal.is_admin
    if not admin and (
        principal.is_robot or not (await services.configurations.get()).self_registration
    ):
        raise deny(request, principal, "create users")
    problem = (
        username_problem(body.username, services.settings.auth.robot_prefix)
        or password_problem(body.password)
        or profile_problem(body.email, body.realname, body.comment)
    )
    if problem:
        raise HarborError(400, problem)
    sysadmin = bool(body.sysadmin_flag) and admin
    try:
        user_id = await services.accounts.create(
            body.username, body.password, body.email, body.realname, body.comment, sysadmin
        )
    except AccountConflict as conflict:
        raise HarborError(409, str(conflict)) from None
    _changed(request)
    detail = "self-registration" if not admin else ("sysadmin" if sysadmin else None)
    _audit(request, principal, "create", body.username, detail)
    location = f"{request.url.path.rstrip('/')}/{user_id}"
    return Response(status_code=201, headers={"Location": location})


@router.get("/users/current", response_model=UserResp)
async def current_user(request: Request, principal: Caller) -> UserResp:
    """The caller's own account."""
    _require_user(request, principal, "read the current user")
    assert principal.id is not None
    record = await services_of(request).accounts.get(principal.id)
    if record is None:  # deleted since its credentials were checked
        raise deny(request, principal, "read the current user")
    return _response(record)


@router.get("/users/search", response_model=list[UserSearchRespItem])
async def search_users(
    request: Request,
    response: Response,
    principal: Caller,
    page: Paging,
    username: Annotated[str, Query(min_length=1, max_length=255)],
) -> list[UserSearchRespItem]:
    """Accounts whose username contains ``username``: ids and names only, for every user."""
    _require_user(request, principal, "search users")
    total, records = await services_of(request).accounts.search(
        username, page.offset, page.page_size
    )
    set_page_headers(request, response, page, total)
    return [UserSearchRespItem(user_id=r.id, username=r.username) for r in records]


@router.get("/users/{user_id}", response_model=UserResp)
async def get_user(request: Request, user_id: UserId, principal: Caller) -> UserResp:
    _require_self_or_admin(request, principal, user_id, "read other users")
    record = await services_of(request).accounts.get(user_id)
    if record is None:
        raise HarborError(404, f"user {user_id} not found")
    return _response(record)


@router.put("/users/{user_id}", response_class=Response)
async def update_user_profile(
    request: Request, user_id: UserId, body: UserProfile, principal: Caller
) -> Response:
    """Change email, realname and comment; fields left out stay as they are."""
    _require_self_or_admin(request, principal, user_id, "update other users")
    problem = profile_problem(body.email, body.realname, body.comment)
    if problem:
        raise HarborError(400, problem)
    try:
        record = await services_of(request).accounts.update_profile(
            user_id, body.email, body.realname, body.comment
        )
    except AccountConflict as conflict:
        raise HarborError(409, str(conflict)) from None
    if record is None:
        raise HarborError(404, f"user {user_id} not found")
    _changed(request)
    fields = ",".join(sorted(body.model_fields_set))
    _audit(request, principal, "update", record.username, f"profile: {fields}" if fields else None)
    return Response(status_code=200)


@router.delete("/users/{user_id}", response_class=Response)
async def delete_user(request: Request, user_id: UserId, principal: Caller) -> Response:
    """Delete an account (system admins; not their own, nor the built-in admin)."""
    _require_admin(request, principal, "delete users")
    accounts = services_of(request).accounts
    if user_id == principal.id:
        raise HarborError(403, "you cannot delete your own account")
    record = await accounts.get(user_id)
    if record is None:
        raise HarborError(404, f"user {user_id} not found")
    if record.username == ADMIN_USERNAME:
        raise HarborError(403, f"the built-in {ADMIN_USERNAME!r} account cannot be deleted")
    if await accounts.delete(user_id) is None:
        raise HarborError(404, f"user {user_id} not found")
    _changed(request)
    _audit(request, principal, "delete", record.username, None)
    return Response(status_code=200)


@router.put("/users/{user_id}/password", response_class=Response)
async def update_user_password(
    request: Request, user_id: UserId, body: PasswordReq, principal: Caller
) -> Response:
    """Change a password. Your own needs ``old_password`` (checked like a login, so wrong
    guesses are rate-limited); an admin changing someone else's does not."""
    _require_self_or_admin(request, principal, user_id, "change other users' passwords")
    accounts = services_of(request).accounts
    if user_id == principal.id:
        if not body.old_password:
            raise HarborError(400, "old_password is required to change your own password")
        if await login(request, principal.name, body.old_password) is None:
            raise HarborError(403, "the current password is incorrect")
    problem = password_problem(body.new_password)
    if problem:
        raise HarborError(400, problem)
    record = await accounts.get(user_id)
    if record is None:
        raise HarborError(404, f"user {user_id} not found")
    if await accounts.password_matches(user_id, body.new_password):
        raise HarborError(400, "the new password is the same as the old one")
    if not await accounts.set_password(user_id, body.new_password):
        raise HarborError(404, f"user {user_id} not found")
    # A new password ends every UI session of the account, as a changed password should.
    await services_of(request).sessions.delete_for_user(user_id)
    _changed(request)
    _audit(request, principal, "password", record.username, None)
    return Response(status_code=200)


@router.put("/users/{user_id}/sysadmin", response_class=Response)
async def set_user_sysadmin(
    request: Request, user_id: UserId, body: UserSysAdminFlag, principal: Caller
) -> Response:
    """Grant or revoke system admin (system admins). The last admin cannot lose the flag."""
    _require_admin(request, principal, "change system admins")
    accounts = services_of(request).accounts
    record = await accounts.get(user_id)
    if record is None:
        raise HarborError(404, f"user {user_id} not found")
    try:
        changed = await accounts.set_sysadmin(user_id, body.sysadmin_flag)
    except LastAdminError as error:
        raise HarborError(403, str(error)) from None
    if not changed:
        raise HarborError(404, f"user {user_id} not found")
    _changed(request)
    detail = f"sysadmin_flag={'true' if body.sysadmin_flag else 'false'}"
    _audit(request, principal, "update", record.username, detail)
    return Response(status_code=200)
