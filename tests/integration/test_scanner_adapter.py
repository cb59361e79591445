"""Harbor's pluggable scanner API, both sides, on real servers: Portside serves its built-in
scanner through the API and uses it as an external scanner; an external adapter gets a pull
token for exactly the artifact it scans."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.support import scanning
from tests.support.oci import push_content
from tests.support.server import PortsideServer
from tests.support.vulndata import pypa_expected

ADAPTER = "/scanner-adapter/api/v1"
METADATA_MIME = "application/vnd.scanner.adapter.metadata+json; version=1.0"
ERROR_MIME = "application/vnd.scanner.adapter.error+json; version=1.0"


def _register(client: httpx.Client, url: str, **extra: Any) -> str:
    body = {"name": f"adapter{secrets.token_hex(3)}", "url": url, **extra}
    created = client.post("/api/v2.0/scanners", json=body)
    assert created.status_code == 201, created.text
    return created.headers["Location"].rsplit("/", 1)[1]


def test_portside_scans_through_its_own_adapter_api(
    vulndb: PortsideServer,
    client: httpx.Client,
) -> None:
    registration = _register(
        client,
        f"{vulndb.url}/scanner-adapter",
        auth="Basic",
        access_credential=f"{vulndb.username}:{vulndb.password}",
        use_internal_addr=True,
    )
    try:
        project = scanning.project(client)
        chosen = client.put(f"/api/v2.0/projects/{project}/scanner", json={"uuid": registration})
        assert chosen.status_code == 200, chosen.text
        assert client.get(f"/api/v2.0/projects/{project}/scanner").json()["uuid"] == registration
        packages = {"requests": "2.19.1", "jinja2": "2.10"}
        image = scanning.python_image(packages)
        repository = f"{project}/external"
        push_content(client, repository, image, "v1")
        report = scanning.scan(client, repository, image.digest)
        assert {(v["id"], v["package"]) for v in report["vulnerabilities"]} == pypa_expected(
            packages
        )
        assert report["scanner"]["name"] == "Portside"
        metadata = client.get(f"/api/v2.0/scanners/{registration}/metadata")
        assert metadata.status_code == 200
        assert metadata.json()["scanner"]["name"] == "Portside"
    finally:
        assert client.delete(f"/api/v2.0/scanners/{registration}").status_code == 200


def test_an_image_the_advisories_do_not_cover_fails_its_adapter_scan(
    vulndb: PortsideServer,
    client: httpx.Client,
) -> None:
    # The adapter API cannot mark a report incomplete: an Alpine image, with no Alpine
    # advisories imported, fails with the reason instead of passing as clean.
    registration = _register(
        client,
        f"{vulndb.url}/scanner-adapter",
        auth="Basic",
        access_credential=f"{vulndb.username}:{vulndb.password}",
        use_internal_addr=True,
    )
    try:
        project = scanning.project(client)
        chosen = client.put(f"/api/v2.0/projects/{project}/scanner", json={"uuid": registration})
        assert chosen.status_code == 200, chosen.text
        image = scanning.alpine_image()
        repository = f"{project}/alpine"
        push_content(client, repository, image, "v1")
        path = scanning.artifact_path(repository, image.digest)
        assert client.post(f"{path}/scan").status_code == 202
        ended = scanning.wait_for_scan(client, repository, image.digest)
        assert ended["scan_status"] == "Error"
        assert "no advisories for Alpine:v3.19" in ended["message"]
        assert client.get(f"{path}/additions/vulnerabilities").json() == {}
    finally:
        assert client.delete(f"/api/v2.0/scanners/{registration}").status_code == 200


def test_the_adapter_api_is_for_system_admins_only(
    registry: PortsideServer, client: httpx.Client
) -> None:
    anonymous = httpx.get(f"{registry.url}{ADAPTER}/metadata")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == ERROR_MIME
    user = f"plain{secrets.token_hex(3)}"
    created = client.post(
        "/api/v2.0/users",
        json={
            "username": user,
            "password": "Plain-Pass-1",
            "email": f"{user}@example.com",
            "realname": user,
        },
    )
    assert created.status_code == 201
    refused = httpx.get(f"{registry.url}{ADAPTER}/metadata", auth=(user, "Plain-Pass-1"))
    assert refused.status_code == 403
    metadata = client.get(f"{ADAPTER}/metadata")
    assert metadata.status_code == 200
    assert metadata.headers["content-type"] == METADATA_MIME
    assert scanning.REPORT in metadata.json()["capabilities"][0]["produces_mime_types"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"registry": {"url": "ftp://x"}, "artifact": {}}).encode(),
        json.dumps(
            {"registry": {"url": "http://127.0.0.1:9"}, "artifact": {"repository": "a"}}
        ).encode(),
    ],
)
def test_the_adapter_refuses_bad_scan_requests(client: httpx.Client, body: bytes) -> None:
    response = client.post(
        f"{ADAPTER}/scan",
        content=body,
        headers={"Content-Type": "application/vnd.scanner.adapter.scan.request+json; version=1.0"},
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == ERROR_MIME
    assert response.json()["error"]["message"]


def test_an_unknown_scan_report_is_404(client: httpx.Client) -> None:
    assert client.get(f"{ADAPTER}/scan/{secrets.token_hex(8)}/report").status_code == 404


# -- a scripted external adapter --------------------------------------------------------------


class _Adapter(BaseHTTPRequestHandler):
    """Answers the scanner API like a real adapter and remembers what Portside sent."""

    requests: list[dict[str, Any]] = []
    report: dict[str, Any] = {}

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: Any, mime: str) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        request["content_type"] = self.headers.get("Content-Type")
        request["adapter_auth"] = self.headers.get("X-ScannerAdapter-API-Key")
        type(self).requests.append(request)
        self._send(
            202, {"id": "scan-1"}, "application/vnd.scanner.adapter.scan.response+json; version=1.0"
        )

    def do_GET(self) -> None:
        if self.path.endswith("/metadata"):
            metadata = {
                "scanner": {"name": "Scripted", "vendor": "Tests", "version": "1"},
                "capabilities": [],
            }
            self._send(200, metadata, METADATA_MIME)
        else:
            self._send(200, type(self).report, scanning.REPORT)


@pytest.fixture
def adapter() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Adapter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Adapter.requests = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_external_scanner_may_pull_only_the_artifact_it_scans(
    registry: PortsideServer, client: httpx.Client, adapter: str
) -> None:
    _Adapter.report = {
        "scanner": {"name": "Scripted", "vendor": "Tests", "version": "1"},
        "vulnerabilities": [
            {
                "id": "CVE-2099-0001",
                "package": "libx",
                "version": "1.0",
                "fix_version": "1.1",
                "severity": "High",
                "links": ["https://example.com/CVE-2099-0001"],
                "unexpected": {"nested": "dropped"},
            },
            {"id": 42, "package": "ignored because its id is not a string"},
            {"id": "CVE-2099-0002", "package": "liby", "version": "2", "severity": "Bogus"},
        ],
    }
    registration = _register(
        client,
        adapter,
        auth="X-ScannerAdapter-API-Key",
        access_credential="k3y",
        use_internal_addr=True,
    )
    try:
        project = scanning.project(client)
        client.put(f"/api/v2.0/projects/{project}/scanner", json={"uuid": registration})
        repository = f"{project}/target"
        scanned = scanning.python_image({"requests": "2.19.1"})
        other = scanning.python_image({"flask": "0.12"})
        push_content(client, repository, scanned, "v1")
        push_content(client, repository, other, "v2")
        report = scanning.scan(client, repository, scanned.digest)
        assert [v["id"] for v in report["vulnerabilities"]] == ["CVE-2099-0001", "CVE-2099-0002"]
        assert "unexpected" not in report["vulnerabilities"][0]
        assert report["vulnerabilities"][1]["severity"] == "Unknown"

        sent = _Adapter.requests[-1]
        assert sent["adapter_auth"] == "k3y"
        assert sent["content_type"].startswith("application/vnd.scanner.adapter.scan.request+json")
        assert sent["artifact"] == {
            "repository": repository,
            "digest": scanned.digest,
            "mime_type": "application/vnd.oci.image.manifest.v1+json",
        }
        assert sent["registry"]["url"] == registry.url
        token = {"Authorization": sent["registry"]["authorization"]}
        assert token["Authorization"].startswith("Bearer ")
        with httpx.Client(base_url=registry.url, headers=token) as scanner:
            accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
            assert (
                scanner.get(
                    f"/v2/{repository}/manifests/{scanned.digest}", headers=accept
                ).status_code
                == 200
            )
            for blob in scanned.blobs:
                assert scanner.get(f"/v2/{repository}/blobs/{blob.digest}").status_code == 200
            assert scanner.get(f"/v2/{repository}/manifests/v1", headers=accept).status_code in (
                401,
                403,
            )
            assert scanner.get(
                f"/v2/{repository}/manifests/{other.digest}", headers=accept
            ).status_code in (401, 403)
            assert scanner.get(f"/v2/{repository}/blobs/{other.blobs[0].digest}").status_code in (
                401,
                403,
            )
            assert scanner.get(f"/v2/{repository}/tags/list").status_code in (401, 403)
            assert scanner.post(f"/v2/{repository}/blobs/uploads/").status_code in (401, 403)
            assert scanner.get(f"/api/v2.0/projects/{project}").status_code == 401
    finally:
        client.delete(f"/api/v2.0/scanners/{registration}")
