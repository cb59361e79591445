"""Calling an external scanner adapter over Harbor's pluggable scanner API.

Every call is bounded in time and size: an adapter is a remote service an admin registered,
not something to trust with our memory or our workers. Errors become :class:`AdapterError`
with a message fit for a scan log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx

from portside.scanner.adapter_api import (
    ERROR_MIME,
    METADATA_MIME,
    SCAN_REQUEST_MIME,
    SCAN_RESPONSE_MIME,
    AdapterError,
)
from portside.scanner.registrations import Registration

__all__ = ["AdapterClient"]

MAX_RESPONSE_BYTES = 64 << 20  # a report of a large image is a few MB
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def auth_headers(registration: Registration) -> dict[str, str]:
    """The Authorization (or API key) header Harbor sends for each ``auth`` type."""
    credential = registration.access_credential
    if not registration.auth or not credential:
        return {}
    if registration.auth == "Basic":
        return {"Authorization": "Basic " + base64.b64encode(credential.encode()).decode()}
    if registration.auth == "Bearer":
        return {"Authorization": f"Bearer {credential}"}
    return {"X-ScannerAdapter-API-Key": credential}


class AdapterClient:
    def __init__(self, registration: Registration) -> None:
        self._registration = registration
        self._base = registration.url.rstrip("/") + "/api/v1"

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=REQUEST_TIMEOUT,
            verify=not self._registration.skip_cert_verify,
            headers=auth_headers(self._registration),
            follow_redirects=False,
        )

    async def _json(self, response: httpx.Response, what: str) -> Any:
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise AdapterError(f"{what}: the adapter's answer is too large")
        try:
            return response.json()
        except ValueError:
            raise AdapterError(f"{what}: the adapter did not answer with JSON") from None

    def _failure(self, response: httpx.Response, what: str) -> AdapterError:
        message = ""
        if response.headers.get("content-type", "").startswith(ERROR_MIME.split(";")[0]):
            try:
                message = str(response.json().get("error", {}).get("message", ""))[:500]
            except (ValueError, AttributeError):
                message = ""
        return AdapterError(
            f"{what}: the adapter answered {response.status_code}"
            + (f": {message}" if message else "")
        )

    async def metadata(self) -> dict[str, Any]:
        try:
            async with self._client() as client:
                response = await client.get(
                    f"{self._base}/metadata", headers={"Accept": METADATA_MIME}
                )
        except httpx.HTTPError as error:
            raise AdapterError(f"metadata: cannot reach the adapter: {error}") from None
        if response.status_code != 200:
            raise self._failure(response, "metadata")
        body = await self._json(response, "metadata")
        if not isinstance(body, dict) or not isinstance(body.get("scanner"), dict):
            raise AdapterError("metadata: the answer has no scanner")
        return body

    async def scan(
        self,
        registry_url: str,
        authorization: str,
        repository: str,
        digest: str,
        mime_type: str,
        report_mime: str,
        *,
        deadline_seconds: float = 1800,
    ) -> dict[str, Any]:
        """Ask for a scan and wait for its report (polling as ``Refresh-After`` says)."""
        request = {
            "registry": {"url": registry_url, "authorization": authorization},
            "artifact": {"repository": repository, "digest": digest, "mime_type": mime_type},
        }
        deadline = time.monotonic() + deadline_seconds
        try:
            async with self._client() as client:
                response = await client.post(
                    f"{self._base}/scan",
                    content=json.dumps(request),
                    headers={"Content-Type": SCAN_REQUEST_MIME, "Accept": SCAN_RESPONSE_MIME},
                )
                if response.status_code != 202:
                    raise self._failure(response, "scan")
                body = await self._json(response, "scan")
                scan_id = body.get("id") if isinstance(body, dict) else None
                if not isinstance(scan_id, str) or not scan_id or len(scan_id) > 256:
                    raise AdapterError("scan: the adapter returned no scan id")
                url = f"{self._base}/scan/{scan_id}/report"
                while True:
                    response = await client.get(url, headers={"Accept": report_mime})
                    if response.status_code == 200:
                        report = await self._json(response, "report")
                        if not isinstance(report, dict):
                            raise AdapterError("report: the answer is not an object")
                        return report
                    if response.status_code != 302:
                        raise self._failure(response, "report")
                    if time.monotonic() > deadline:
                        raise AdapterError("report: the adapter did not finish in time")
                    await asyncio.sleep(_refresh_after(response))
        except httpx.HTTPError as error:
            raise AdapterError(f"cannot reach the adapter: {error}") from None


def _refresh_after(response: httpx.Response) -> float:
    try:
        value = float(response.headers.get("refresh-after", "2"))
    except ValueError:
        value = 2.0
    return min(max(value, 0.2), 30.0)
