"""``create_app(settings)``: the whole ASGI application, built from settings and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from portside.api import scanner_adapter, session, token, v2
from portside.api.errors import ErrorBoundary, exception_handlers
from portside.api.harbor import PREFIX, create_management_app
from portside.api.harbor.bodylimit import BodyLimit
from portside.api.input_check import TextInputCheck
from portside.api.logging import AccessLogMiddleware
from portside.api.readonly import ReadOnlyGuard
from portside.api.services import Services, build_services
from portside.audit.purge import purge_loop
from portside.audit.syslog import SyslogForwarder
from portside.auth.accounts import ADMIN_USERNAME
from portside.config import Settings
from portside.registry.scrub import scrub_loop
from portside.storage.upgrade import upgrade_layout

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


# At shutdown, how long requests cut off by the end of the grace period may take to clean up.
_CUT_OFF_CLEANUP_SECONDS = 5.0


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    """Build the application. The database must already be migrated (``portside db upgrade``,
    which ``portside serve`` runs first)."""
    services = services or build_services(settings)
    inflight: set[asyncio.Task[Any]] = set()  # request tasks, kept by the ErrorBoundary

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Storage, hashing and fsync run in worker threads; the default pool (cores + 4) would
        # make concurrent uploads queue behind each other.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=64, thread_name_prefix="portside-io")
        )
        await upgrade_layout(services.storage)  # a no-op once the tree is current
        await services.tokens.start()
        if settings.audit.syslog_address:
            services.audit.forward(SyslogForwarder(settings.audit.syslog_address))
        await services.audit.start()
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
        admin = await services.accounts.principal(ADMIN_USERNAME)
        await services.projects.ensure_library(
            settings.quota.default_project_bytes, admin.id if admin else None
        )
        purge = asyncio.create_task(_purge_uploads(services), name="upload purge")
        audit_purge = asyncio.create_task(
            purge_loop(services.db, services.audit, settings.audit), name="audit purge"
        )
        loops = [purge, audit_purge]
        if settings.scrub.interval_hours:  # off by default; a loop that returned looks dead
            scrub = scrub_loop(services.db, services.storage, services.audit, settings.scrub)
            loops.append(asyncio.create_task(scrub, name="scrub"))
        await services.scans.start()
        services.health.watch((*loops, *services.scans.tasks))
        services.pulls.start()  # flushes pull times and counts; services.close() stops it
        try:
            yield
        finally:
            if inflight:  # cut off by the grace period: let them keep their bytes and log
                await asyncio.wait(set(inflight), timeout=_CUT_OFF_CLEANUP_SECONDS)
            for task in loops:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await scanner_adapter.close_jobs(app.state)
            await services.close()
            log.info("stopped")

    management = create_management_app(services)
    # Inside the management app too: its own outermost layer (Starlette's ServerErrorMiddleware)
    # would answer an unhandled exception with a plain-text 500 and raise it on.
    management.add_middleware(ErrorBoundary)
    routes = [
        *v2.routes(),
        *scanner_adapter.routes(),
        Mount(PREFIX, app=BodyLimit(management)),
        Route("/service/token", token.token_get, methods=["GET"]),
        Route("/service/token", token.token_post, methods=["POST"]),
        Route("/c/login", session.login_session, methods=["POST"]),
        # Every method, so that the handler answers 405 with Allow: POST in Harbor's format.
        Route("/c/log_out", session.logout_session, methods=session.ANY_METHOD),
        Route("/c/logout", session.logout_session, methods=session.ANY_METHOD),
    ]
    middleware = [Middleware(AccessLogMiddleware)] if settings.log.access_log else []
    # Below the access log, so it logs the status the boundary answered with.
    middleware.append(Middleware(ErrorBoundary, inflight=inflight))
    middleware.append(Middleware(TextInputCheck))  # before anything reads the request's text
    middleware.append(Middleware(ReadOnlyGuard, configurations=services.configurations))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.generated_admin_password = None
    return app
