"""oras-py, the OCI artifact client, set up for tests against a plain-HTTP registry."""

from __future__ import annotations

from typing import Any

__all__ = ["oras_client"]


def oras_client(host: str) -> Any:
    """An oras-py client for plain-HTTP ``host`` whose token flow re-scopes on 401.

    oras-py 0.2.43 caches one Bearer token per client and, on a later 401 whose challenge asks
    for a wider scope (HEAD blob -> pull, then POST upload -> pull,push), resends the same token
    and gives up.  Registries that grant exactly the challenged scope (distribution does, as
    Docker's token spec intends) then refuse every push.  Real clients fetch a new token for the
    new scope; we make oras-py do the same by treating every 401 as a refresh.
    """
    import oras.client

    client = oras.client.OrasClient(hostname=host, insecure=True)
    original = client.auth.authenticate_request

    def authenticate(response: Any, headers: dict[str, str], refresh: bool = False) -> Any:
        return original(response, headers, refresh=refresh or response.status_code == 401)

    client.auth.authenticate_request = authenticate
    return client
