"""Conventions every ``/api/v2.0`` route shares: error envelope, request ids, body limit."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from tests.support.server import PortsideServer


def _harbor_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errors"][0]["code"] == code, body
    assert body["errors"][0]["message"]


def test_request_id_is_echoed_or_created(client: httpx.Client) -> None:
    response = client.get("/api/v2.0/projects", headers={"X-Request-Id": "abc-123"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "abc-123"
    made_up = client.get("/api/v2.0/projects").headers["X-Request-Id"]
    assert len(made_up) == 36


def test_unknown_route_and_method_use_harbors_envelope(client: httpx.Client) -> None:
    _harbor_error(client.get("/api/v2.0/no-such-thing"), 404, "NOT_FOUND")
    _harbor_error(client.patch("/api/v2.0/projects"), 405, "METHOD_NOT_ALLOWED")


def test_oversized_body_is_refused_before_parsing(client: httpx.Client) -> None:
    big = b'{"project_name": "' + b"a" * (2 << 20) + b'"}'
    response = client.post(
        "/api/v2.0/projects", content=big, headers={"Content-Type": "application/json"}
    )
    _harbor_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_oversized_chunked_body_is_refused(registry: PortsideServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"project_name": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    with registry.client() as client:
        response = client.post(
            "/api/v2.0/projects", content=chunks(), headers={"Content-Type": "application/json"}
        )
    _harbor_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_malformed_json_is_a_bad_request(client: httpx.Client) -> None:
    response = client.post(
        "/api/v2.0/projects", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    _harbor_error(response, 400, "BAD_REQUEST")


def test_openapi_document_is_served(registry: PortsideServer) -> None:
    response = httpx.get(f"{registry.url}/api/v2.0/openapi.json", timeout=30)
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/projects" in paths and "/robots" in paths and "/users" in paths
