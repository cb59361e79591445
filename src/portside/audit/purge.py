"""Purging audit entries by age: ``audit.retention_days`` (0 keeps them forever), looked at every
``audit.purge_interval_seconds``.

Old entries are deleted in batches of bounded size, each in its own short transaction, so a purge
of millions of rows never holds the write lock (SQLite) or a huge transaction (PostgreSQL) for
long, and pushes keep flowing meanwhile. Every purge that deletes something leaves an entry of
its own (operation ``purge``), which says how many entries went and up to which time.
Replicas may all run the loop: deleting is idempotent.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import structlog
from sqlalchemy import Connection, delete, select

from portside.audit.log import AuditLog, iso8601
from portside.config import AuditSettings
from portside.db.engine import Database
from portside.db.tables import audit_logs

__all__ = ["BATCH_SIZE", "purge_before", "purge_loop", "purge_once"]

log = structlog.get_logger("portside.audit")

BATCH_SIZE = 1000
PURGER = "system"


def _delete_batch(connection: Connection, cutoff: dt.datetime, limit: int) -> int:
    oldest = (
        select(audit_logs.c.id)
        .where(audit_logs.c.op_time < cutoff)
        .order_by(audit_logs.c.id)
        .limit(limit)
        .scalar_subquery()
    )
    return connection.execute(delete(audit_logs).where(audit_logs.c.id.in_(oldest))).rowcount


async def purge_before(db: Database, cutoff: dt.datetime, batch_size: int = BATCH_SIZE) -> int:
    """Delete every entry older than ``cutoff``, ``batch_size`` rows per transaction.
    Returns how many were deleted."""
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must carry a time zone")
    cutoff = cutoff.astimezone(dt.UTC)  # SQLite compares stored UTC text
    total = 0
    while True:
        deleted = await db.write(lambda c: _delete_batch(c, cutoff, batch_size))
        total += deleted
        if deleted < batch_size:
            return total


async def purge_once(
    db: Database, audit: AuditLog, retention: dt.timedelta, batch_size: int = BATCH_SIZE
) -> int:
    """Delete entries older than ``retention`` (by the audit log's clock) and record the purge."""
    cutoff = audit.now() - retention
    deleted = await purge_before(db, cutoff, batch_size)
    if deleted:
        audit.record(
            PURGER,
            "purge",
            "audit_log",
            f"entries before {iso8601(cutoff)}",
            "success",
            None,
            detail=f"{deleted} entries deleted",
        )
        log.info("purged old audit entries", deleted=deleted, before=iso8601(cutoff))
    return deleted


async def purge_loop(db: Database, audit: AuditLog, settings: AuditSettings) -> None:
    """Background loop of the server: purge every ``purge_interval_seconds``. Returns at once
    when entries are kept forever."""
    if settings.retention_days == 0:
        return
    retention = dt.timedelta(days=settings.retention_days)
    while True:
        await asyncio.sleep(settings.purge_interval_seconds)
        try:
            await purge_once(db, audit, retention)
        except Exception:
            log.exception("failed to purge old audit entries; will retry")
