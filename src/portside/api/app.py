"""``create_app(settings)``: the whole ASGI application, built from settings and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from portside.api import token, v2
from portside.api.errors import exception_handlers
from portside.api.logging import AccessLogMiddleware
from portside.api.services import Services, build_services
from portside.config import Settings

__all__ = ["create_app"]

log = structlog.get_logger("portside")


async def _purge_uploads(services: Services) -> None:
    """Background loop: delete uploads nobody touched for ``upload_purge_age_seconds``."""
    settings = services.settings.registry
    while True:
        await asyncio.sleep(settings.upload_purge_interval_seconds)
        try:
            await services.uploads.purge_abandoned(
                dt.timedelta(seconds=settings.upload_purge_age_seconds)
            )
        except Exception:
            log.exception("failed to purge abandoned uploads; will retry")


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    """Build the application. The database must already be migrated (``portside db upgrade``,
    which ``portside serve`` runs first)."""
    services = services or build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Storage, hashing and fsync run in worker threads; the default pool (cores + 4) would
        # make concurrent uploads queue behind each other.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=64, thread_name_prefix="portside-io")
        )
        await services.tokens.start()
        admin_password = (
            settings.admin_password.get_secret_value() if settings.admin_password else None
        )
        generated = await services.accounts.ensure_admin(admin_password)
        if generated:
            app.state.generated_admin_password = generated
            print(
                f"\n  Created user 'admin' with password: {generated}\n"
                "  It is shown only this once. Set PORTSIDE_ADMIN_PASSWORD to choose it.\n",
                flush=True,
            )
        purge = asyncio.create_task(_purge_uploads(services))
        try:
            yield
        finally:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            await services.close()

    routes = [
        *v2.routes(),
        Route("/service/token", token.token_get, methods=["GET"]),
        Route("/service/token", token.token_post, methods=["POST"]),
    ]
    middleware = [Middleware(AccessLogMiddleware)] if settings.log.access_log else []
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.generated_admin_password = None
    return app
