"""The PyPI client ``harborapi`` (pydantic-validated) drives Portside through a full workflow.

harborapi validates every response with its pydantic models. Its models are lenient on their own
(``extra="allow"``, lax coercion), so the client used here is stricter still: each response body
is validated again in strict JSON mode and may not carry fields the model does not know
(:class:`StrictHarborClient`). A misspelt field name or a number sent as a string therefore fails
the test instead of being ignored. Images are pushed with skopeo, as admin and as a robot.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from harborapi import HarborAsyncClient
from harborapi.models import (
    Access,
    Label,
    ProjectReq,
    RobotCreate,
    RobotPermission,
    UserCreationReq,
)
from pydantic import BaseModel, ValidationError

from tests.conftest import BACKENDS, _backend_env
from tests.support import scanning
from tests.support.oci import push_content
from tests.support.server import PortsideServer
from tests.support.vulndata import pypa_expected, shared_vulndb

from .clients import ClientEnv, Skopeo
from .images import single_arch_image

pytestmark = pytest.mark.slow

T = TypeVar("T")

# Fields Portside sends on purpose that harborapi's models (generated from a recent Harbor
# swagger) do not declare: Portside's audit extensions, fields of older Harbor swaggers that
# Portside still sends for older clients (chart_count), and the robot's
# creator (newer Harbor). Anything else unknown is a mismatch.
DELIBERATE_EXTRAS = {
    "AuditLog.result",
    "AuditLog.client_ip",
    "Project.chart_count",
    "ProjectSummary.chart_count",
    "Robot.creator",
    # What Harbor's own server adds to each finding it serves (status, and the digests that
    # share it), and the capability attributes of scanner spec 1.2; harborapi's models
    # predate them.
    "VulnerabilityItem.status",
    "VulnerabilityItem.artifact_digests",
    "ScannerCapability.additional_attributes",
}


def _unknown_fields(model: Any, where: str) -> list[str]:
    """Fields present in the response that the model does not declare, at any depth."""
    if isinstance(model, list):
        return [p for i, item in enumerate(model) for p in _unknown_fields(item, f"{where}[{i}]")]
    if isinstance(model, dict):
        return [p for k, v in model.items() for p in _unknown_fields(v, f"{where}.{k}")]
    if not isinstance(model, BaseModel):
        return []
    problems = [
        f"{where}.{name}: unknown field"
        for name in (model.model_extra or {})
        if f"{type(model).__name__}.{name}" not in DELIBERATE_EXTRAS
    ]
    for name in type(model).model_fields:
        problems += _unknown_fields(getattr(model, name), f"{where}.{name}")
    return problems


class StrictHarborClient(HarborAsyncClient):
    """harborapi with validation that cannot be switched off and reports what it tolerated."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, validate=True, raw=False, **kwargs)
        self.problems: dict[str, None] = {}  # ordered and without repeats

    def _construct_model(self, cls: type[T], data: Any) -> T:
        model = super()._construct_model(cls, data)  # harborapi's own validation: raises
        name = getattr(cls, "__name__", str(cls))
        assert isinstance(model, BaseModel)
        try:
            type(model).model_validate_json(json.dumps(data), strict=True)
        except ValidationError as exc:
            for error in exc.errors():
                location = ".".join(str(part) for part in error["loc"])
                problem = f"{name}.{location}: {error['msg']} (got {error.get('input')!r})"
                self.problems[problem] = None
        self.problems.update(dict.fromkeys(_unknown_fields(model, name)))
        return model


@pytest.fixture(params=BACKENDS)
def portside(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PortsideServer]:
    """A server of the test's own (the workflow lists users and audit entries registry-wide), on
    each backend of the shared ``registry`` fixture: SQLite + folder, PostgreSQL + S3."""
    for env in _backend_env(request, request.param):
        server = PortsideServer(tmp_path / "portside", env)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _skopeo(root: Path, host: str, username: str, password: str) -> Skopeo:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    tool = Skopeo(ClientEnv.create(root))
    tool.login(host, username, password)
    return tool


async def test_harborapi_workflow(portside: PortsideServer, tmp_path: Path) -> None:
    client = StrictHarborClient(
        url=f"{portside.url}/api/v2.0",
        username=portside.username,
        secret=portside.password,
        retry=None,
    )
    suffix = secrets.token_hex(3)
    project_name = f"hapi-{suffix}"

    # --- a user, a project and a member -------------------------------------------------------
    username = f"dev{suffix}"
    location = await client.create_user(
        UserCreationReq(
            username=username,
            email=f"{username}@example.com",
            realname="Dev Eloper",
            password="Developer-Pass-1",
            comment="harborapi",
        )
    )
    user_id = int(location.rstrip("/").rsplit("/", 1)[1])
    user = await client.get_user(user_id)
    assert user.username == username and user.user_id == user_id
    assert (await client.get_user_by_username(username)).user_id == user_id
    assert username in [u.username for u in await client.get_users()]
    assert (await client.get_current_user()).username == portside.username

    await client.create_project(ProjectReq(project_name=project_name, metadata=None))
    assert await client.project_exists(project_name)
    project = await client.get_project(project_name)
    assert project.name == project_name and project.project_id is not None
    assert project_name in [p.name for p in await client.get_projects()]
    await client.get_project_summary(project_name)

    await client.add_project_member_user(project_name, username, 2)  # developer
    members = await client.get_project_members(project_name)
    assert {m.entity_name: m.role_id for m in members}[username] == 2

    # --- push an image with skopeo, list repositories and artifacts with tags ------------------
    admin_skopeo = _skopeo(tmp_path / "admin", portside.host, portside.username, portside.password)
    layout = single_arch_image(tmp_path / "image", tag="v1")
    admin_skopeo.copy(
        layout.ref, f"docker://{portside.host}/{project_name}/app:v1", "--preserve-digests"
    )
    repositories = await client.get_repositories(project_name)
    assert [r.name for r in repositories] == [f"{project_name}/app"]
    assert (await client.get_repository(project_name, "app")).artifact_count == 1
    artifacts = await client.get_artifacts(project_name, "app", with_tag=True)
    assert [a.digest for a in artifacts] == [layout.top_digest]
    assert [t.name for t in artifacts[0].tags or []] == ["v1"]
    artifact = await client.get_artifact(project_name, "app", "v1", with_label=True)
    assert artifact.digest == layout.top_digest
    assert [t.name for t in await client.get_artifact_tags(project_name, "app", "v1")] == ["v1"]

    # --- a label on the artifact ----------------------------------------------------------------
    label_location = await client.create_label(
        Label(name=f"qa-{suffix}", description="checked", color="#00ff00", scope="g")
    )
    label_id = int(label_location.rstrip("/").rsplit("/", 1)[1])
    label = await client.get_label(label_id)
    assert label.name == f"qa-{suffix}"
    await client.add_artifact_label(project_name, "app", "v1", Label(id=label_id))
    labelled = await client.get_artifact(project_name, "app", "v1", with_label=True)
    assert [item.id for item in labelled.labels or []] == [label_id]

    # --- a robot, then push with it ---------------------------------------------------------------
    created = await client.create_robot(
        RobotCreate(
            name=f"ci{suffix}",
            description="pushes",
            level="project",
            duration=30,
            disable=False,
            permissions=[
                RobotPermission(
                    kind="project",
                    namespace=project_name,
                    access=[
                        Access(resource="repository", action="push"),
                        Access(resource="repository", action="pull"),
                    ],
                )
            ],
        )
    )
    assert created.name and created.secret and created.id is not None
    robot = await client.get_robot(created.id)
    assert robot.name == created.name
    project_robots = await client.get_robots(
        query=f"Level=project,ProjectID={project.project_id}"
    )  # without q Harbor lists system robots only
    assert created.name in [r.name for r in project_robots]
    robot_skopeo = _skopeo(tmp_path / "robot", portside.host, created.name, created.secret)
    second = single_arch_image(tmp_path / "image2", tag="v2")
    robot_skopeo.copy(
        second.ref, f"docker://{portside.host}/{project_name}/app:v2", "--preserve-digests"
    )
    digests = {a.digest for a in await client.get_artifacts(project_name, "app")}
    assert digests == {layout.top_digest, second.top_digest}

    # --- delete the artifact ----------------------------------------------------------------------
    await client.delete_artifact(project_name, "app", layout.top_digest)
    remaining = [a.digest for a in await client.get_artifacts(project_name, "app")]
    assert remaining == [second.top_digest]

    # --- the audit log and the quotas -------------------------------------------------------------
    logs = await client.get_audit_logs(limit=100)
    operations = {(log.operation, log.resource) for log in logs}
    assert any(op == "create" and project_name in (res or "") for op, res in operations), logs
    assert await client.get_project_logs(project_name, limit=100)
    quotas = await client.get_quotas(reference="project", reference_id=str(project.project_id))
    assert len(quotas) == 1 and quotas[0].ref is not None
    assert (await client.get_quota(quotas[0].id)).id == quotas[0].id

    assert not client.problems, "\n".join(client.problems)


async def test_harborapi_scanning(portside: PortsideServer) -> None:
    """Scanning, scanners, the allowlist, scan-all and the CVE export, through harborapi."""
    from harborapi.models import (
        CVEAllowlist,
        CVEAllowlistItem,
        ScanDataExportRequest,
        Schedule,
        ScheduleObj,
    )

    imported = portside.run_command("vulndb", "import", str(shared_vulndb() / "pypa"))
    assert imported.returncode == 0, imported.stderr
    client = StrictHarborClient(
        url=f"{portside.url}/api/v2.0",
        username=portside.username,
        secret=portside.password,
        retry=None,
    )
    project_name = f"hscan-{secrets.token_hex(3)}"
    await client.create_project(ProjectReq(project_name=project_name, metadata=None))
    project = await client.get_project(project_name)
    image = scanning.python_image({"requests": "2.19.1"})
    with portside.client() as http:
        push_content(http, f"{project_name}/py", image, "v1")

    await client.scan_artifact(project_name, "py", "v1")
    for _ in range(300):
        artifact = await client.get_artifact(project_name, "py", "v1", with_scan_overview=True)
        overviews = artifact.scan_overview.root if artifact.scan_overview else {}
        overview = overviews.get(scanning.REPORT)
        if overview is not None and overview.scan_status == "Success":
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the scan did not finish")
    reports = await client.get_artifact_vulnerability_reports(project_name, "py", "v1")
    report = reports[scanning.REPORT]
    expected = pypa_expected({"requests": "2.19.1"})
    assert {(v.id, v.package) for v in report.vulnerabilities} == expected
    assert overview.summary is not None and overview.summary.total == len(expected)
    log = await client.get_artifact_scan_report_log(
        project_name, "py", "v1", str(overview.report_id)
    )
    assert "Success" in log

    scanners = await client.get_scanners()
    builtin = next(s for s in scanners if s.name == "Portside")
    assert builtin.is_default and builtin.uuid
    assert (await client.get_scanner(builtin.uuid)).uuid == builtin.uuid
    metadata = await client.get_scanner_metadata(builtin.uuid)  # type: ignore[arg-type]
    assert metadata.scanner is not None and metadata.scanner.name == "Portside"
    assert (await client.get_project_scanner(project_name)).uuid == builtin.uuid
    await client.set_project_scanner(project_name, builtin.uuid)
    candidates = await client.get_project_scanner_candidates(project_name)
    assert builtin.uuid in [c.uuid for c in candidates]

    cve = sorted(expected)[0][0]
    await client.update_cve_allowlist(CVEAllowlist(items=[CVEAllowlistItem(cve_id=cve)]))
    allowlist = await client.get_cve_allowlist()
    assert [item.cve_id for item in allowlist.items or []] == [cve]
    await client.update_cve_allowlist(CVEAllowlist(items=[]))

    await client.create_scan_all_schedule(Schedule(schedule=ScheduleObj(type="Manual")))
    stats = await client.get_scan_all_metrics()
    assert (stats.total or 0) >= 1
    await client.update_scan_all_schedule(Schedule(schedule=ScheduleObj(type="Daily")))
    schedule = await client.get_scan_all_schedule()
    assert schedule.schedule is not None and schedule.schedule.type.value == "Daily"

    job = await client.export_scan_data(
        ScanDataExportRequest(job_name="hapi", projects=[project.project_id])
    )
    assert job.id is not None
    for _ in range(300):
        execution = await client.get_scan_export(job.id)
        if execution.status in ("Success", "Error"):
            break
        await asyncio.sleep(0.2)
    assert execution.status == "Success", execution
    assert job.id in [e.id for e in (await client.get_scan_exports()).items or []]
    csv_file = await client.download_scan_export(job.id)
    assert cve.encode() in bytes(csv_file)

    assert not client.problems, "\n".join(client.problems)


async def test_strict_client_reports_unknown_fields() -> None:
    """The strictness above can fail: a misspelt field and a wrongly typed one are reported."""
    from harborapi.models import UserResp

    client = StrictHarborClient(url="http://127.0.0.1:9/api/v2.0", username="u", secret="p")
    client._construct_model(UserResp, {"user_id": "7", "username": "x", "sysadmin": True})
    assert any("user_id" in p for p in client.problems), client.problems
    assert any("sysadmin: unknown field" in p for p in client.problems), client.problems
