"""Fuzz ``/api/v2.0`` with schemathesis against Portside's own OpenAPI document.

A 5xx answer, a status code the document does not declare, a missing or undeclared content
type, or a body that does not match the declared schema is a bug (of the route or of the
document); so is a request the document calls valid that the server refuses (but for refusals
that depend on state, see :data:`_STATEFUL_REFUSALS`), checked when PORTSIDE_FUZZ_ACCEPTANCE=1
while the gaps in :data:`_NOT_YET_DOCUMENTED` remain. That every 405 names every method of
its path is checked over all paths by ``test_openapi.py``. The run is bounded so it fits in
CI: a fixed seed, a few examples per operation, a per-request timeout, and a deadline.

The fuzzing deletes and rewrites whatever it finds (users, projects, quotas ...), so it runs
against a dedicated server, never the shared ``registry``, on each backend the ``registry``
fixture covers: SQLite + folder, and PostgreSQL + S3 (where each request costs more, so fewer
examples fit the same time budget, see :data:`LIMITS`). Two passes per backend: as the admin
(the whole API is reachable) and anonymously (the gate must answer every route in the
documented way). Operations that would stop the server from answering the rest of the run are
left out, see :data:`_UNSAFE`.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, Config, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import BACKENDS, _backend_env
from tests.support.oci import image_manifest, push_content
from tests.support.server import PortsideServer

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Limits:
    """How much one pass may do: examples per operation (and generation mode), and a wall-clock
    cap; the test fails (rather than silently skipping) if the cap is exceeded."""

    max_examples: int
    budget_seconds: float


# With ~60-120 operations these keep each pass near a minute on this machine, but a busy one
# takes longer (85 to 128 s on SQLite, 46 s on PostgreSQL, with other test runs going). The caps
# are well above that: the examples, not the clock, set how much is checked, and a cap only
# stops a run gone wrong.
LIMITS = {
    "sqlite-fs": Limits(max_examples=20, budget_seconds=300.0),
    "postgres-s3": Limits(max_examples=6, budget_seconds=150.0),
}
SEED = 4_2024
# Refusals of requests the document calls valid that no schema can rule out, because they
# depend on the server's state or on several fields together; each is a 400 in its own words.
_STATEFUL_REFUSALS = (
    "retention_days is only supported when creating a proxy cache project",
    "project_id is required to list project labels",  # with scope=p
    "must with project ID when to query project robots",  # with q=Level=project
    "old_password is required to change your own password",
    "the new password is the same as the old one",
    "make another scanner the default instead",
    "cannot reach the adapter",  # a registration pointing nowhere
    "in this registry",  # importing advisories from an artifact that is not there
    "the project contains repositories, can not be deleted",
    "this artifact has no SBOM",
    "the body must hold exactly the metadata",  # the one named in the path
    "project_id is required for a project label",  # with scope p
    "name exactly one of member_user",  # member_user or member_group
    "no scan of this artifact is queued or running",
    "cannot update the level or name of robot",  # they must stay as they are
    # JSON Schema cannot tell 2 from 2.0; the server, like Harbor, takes only the former.
    "Input should be a valid integer",
)
# Refusals the document does not state yet (issue 13, section 5): each is a gap to close by
# declaring the rule, then to delete here. Anything not listed fails the run.
_NOT_YET_DOCUMENTED = (
    "unsupported scope",  # /users/current/permissions?scope=, declared in system.py
    "bad request empty permission",  # robot permissions: required and not empty
    "bad request empty access",  # a permission block's access: required and not empty
    "bad request permission: ",  # an access's resource:action pair, from the policy's list
    "must not contain control characters",  # scanner fields: str.isprintable
    "control characters or too long",  # project name filters: text_filter's 255
    "from is required",  # the artifact copy's ?from=: required, <project>/<repository>:<tag>
    "from must look like",
    "is not a valid repository and tag",
    "project_name is required",  # on creation only (ProjectReq serves updates too)
    "unknown metadata",  # project metadata: the names allowed
    "no metadata given",
    "proxy cache projects are not supported",  # registry_id must be null
    "invalid tag name",  # oci.names' tag pattern
    "Input should be less than or equal to",  # project storage_limit vs its quota ceiling
    "projects: name at least one project to export from",
    "hard.storage must be",
)


@schemathesis.check
def positive_data_accepted(ctx: Any, response: Response, case: Case) -> bool | None:
    """:func:`positive_data_acceptance`, but for the refusals listed above."""
    if 400 <= response.status_code < 500 and any(
        refusal in response.text for refusal in _STATEFUL_REFUSALS + _NOT_YET_DOCUMENTED
    ):
        return None
    return positive_data_acceptance(ctx, response, case)  # type: ignore[no-any-return]


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Until the gaps above are closed the acceptance check is run on demand, not in CI: in 1 of 3
# runs it failed on a refusal its lists did not hold yet.
if os.environ.get("PORTSIDE_FUZZ_ACCEPTANCE") == "1":
    CHECKS.append(positive_data_accepted)
# Changing these would make the rest of the run meaningless: read-only mode refuses every write,
# another auth mode or a new admin password locks the fuzzer out.
_UNSAFE = {
    ("PUT", "/configurations"),
}
_ADMIN_ID = 1


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def limits(backend: str) -> Limits:
    return LIMITS[backend]


@pytest.fixture(scope="module")
def fuzz_server(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PortsideServer]:
    """A Portside of this module's own: the fuzzer changes global state freely."""
    for env in _backend_env(request, backend):
        server = PortsideServer(
            tmp_path_factory.mktemp(f"portside-fuzz-{backend}"),
            {
                **env,
                "PORTSIDE_AUTH__LOGIN_FAILURES_PER_ACCOUNT": "100000 per 5 minutes",
                "PORTSIDE_AUTH__LOGIN_FAILURES_PER_ADDRESS": "100000 per 5 minutes",
            },
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def known(fuzz_server: PortsideServer) -> dict[str, str]:
    """Existing resources, so that some cases reach past the 404s into the handlers."""
    suffix = secrets.token_hex(3)
    manifest = image_manifest()
    with fuzz_server.client() as client:
        push_content(client, "library/fuzz", manifest, "v1")
        user = client.post(
            "/api/v2.0/users",
            json={
                "username": f"fz{suffix}",
                "email": f"fz{suffix}@example.com",
                "realname": "F",
                "password": "Fuzzing-Pass-1",
                "comment": "",
            },
        )
        group = client.post(
            "/api/v2.0/usergroups", json={"group_name": f"g{suffix}", "group_type": 2}
        )
        member = client.post(
            "/api/v2.0/projects/library/members",
            json={"role_id": 2, "member_user": {"username": f"fz{suffix}"}},
        )
        robot = client.post(
            "/api/v2.0/robots",
            json={
                "name": f"r{suffix}",
                "level": "project",
                "duration": -1,
                "permissions": [
                    {
                        "kind": "project",
                        "namespace": "library",
                        "access": [{"resource": "repository", "action": "pull"}],
                    }
                ],
            },
        )
        label = client.post("/api/v2.0/labels", json={"name": f"l{suffix}", "scope": "g"})
        for response in (user, group, member, robot, label):
            assert response.status_code == 201, response.text

        def last(response: Any) -> str:
            return str(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])

        return {
            "project_name_or_id": "library",
            "project_name": "library",
            "repository_name": "fuzz",
            "reference": manifest.digest,
            "tag_name": "v1",
            "addition": "build_history",
            "meta_name": "public",
            "user_id": last(user),
            "group_id": last(group),
            "mid": last(member),
            "robot_id": str(robot.json()["id"]),
            "label_id": last(label),
            "quota_id": "1",
        }


@pytest.fixture(scope="module")
def api_schema(fuzz_server: PortsideServer, limits: Limits) -> Any:
    config = Config.from_dict(
        {
            "seed": SEED,
            "phases": {"examples": {"enabled": True}, "fuzzing": {"enabled": True}},
            "generation": {"max-examples": limits.max_examples},
            "request-timeout": 10,
        }
    )
    schema = schemathesis.openapi.from_url(
        f"{fuzz_server.url}/api/v2.0/openapi.json", config=config, timeout=10
    )
    return schema.exclude(
        func=lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in _UNSAFE
    )


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,  # the per-request timeout bounds each example
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report what was found
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )


# Positive cases reach the handlers; negative ones (that break the document's constraints)
# exercise validation, which must answer 400 in Harbor's envelope, never 5xx.
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def _protects_admin(case: Case) -> bool:
    """False for calls that would take the admin's account away from the fuzzer."""
    if case.operation.path.startswith("/users/{user_id}") and case.method.upper() != "GET":
        return str((case.path_parameters or {}).get("user_id")) != str(_ADMIN_ID)
    return True


def _basic(server: PortsideServer) -> str:
    token = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    return f"Basic {token}"


def _fuzz(
    api_schema: Any, headers: dict[str, str], limits: Limits, known: dict[str, str]
) -> list[str]:
    """Run every operation through the checks; return one line per failing operation."""
    failures: list[str] = []
    budget = limits.budget_seconds
    deadline = time.monotonic() + budget
    example_settings = _settings(limits.max_examples)
    spent: dict[str, float] = {}  # seconds per operation, to say where a budget went
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert operations, "the document has no operations"
    # Deletions last, so the known resources live as long as possible.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    for operation in operations:
        names = [p.name for p in operation.path_parameters]
        existing = {name: known[name] for name in names if name in known}
        variants: list[tuple[GenerationMode, dict[str, str] | None]] = [
            (mode, None) for mode in MODES
        ]
        if existing:
            variants.append((GenerationMode.POSITIVE, existing))
        started = time.monotonic()
        for mode, path_parameters in variants:
            if time.monotonic() > deadline:
                slowest = sorted(spent.items(), key=lambda item: -item[1])[:5]
                failures.append(
                    f"time budget of {budget}s spent before {operation.label}; slowest: "
                    + ", ".join(f"{label} {seconds:.1f}s" for label, seconds in slowest)
                )
                return failures

            @given(
                case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            )
            @example_settings
            def check(case: Case) -> None:
                assume(_protects_admin(case))
                case.headers = {**(case.headers or {}), **headers}
                if not headers:
                    case.headers.pop("Authorization", None)
                case.call_and_validate(checks=CHECKS)

            try:
                check()
            except Unsatisfiable:
                # Nothing in the operation can be made invalid (no parameters, or only free
                # strings): there is no negative case to send.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except BaseException as exc:  # collect them all (failure groups too), fail once
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                failures.append(f"{operation.label} ({mode}): {exc}")
        spent[operation.label] = time.monotonic() - started
    return failures


def test_fuzz_as_admin(
    api_schema: Any, fuzz_server: PortsideServer, known: dict[str, str], limits: Limits
) -> None:
    credentials = {"Authorization": _basic(fuzz_server)}
    failures = _fuzz(api_schema, credentials, limits, known)
    assert not failures, "\n\n".join(failures)


def test_fuzz_anonymous(api_schema: Any, known: dict[str, str], limits: Limits) -> None:
    failures = _fuzz(api_schema, {}, limits, known)
    assert not failures, "\n\n".join(failures)


def test_admin_still_logs_in(fuzz_server: PortsideServer) -> None:
    """After the fuzzing the admin account still works: nothing above locked it."""
    with fuzz_server.client() as client:
        assert client.get("/api/v2.0/users/current").status_code == 200
