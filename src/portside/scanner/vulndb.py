"""The vulnerability database: OSV advisories imported into Portside's own database, so every
replica matches against the same data, and looked up by package for each scan.

Import (:meth:`VulnDB.import_path`, :meth:`VulnDB.import_archive`) reads OSV records, one per
``.json``/``.yaml``/``.yml`` file, from a folder tree, a ``.zip`` file or a zip held in memory,
and writes them in one transaction: an advisory with the same id is replaced, and readers see
either the old data or the new, never half an import. Files that are not OSV records are
counted and skipped. Every import increases a generation number.

Lookup (:meth:`VulnDB.advisories_for`) keeps the advisories it has read in memory until the
generation changes, which costs one small query per call to learn.

Besides one row per affected package, ``vuln_affected`` holds one row per id an advisory is
known by (its own and its aliases) under the ecosystem :data:`ALIASES`, which no OSV record
can name (an entry without an ecosystem is dropped when parsed). ``advisories_for(ALIASES,
ids)`` therefore finds every record of the same vulnerability: the GHSA and distribution
records of a CVE, which may rate a vulnerability that its own record leaves unrated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import structlog
import yaml
from sqlalchemy import Connection, delete, func, insert, select

from portside.db.engine import Database
from portside.db.queries import now, upsert
from portside.db.tables import vuln_advisories, vuln_affected, vuln_db_meta
from portside.scanner.matching import advisory_ecosystem, normalize_name
from portside.scanner.model import Advisory, AffectedPackage
from portside.scanner.osv import InvalidRecord, parse_record

__all__ = ["ALIASES", "ImportStats", "VulnDB", "advisory_from_json", "advisory_to_json"]

log = structlog.get_logger(__name__)

RECORD_SUFFIXES = (".json", ".yaml", ".yml")
MAX_RECORD_BYTES = 8 * 1024 * 1024  # the largest real OSV records (kernel) are a few MB
MAX_ARCHIVE_MEMBERS = 1_000_000
MAX_ARCHIVE_BYTES = 4 * 1024**3  # uncompressed, all members together: stops zip bombs
_BATCH = 500  # rows per statement when writing, names per query when reading
_CACHE_LIMIT = 50_000  # cached (ecosystem, name) lookups before the cache starts afresh
ALIASES = ""  # the lookup rows' ecosystem for the ids an advisory is known by (see above)

Progress = Callable[[int, int], None]  # (files read, files in all)


@dataclass
class ImportStats:
    """What one import did. ``files`` counts record files read (in folders and archives);
    ``advisories`` the distinct advisories written (``withdrawn`` of them withdrawn, stored
    all the same); ``malformed`` files skipped because they were unreadable, too large or not
    OSV records; ``generation`` the database's generation after the import; ``ecosystems``
    advisories of this import per ecosystem."""

    files: int = 0
    advisories: int = 0
    malformed: int = 0
    withdrawn: int = 0
    generation: int = 0
    seconds: float = 0.0
    ecosystems: dict[str, int] = field(default_factory=dict)


# -- the stored form of an advisory --------------------------------------------------------------


def advisory_to_json(advisory: Advisory) -> str:
    """The compact JSON an advisory is stored as (short keys: it is stored thousands of times)."""
    return json.dumps(
        {
            "a": advisory.aliases,
            "s": advisory.summary,
            "d": advisory.details,
            "v": advisory.severity,
            "cv": advisory.cvss_vector,
            "cs": advisory.cvss_score,
            "w": advisory.cwe_ids,
            "l": advisory.links,
            "f": [[e.ecosystem, e.name, e.ranges, e.versions] for e in advisory.affected],
            "x": advisory.withdrawn,
            "m": advisory.modified,
            "p": advisory.published,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def advisory_from_json(advisory_id: str, text: str) -> Advisory:
    data = json.loads(text)
    return Advisory(
        id=advisory_id,
        aliases=tuple(data["a"]),
        summary=data["s"],
        details=data["d"],
        severity=data["v"],
        cvss_vector=data["cv"],
        cvss_score=data["cs"],
        cwe_ids=tuple(data["w"]),
        links=tuple(data["l"]),
        affected=tuple(
            AffectedPackage(
                ecosystem,
                name,
                tuple(tuple((kind, version) for kind, version in events) for events in ranges),
                tuple(versions),
            )
            for ecosystem, name, ranges, versions in data["f"]
        ),
        withdrawn=data["x"],
        modified=data["m"],
        published=data["p"],
    )


# -- reading record files ------------------------------------------------------------------------


def _load(name: str, data: bytes) -> Advisory:
    """Parse one record file's bytes; InvalidRecord for anything unusable."""
    try:
        if name.endswith(".json"):
            raw = json.loads(data)
        else:
            # CSafeLoader: the C parser, ~10x faster than the pure-Python one, and safe.
            raw = yaml.load(data, Loader=yaml.CSafeLoader)
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        raise InvalidRecord(f"not JSON/YAML: {type(exc).__name__}") from None
    return parse_record(raw)


def _is_record_name(name: str) -> bool:
    return name.lower().endswith(RECORD_SUFFIXES)


def _read_capped(stream: IO[bytes]) -> bytes | None:
    data = stream.read(MAX_RECORD_BYTES + 1)
    return None if len(data) > MAX_RECORD_BYTES else data


class _Reader:
    """Collects advisories from files and archives, counting what it reads and skips."""

    def __init__(self, progress: Progress | None) -> None:
        self.advisories: dict[str, Advisory] = {}
        self.files = 0
        self.malformed = 0
        self._progress = progress
        self._total = 0

    def add(self, name: str, data: bytes | None) -> None:
        self.files += 1
        try:
            if data is None:
                raise InvalidRecord("record file too large")
            advisory = _load(name.lower(), data)
        except InvalidRecord as exc:
            self.malformed += 1
            log.debug("skipped advisory file", file=name, reason=str(exc))
        else:
            self.advisories[advisory.id] = advisory  # a later copy of an id wins

    def tick(self, done: int) -> None:
        if self._progress is not None:
            self._progress(done, self._total)

    def read_tree(self, root: Path) -> None:
        files = [root] if root.is_file() else sorted(_record_files(root))
        self._total = len(files)
        for done, path in enumerate(files, 1):
            if path.suffix.lower() == ".zip":
                try:
                    with path.open("rb") as stream:
                        self.read_archive(stream)
                except OSError as exc:
                    self.files += 1
                    self.malformed += 1
                    log.debug("skipped archive", file=str(path), reason=str(exc))
            elif _is_record_name(path.name):
                try:
                    with path.open("rb") as stream:
                        self.add(path.name, _read_capped(stream))
                except OSError as exc:
                    self.files += 1
                    self.malformed += 1
                    log.debug("skipped advisory file", file=str(path), reason=str(exc))
            self.tick(done)

    def read_archive(self, stream: IO[bytes]) -> None:
        """Records inside a zip, read in memory (nothing is extracted; member names are only
        looked at for their suffix). Nested archives are not opened."""
        try:
            archive = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            self.files += 1
            self.malformed += 1
            log.debug("skipped unreadable archive", reason=str(exc))
            return
        with archive:
            budget = MAX_ARCHIVE_BYTES
            members = [m for m in archive.infolist() if not m.is_dir()]
            for member in members[:MAX_ARCHIVE_MEMBERS]:
                if not _is_record_name(member.filename):
                    continue
                if member.file_size > MAX_RECORD_BYTES or budget <= 0:
                    self.add(member.filename, None)
                    continue
                try:
                    with archive.open(member) as entry:
                        data = _read_capped(entry)
                except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
                    log.debug("skipped archive member", file=member.filename, reason=str(exc))
                    data = b"\x00"  # counted as malformed below
                budget -= len(data or b"")
                self.add(member.filename, data)


def _record_files(root: Path) -> Iterator[Path]:
    # os.walk does not follow symbolic links to folders, so a link loop cannot trap it.
    for folder, _dirs, names in os.walk(root):
        for name in names:
            if _is_record_name(name) or name.lower().endswith(".zip"):
                yield Path(folder, name)


# -- the store ---------------------------------------------------------------------------------


def _affected_rows(advisory: Advisory) -> set[tuple[str, str]]:
    """The (ecosystem, name) lookup rows of an advisory: its packages, and its ids."""
    return {
        (advisory_ecosystem(entry.ecosystem), normalize_name(entry.ecosystem, entry.name))
        for entry in advisory.affected
    } | {(ALIASES, known_as) for known_as in (advisory.id, *advisory.aliases)}


def _chunks(items: list[Any], size: int = _BATCH) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _write(connection: Connection, advisories: list[Advisory], source: str) -> tuple[int, int]:
    """Upsert the advisories and their lookup rows, bump the generation; (generation, count)."""
    ids = [a.id for a in advisories]
    for chunk in _chunks(ids):
        connection.execute(delete(vuln_affected).where(vuln_affected.c.advisory_id.in_(chunk)))
    for chunk in _chunks(advisories):
        rows = [{"id": a.id, "modified": a.modified, "record": advisory_to_json(a)} for a in chunk]
        _upsert_advisories(connection, rows)
        affected = [
            {"ecosystem": ecosystem, "name": name, "advisory_id": a.id}
            for a in chunk
            for ecosystem, name in _affected_rows(a)
        ]
        if affected:
            connection.execute(insert(vuln_affected), affected)
    count = connection.execute(select(func.count()).select_from(vuln_advisories)).scalar_one()
    generation = _generation(connection) + 1
    upsert(
        connection,
        vuln_db_meta,
        {"id": 1},
        {
            "generation": generation,
            "advisory_count": count,
            "source": source[:1024],
            "imported_at": now(),
        },
    )
    return generation, int(count)


def _upsert_advisories(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """One statement for many rows (queries.upsert takes one row at a time)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    statement = dialect_insert(vuln_advisories)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["id"],
            set_={"modified": statement.excluded.modified, "record": statement.excluded.record},
        ),
        rows,
    )


def _status(connection: Connection) -> dict[str, Any]:
    meta = connection.execute(select(vuln_db_meta).where(vuln_db_meta.c.id == 1)).first()
    per_ecosystem = connection.execute(
        select(vuln_affected.c.ecosystem, func.count(func.distinct(vuln_affected.c.advisory_id)))
        .where(vuln_affected.c.ecosystem != ALIASES)
        .group_by(vuln_affected.c.ecosystem)
        .order_by(vuln_affected.c.ecosystem)
    ).all()
    count = connection.execute(select(func.count()).select_from(vuln_advisories)).scalar_one()
    return {
        "advisories": int(count),
        "ecosystems": {ecosystem: int(n) for ecosystem, n in per_ecosystem},
        "imported_at": _iso(meta.imported_at) if meta else None,
        "source": meta.source if meta else None,
        "generation": int(meta.generation) if meta else 0,
    }


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:  # SQLite hands back naive UTC times
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _generation(connection: Connection) -> int:
    value = connection.execute(
        select(vuln_db_meta.c.generation).where(vuln_db_meta.c.id == 1)
    ).scalar_one_or_none()
    return int(value or 0)


def _ecosystems(connection: Connection) -> tuple[int, frozenset[str]]:
    """The generation and the ecosystems that have advisories, read on one connection."""
    generation = _generation(connection)
    found = connection.execute(
        select(vuln_affected.c.ecosystem).where(vuln_affected.c.ecosystem != ALIASES).distinct()
    ).scalars()
    return generation, frozenset(found)


def _lookup(
    connection: Connection, ecosystem: str, names: list[str]
) -> tuple[int, list[tuple[str, str, str]]]:
    """The generation and the (name, advisory id, record) rows for these normalised names,
    read on one connection."""
    generation = _generation(connection)
    rows: list[tuple[str, str, str]] = []
    for chunk in _chunks(names):
        result = connection.execute(
            select(vuln_affected.c.name, vuln_advisories.c.id, vuln_advisories.c.record)
            .join(vuln_advisories, vuln_advisories.c.id == vuln_affected.c.advisory_id)
            .where(vuln_affected.c.ecosystem == ecosystem, vuln_affected.c.name.in_(chunk))
        )
        rows.extend((name, advisory_id, record) for name, advisory_id, record in result)
    return generation, rows


class VulnDB:
    """Imports advisories and serves them to scans; one per process, shared by its scans."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._generation = -1
        # (ecosystem, normalised name) -> advisories; advisories shared between names.
        self._by_name: dict[tuple[str, str], list[Advisory]] = {}
        self._by_id: dict[str, Advisory] = {}
        self._ecosystems: tuple[int, frozenset[str]] = (-1, frozenset())
        self._lock = asyncio.Lock()

    async def import_path(
        self, path: Path, progress: Progress | None = None, source: str | None = None
    ) -> ImportStats:
        """Import every record under ``path`` (a folder searched recursively, a record file or
        a ``.zip``). ``progress(done, total)`` is called, from a worker thread, per file;
        ``source`` is what status reports the advisories came from (default: the path).
        Raises FileNotFoundError when ``path`` does not exist."""
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        reader = _Reader(progress)
        started = time.monotonic()
        await asyncio.to_thread(reader.read_tree, path)
        return await self._store(reader, source or str(path), started)

    async def import_archive(self, fileobj: IO[bytes], source: str = "archive") -> ImportStats:
        """Import the records inside a zip held in a (seekable) binary file object."""
        reader = _Reader(None)
        started = time.monotonic()
        await asyncio.to_thread(reader.read_archive, fileobj)
        return await self._store(reader, source, started)

    async def _store(self, reader: _Reader, source: str, started: float) -> ImportStats:
        advisories = list(reader.advisories.values())
        generation, _count = await self.db.write(lambda c: _write(c, advisories, source))
        ecosystems: dict[str, int] = {}
        for advisory in advisories:
            for ecosystem in {entry.ecosystem for entry in advisory.affected}:
                ecosystems[ecosystem] = ecosystems.get(ecosystem, 0) + 1
        stats = ImportStats(
            files=reader.files,
            advisories=len(advisories),
            malformed=reader.malformed,
            withdrawn=sum(1 for a in advisories if a.withdrawn),
            generation=generation,
            seconds=round(time.monotonic() - started, 3),
            ecosystems=dict(sorted(ecosystems.items())),
        )
        log.info(
            "imported advisories",
            source=source,
            advisories=stats.advisories,
            malformed=stats.malformed,
            generation=generation,
            seconds=stats.seconds,
        )
        return stats

    async def status(self) -> dict[str, Any]:
        """``advisories``, ``ecosystems`` (advisories per ecosystem), ``imported_at``,
        ``source`` and ``generation`` (0 before the first import)."""
        return await self.db.read(_status)

    async def ecosystems(self) -> frozenset[str]:
        """The ecosystems the database has advisories for (empty before the first import),
        read again only after an import: one small query per call to learn of one."""
        generation, known = self._ecosystems
        if generation >= 0 and generation == await self.db.read(_generation):
            return known
        self._ecosystems = await self.db.read(_ecosystems)
        return self._ecosystems[1]

    async def advisories_for(
        self, ecosystem: str, names: Iterable[str]
    ) -> dict[str, list[Advisory]]:
        """The advisories naming each of ``names`` (as given; looked up normalised) in
        ``ecosystem``, withdrawn ones included (matching skips them). Names without any map
        to an empty list."""
        wanted = {name: normalize_name(ecosystem, name) for name in names}
        async with self._lock:  # one reader refreshes the cache at a time
            missing = sorted({n for n in wanted.values() if (ecosystem, n) not in self._by_name})
            generation, rows = await self.db.read(lambda c: _lookup(c, ecosystem, missing))
            if generation != self._generation:
                self._by_name.clear()
                self._by_id.clear()
                self._generation = generation
                if missing != sorted(set(wanted.values())):  # cached parts are stale: reread
                    missing = sorted(set(wanted.values()))
                    generation, rows = await self.db.read(lambda c: _lookup(c, ecosystem, missing))
                    self._generation = generation
            if len(self._by_name) > _CACHE_LIMIT:
                self._by_name.clear()
                self._by_id.clear()
            found: dict[str, list[Advisory]] = {name: [] for name in missing}
            for name, advisory_id, record in rows:
                advisory = self._by_id.get(advisory_id)
                if advisory is None:
                    advisory = advisory_from_json(advisory_id, record)
                    self._by_id[advisory_id] = advisory
                found.setdefault(name, []).append(advisory)
            for name, advisories in found.items():
                advisories.sort(key=lambda a: a.id)
                self._by_name[(ecosystem, name)] = advisories
            return {name: list(self._by_name[(ecosystem, key)]) for name, key in wanted.items()}
