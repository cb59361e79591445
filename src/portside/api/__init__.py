"""HTTP: the ASGI application, /v2/ distribution handlers and the token endpoint."""
