"""Air-gapped updates: advisories pushed to Portside as an OCI artifact with a real client
(oras-py), imported from there through the API and with the CLI, and used by the next scan."""

from __future__ import annotations

import io
import json
import secrets
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support import scanning
from tests.support.oci import push_content
from tests.support.oras import oras_client
from tests.support.server import PortsideServer


def _record(advisory_id: str, package: str, fixed: str) -> dict[str, object]:
    return {
        "schema_version": "1.6.0",
        "id": advisory_id,
        "modified": "2026-11-01T00:00:00Z",
        "summary": "made up for the air-gap test",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
    }


def _push_advisories(
    registry: PortsideServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repository: str
) -> tuple[str, str, str]:
    """Push a zip of one record and a bare JSON record; returns (package, zip id, json id)."""
    package = f"airgap-demo-{secrets.token_hex(3)}"
    in_zip, in_json = f"TEST-{secrets.token_hex(4)}", f"TEST-{secrets.token_hex(4)}"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(f"{in_zip}.json", json.dumps(_record(in_zip, package, "2.0")))
        bundle.writestr("README.txt", "not a record file: ignored")
        bundle.writestr("broken.json", "{not json")
    (tmp_path / "osv.zip").write_bytes(archive.getvalue())
    (tmp_path / "one.json").write_text(json.dumps(_record(in_json, package, "1.5")))
    monkeypatch.setenv("HOME", str(tmp_path))  # oras-py keeps its login in ~/.docker
    config = str(tmp_path / "oras-config.json")
    client = oras_client(registry.host)
    client.login(registry.username, registry.password, hostname=registry.host, config_path=config)
    pushed = client.push(
        target=f"{registry.host}/{repository}",
        files=[
            f"{tmp_path / 'osv.zip'}:application/zip",
            f"{tmp_path / 'one.json'}:application/json",
        ],
        disable_path_validation=True,
        config_path=config,
        quiet=True,
    )
    assert pushed.status_code == 201, pushed.text
    return package, in_zip, in_json


def test_advisories_pushed_as_an_artifact_are_imported_and_used(
    registry: PortsideServer,
    client: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = scanning.project(client)
    package, in_zip, in_json = _push_advisories(
        registry, tmp_path, monkeypatch, f"{project}/vulndb:v1"
    )
    imported = client.post(
        "/api/v2.0/system/vulndb/import",
        json={"repository": f"{project}/vulndb", "reference": "v1"},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["advisories"] == 2
    assert imported.json()["malformed"] == 1  # broken.json
    status = client.get("/api/v2.0/system/vulndb").json()
    assert status["source"].startswith(f"registry: {project}/vulndb@sha256:")

    image = scanning.python_image({package: "1.0"})
    repository = f"{project}/uses-it"
    push_content(client, repository, image, "v1")
    report = scanning.scan(client, repository, image.digest)
    found = {(v["id"], v["fix_version"]) for v in report["vulnerabilities"]}
    assert found == {(in_zip, "2.0"), (in_json, "1.5")}


def test_the_cli_imports_from_the_registry_too(
    registry: PortsideServer,
    client: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = scanning.project(client)
    _push_advisories(registry, tmp_path, monkeypatch, f"{project}/vulndb:v2")
    done = registry.run_command(
        "vulndb", "import", "--from-registry", f"{project}/vulndb:v2", "-o", "json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["advisories"] == 2
    missing = registry.run_command("vulndb", "import", "--from-registry", f"{project}/nope:v1")
    assert missing.returncode == 1
    assert "no artifact" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize(
    "body",
    [
        {"repository": "library/does-not-exist", "reference": "v1"},
        {"repository": "../etc", "reference": "v1"},
        {"repository": "library/x", "reference": "sha256:zz"},
    ],
)
def test_bad_import_requests_are_clear_errors(client: httpx.Client, body: dict[str, str]) -> None:
    response = client.post("/api/v2.0/system/vulndb/import", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "BAD_REQUEST"


def test_a_non_admin_may_not_import(registry: PortsideServer, client: httpx.Client) -> None:
    user = f"u{secrets.token_hex(3)}"
    client.post(
        "/api/v2.0/users",
        json={"username": user, "password": "User-Pass-1", "email": f"{user}@example.com"},
    )
    with httpx.Client(base_url=registry.url, auth=(user, "User-Pass-1")) as plain:
        refused = plain.post(
            "/api/v2.0/system/vulndb/import", json={"repository": "library/x", "reference": "v"}
        )
        assert refused.status_code == 403
        assert plain.get("/api/v2.0/system/vulndb").status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"repository": "library/x\u0000y", "reference": "v1"},
        {"repository": "\udb4f\udfd2library", "reference": "v1"},
        {"repository": "library/x", "reference": "\u0014"},
        {"repository": "library/x", "reference": "v1\u0000"},
    ],
)
def test_hostile_names_are_refused_before_any_query(
    client: httpx.Client, body: dict[str, str]
) -> None:
    response = client.post(
        "/api/v2.0/system/vulndb/import",
        content=json.dumps(body),  # surrogates as JSON escapes, as schemathesis sent them
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["errors"][0]["message"]
