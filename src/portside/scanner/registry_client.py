"""Pulling an artifact from a registry over the distribution API, for the scanner Portside
serves to others: the scan request names a registry and gives an Authorization header.

Handles Docker token auth: given ``Basic`` credentials and a ``Bearer`` challenge, it asks the
challenge's realm for a pull token, as every registry client does. Manifests are size-capped;
blobs are streamed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx

from portside.oci import mediatypes as mt
from portside.oci.digest import Digest, DigestError
from portside.scanner.adapter_api import RegistryClientError

__all__ = ["RegistryClient"]

MAX_MANIFEST_BYTES = 4 << 20
_ACCEPT = ", ".join(sorted(mt.MANIFESTS))
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryClient:
    def __init__(self, url: str, authorization: str, repository: str, *, verify: bool = True):
        self._base = url.rstrip("/")
        self._authorization = authorization
        self._repository = repository
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=10.0), verify=verify, follow_redirects=True
        )
        self._token_header: str | None = (
            authorization if authorization.lower().startswith("bearer ") else None
        )

    async def close(self) -> None:
        await self._client.aclose()

    def _headers(self, accept: str | None = None) -> dict[str, str]:
        headers = {}
        header = self._token_header or self._authorization
        if header:
            headers["Authorization"] = header
        if accept:
            headers["Accept"] = accept
        return headers

    async def _login(self, challenge: str) -> None:
        """Answer a ``Bearer`` challenge by fetching a pull token with our credentials."""
        if not challenge.lower().startswith("bearer "):
            raise RegistryClientError("the registry refused our credentials")
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.pop("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise RegistryClientError("the registry's token challenge has no usable realm")
        params["scope"] = f"repository:{self._repository}:pull"
        headers = {}
        if self._authorization.lower().startswith("basic "):
            headers["Authorization"] = self._authorization
        response = await self._client.get(realm, params=params, headers=headers)
        if response.status_code != 200:
            raise RegistryClientError(f"the token service answered {response.status_code}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryClientError("the token service gave no token")
        self._token_header = f"Bearer {token}"

    async def _get(self, path: str, accept: str | None = None) -> httpx.Response:
        url = f"{self._base}/v2/{quote(self._repository, safe='/')}/{path}"
        try:
            response = await self._client.get(url, headers=self._headers(accept))
            if response.status_code == 401 and (
                challenge := response.headers.get("www-authenticate")
            ):
                await self._login(challenge)
                response = await self._client.get(url, headers=self._headers(accept))
        except httpx.HTTPError as error:
            raise RegistryClientError(f"cannot reach the registry: {error}") from None
        return response

    async def manifest(self, digest: str) -> bytes:
        try:
            expected = Digest.parse(digest)
        except DigestError:
            raise RegistryClientError(f"invalid digest {digest[:100]!r}") from None
        response = await self._get(f"manifests/{expected}", _ACCEPT)
        if response.status_code != 200:
            raise RegistryClientError(
                f"manifest {digest}: the registry answered {response.status_code}"
            )
        raw = response.content
        if len(raw) > MAX_MANIFEST_BYTES:
            raise RegistryClientError("the manifest is too large")
        if Digest.of(raw, expected.algorithm) != expected:
            raise RegistryClientError("the manifest does not match its digest")
        return raw

    async def blob(self, digest: str) -> AsyncIterator[bytes]:
        """Stream a blob. The digest is not verified here: the scanner only reads it."""
        url = f"{self._base}/v2/{quote(self._repository, safe='/')}/blobs/{Digest.parse(digest)}"
        for attempt in range(2):
            try:
                async with self._client.stream("GET", url, headers=self._headers()) as response:
                    if response.status_code == 401 and attempt == 0:
                        challenge = response.headers.get("www-authenticate", "")
                        await response.aclose()
                        await self._login(challenge)
                        continue
                    if response.status_code != 200:
                        raise RegistryClientError(
                            f"blob {digest}: the registry answered {response.status_code}"
                        )
                    async for chunk in response.aiter_bytes(1 << 20):
                        yield chunk
                    return
            except httpx.HTTPError as error:
                raise RegistryClientError(f"cannot read blob {digest}: {error}") from None
        raise RegistryClientError("the registry refused our credentials")
