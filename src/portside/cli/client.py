"""A small synchronous client for Portside's (Harbor's) ``/api/v2.0``, for the CLI.

Imported only by client commands, so ``portside serve`` never loads httpx for it. Every failure
a user can cause (unreachable server, bad password, missing project...) becomes an
:class:`ApiError` whose message is one line taken from Harbor's ``{"errors": [...]}`` body.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from typing import Any

import click
import httpx

from portside.cli.credentials import Credentials, Tls

__all__ = ["API_PREFIX", "Api", "ApiError"]

API_PREFIX = "/api/v2.0"
PAGE_SIZE = 100


class ApiError(click.ClickException):
    """An API call failed; the CLI exits 1 with ``message``."""

    exit_code = 1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _error_message(response: httpx.Response) -> str:
    detail = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        messages = [
            str(error.get("message") or error.get("code"))
            for error in body["errors"]
            if isinstance(error, dict)
        ]
        detail = "; ".join(m for m in messages if m)
    if not detail:
        detail = response.reason_phrase or "request failed"
    hint = {
        401: " (check the username and password; run portside login)",
        403: " (the account lacks the permission)",
    }.get(response.status_code, "")
    return f"{detail}{hint} [HTTP {response.status_code}]"


def _verify(url: str, tls: Tls) -> ssl.SSLContext | bool:
    """What httpx should verify the server's certificate with (plain http ignores it)."""
    https = url.startswith("https://")
    if tls.insecure:
        if https:
            click.echo(
                f"warning: not verifying the TLS certificate of {url} (--insecure): anyone "
                "on the network path can read and change this traffic",
                err=True,
            )
        return False
    if tls.ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=tls.ca_bundle)
    except ssl.SSLError as exc:  # before OSError: it is one
        reason = f"it holds no PEM certificate ({exc.reason})"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    raise ApiError(f"cannot use CA bundle {tls.ca_bundle}: {reason}")


def _certificate_problem(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check that failed under an httpx error, if that is what failed."""
    seen: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> ssl; bounded against odd cycles
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class Api:
    """Basic-authenticated calls to one registry."""

    def __init__(self, credentials: Credentials, timeout: float = 60) -> None:
        self.url = credentials.url
        auth = (
            (credentials.username, credentials.password or "")
            if credentials.username is not None
            else None
        )
        self._client = httpx.Client(
            base_url=credentials.url + API_PREFIX,
            auth=auth,
            timeout=timeout,
            headers={"X-Is-Resource-Name": "true", "Accept": "application/json"},
            verify=_verify(credentials.url, credentials.tls),
        )

    def _failure(self, exc: httpx.HTTPError) -> ApiError:
        """One line for a request that got no HTTP answer."""
        problem = _certificate_problem(exc)
        if problem is not None:
            reason = problem.verify_message or problem.reason or "verification failed"
            return ApiError(
                f"cannot verify the TLS certificate of {self.url}: {reason}. If a private CA "
                "signed it (or it is self-signed), pass --ca-bundle PATH with that CA's "
                "certificate (or set PORTSIDE_CA_BUNDLE); --insecure skips the check"
            )
        if isinstance(exc, httpx.ConnectError):
            return ApiError(f"cannot connect to {self.url}: {_reason(exc)}")
        if isinstance(exc, httpx.TimeoutException):
            return ApiError(f"{self.url} did not answer in time")
        return ApiError(f"request to {self.url} failed: {_reason(exc)}")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._client.request(method, path, params=params, json=json, **extra)
        except httpx.HTTPError as exc:
            raise self._failure(exc) from None
        if response.status_code >= 400:
            raise ApiError(_error_message(response), response.status_code)
        return response

    def request_unchecked(self, method: str, path: str) -> httpx.Response:
        """The answer whatever its status (for /health, whose 503 carries the details)."""
        try:
            return self._client.request(method, path)
        except httpx.HTTPError as exc:
            raise self._failure(exc) from None

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self.request("GET", path, params=params)
        return response.json() if response.content else None

    def post(self, path: str, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=json, params=params)

    def put(self, path: str, json: Any = None) -> httpx.Response:
        return self.request("PUT", path, json=json)

    def delete(self, path: str) -> httpx.Response:
        return self.request("DELETE", path)

    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> Iterator[tuple[list[Any], int | None]]:
        """Yield each page of a Harbor list with the total (X-Total-Count) when known."""
        page = 1
        fetched = 0
        # One page size throughout: Harbor's pages are offsets of (page - 1) * page_size.
        size = PAGE_SIZE if limit is None else max(1, min(PAGE_SIZE, limit))
        while True:
            query = {**(params or {}), "page": page, "page_size": size}
            response = self.request("GET", path, params=query)
            items = response.json() or []
            total_header = response.headers.get("X-Total-Count")
            total = int(total_header) if total_header and total_header.isdigit() else None
            if limit is not None:
                items = items[: limit - fetched]
                total = min(total, limit) if total is not None else limit
            fetched += len(items)
            yield items, total
            done = len(items) < size or (total is not None and fetched >= total)
            if done or (limit is not None and fetched >= limit):
                return
            page += 1

    def list_all(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        limit: int | None = None,
        what: str = "items",
    ) -> list[Any]:
        """Every item of a Harbor list (or the first ``limit``), fetched page by page, with a
        progress bar on a terminal when there is more than one page."""
        from portside.cli.output import page_progress

        found: list[Any] = []
        with page_progress(what) as advance:
            for items, total in self.pages(path, params, limit):
                found.extend(items)
                advance(len(found), total)
        return found


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
