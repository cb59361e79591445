"""The CVE export service on a real migrated database and the in-memory storage driver: what
it selects, and its bounds (rows, one export per user, retention, shutdown)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import Connection, insert

from portside.db.engine import Database
from portside.db.queries import now
from portside.db.tables import (
    manifest_references,
    manifests,
    projects,
    repositories,
    scan_reports,
    scanner_registrations,
    tags,
)
from portside.oci import mediatypes as mt
from portside.scanner.cve_export import (
    ERROR,
    KEEP_PER_USER,
    SUCCESS,
    CveExports,
    Execution,
    ExportBusy,
    ExportCriteria,
    Owner,
)
from portside.scanner.registrations import Registrations
from portside.scanner.reports import VULNERABILITY_REPORT
from portside.storage.layout import export_path
from portside.storage.memory import MemoryDriver

OWNER = Owner(7, "alice")
SCANNER = "00000000-0000-0000-0000-0000000000aa"


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def _report(*cves: str) -> str:
    items = [
        {"id": cve, "package": "pkg", "version": "1.0", "severity": "High", "cwe_ids": []}
        for cve in cves
    ]
    return json.dumps({"vulnerabilities": items})


def _seed(connection: Connection) -> None:
    """Project 1 with ``p/app`` (an image tagged v1 and an index tagged v2 over two platforms)
    and ``p/other`` (an image tagged v1); project 2 with an image nobody asks for."""
    stamp = now()
    connection.execute(
        insert(scanner_registrations).values(
            uuid=SCANNER, name="Scanner One", url="builtin:", created_at=stamp, updated_at=stamp
        )
    )
    for pid, name in ((1, "p"), (2, "q")):
        connection.execute(
            insert(projects).values(id=pid, name=name, created_at=stamp, updated_at=stamp)
        )
    repos = {1: ("p/app", 1), 2: ("p/other", 1), 3: ("q/app", 2)}
    for rid, (name, pid) in repos.items():
        connection.execute(
            insert(repositories).values(id=rid, name=name, project_id=pid, created_at=stamp)
        )
    # manifest id: (repository id, digest number, media type, tag)
    artifacts = {
        1: (1, 1, mt.OCI_MANIFEST, "v1"),
        2: (1, 2, mt.OCI_INDEX, "v2"),
        3: (1, 3, mt.OCI_MANIFEST, None),
        4: (1, 4, mt.OCI_MANIFEST, None),
        5: (2, 5, mt.OCI_MANIFEST, "v1"),
        6: (3, 6, mt.OCI_MANIFEST, "v1"),
    }
    for mid, (rid, n, media_type, tag) in artifacts.items():
        connection.execute(
            insert(manifests).values(
                id=mid,
                repository_id=rid,
                digest=_digest(n),
                media_type=media_type,
                size=1,
                created_at=stamp,
            )
        )
        if tag:
            connection.execute(
                insert(tags).values(repository_id=rid, name=tag, manifest_id=mid, updated_at=stamp)
            )
    for child in (3, 4):
        connection.execute(
            insert(manifest_references).values(
                manifest_id=2, digest=_digest(child), kind="manifest"
            )
        )
    reports = {1: ("CVE-1",), 2: ("CVE-3", "CVE-4"), 3: ("CVE-3",), 4: ("CVE-4",), 5: ("CVE-5",)}
    reports[6] = ("CVE-6",)
    for n, cves in reports.items():
        connection.execute(
            insert(scan_reports).values(
                uuid=str(uuid.uuid4()),
                digest=_digest(n),
                repository="x",
                registration_uuid=SCANNER,
                mime_type=VULNERABILITY_REPORT,
                status=SUCCESS,
                report=_report(*cves),
                requested_at=stamp,
                end_time=stamp,
            )
        )


@pytest.fixture
async def exports(db: Database) -> CveExports:
    await db.write(_seed)
    return CveExports(db, MemoryDriver(), Registrations(db))


async def _finished(exports: CveExports, execution: Execution) -> Execution:
    for _ in range(500):
        found = await exports.get(execution.id)
        assert found is not None
        if found.status != "Running":
            return found
        await asyncio.sleep(0.01)
    raise AssertionError("the export did not finish")


async def _csv(exports: CveExports, execution: Execution) -> list[dict[str, Any]]:
    data = b"".join([bytes(chunk) async for chunk in exports.content(execution)])
    return list(csv.DictReader(io.StringIO(data.decode())))


async def _export(exports: CveExports, **filters: Any) -> list[tuple[str, str, str]]:
    execution = await exports.start(OWNER, ExportCriteria.parse([1], **filters))
    done = await _finished(exports, execution)
    assert done.status == SUCCESS, done.status_text
    if not done.file_present:
        return []
    return sorted(
        (row["Repository"], row["Artifact Digest"][-1], row["CVE"])
        for row in await _csv(exports, done)
    )


async def test_selection_follows_harbors_filters(exports: CveExports) -> None:
    everything = [
        ("p/app", "1", "CVE-1"),
        ("p/app", "3", "CVE-3"),  # the index is exported as its platforms
        ("p/app", "4", "CVE-4"),
        ("p/other", "5", "CVE-5"),
    ]
    assert await _export(exports) == everything
    assert await _export(exports, repositories="other") == everything[3:]
    assert await _export(exports, tags="v2") == everything[1:3]  # platforms carry the tag
    assert await _export(exports, cve_ids="{CVE-1,CVE-5}") == [everything[0], everything[3]]
    assert await _export(exports, repositories="none") == []
    execution = await exports.start(OWNER, ExportCriteria.parse([1, 2], repositories="app"))
    rows = await _csv(exports, await _finished(exports, execution))
    assert {row["Repository"] for row in rows} == {"p/app", "q/app"}
    assert {row["Scanner"] for row in rows} == {"Scanner One"}


async def test_too_many_rows_is_an_error_and_leaves_no_file(exports: CveExports) -> None:
    exports.max_rows = 3
    execution = await _finished(exports, await exports.start(OWNER, ExportCriteria.parse([1])))
    assert execution.status == ERROR
    assert "more than 3 rows" in execution.status_text
    assert not execution.file_present
    assert await exports._storage.stat(export_path(uuid.UUID(execution.uuid))) is None


async def test_one_export_per_user_at_a_time_and_shutdown_ends_it(exports: CveExports) -> None:
    for _ in range(2):  # hold every slot so the export cannot run
        await exports._slots.acquire()
    running = await exports.start(OWNER, ExportCriteria.parse([1]))
    with pytest.raises(ExportBusy):
        await exports.start(OWNER, ExportCriteria.parse([1]))
    other = await exports.start(Owner(8, "bob"), ExportCriteria.parse([1]))
    await exports.close()
    for execution in (running, other):
        ended = await exports.get(execution.id)
        assert ended is not None and ended.status == ERROR
        assert ended.status_text == "the server stopped during the export"


async def test_each_user_keeps_only_their_latest_exports(exports: CveExports) -> None:
    first = await _finished(exports, await exports.start(OWNER, ExportCriteria.parse([1])))
    assert first.file_present
    key = export_path(uuid.UUID(first.uuid))
    assert await exports._storage.stat(key)
    for _ in range(KEEP_PER_USER):
        await _finished(exports, await exports.start(OWNER, ExportCriteria.parse([1])))
    assert await exports.get(first.id) is None
    assert await exports._storage.stat(key) is None
    assert len(await exports.list(OWNER)) == KEEP_PER_USER
    assert await exports.list(Owner(8, "bob")) == []
