"""The vulnerability database on real databases with the real shared advisory data: import,
re-import, skipped files, lookups and the ``portside vulndb`` commands."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import select as io_select
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from portside.db.engine import Database
from portside.db.migrate import upgrade
from portside.db.tables import vuln_affected
from portside.scanner.analyses import LayerAnalyses
from portside.scanner.engine import ImageScanner
from portside.scanner.matching import normalize_name
from portside.scanner.model import LayerResult, Package
from portside.scanner.osv import parse_record
from portside.scanner.vulndb import VulnDB
from tests.support.backends import postgres_database

DATA = Path("/work/shared/vulndb")
PYPA = DATA / "pypa"
DEBIAN = DATA / "debian-bookworm"
PYPA_FILES = sorted((PYPA / "vulns").rglob("*.yaml"))
DEBIAN_FILES = sorted(DEBIAN.glob("*.json"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'v.db'}"
        upgrade(url)
        yield url
    else:
        with postgres_database() as url:
            upgrade(url)
            yield url


@pytest.fixture
async def vulndb(database_url: str) -> AsyncIterator[VulnDB]:
    db = Database(database_url)
    try:
        yield VulnDB(db)
    finally:
        await db.close()


async def _row_count(vulndb: VulnDB) -> int:
    db: Database = vulndb.db
    return await db.read(
        lambda c: int(c.execute(select(func.count()).select_from(vuln_affected)).scalar_one())
    )


def _ids_naming(files: list[Path], ecosystem: str, name: str) -> set[str]:
    """The ids of records with an entry for this package, read straight from the files."""
    ids = set()
    for path in files:
        raw = path.read_bytes()
        if name.encode() not in raw.lower():
            continue
        record = yaml.load(raw, Loader=yaml.CSafeLoader)
        for entry in record.get("affected", []):
            package = entry.get("package", {})
            same = normalize_name(ecosystem, package.get("name", "")) == name
            usable = entry.get("versions") or any(
                r.get("type") in ("ECOSYSTEM", "SEMVER") for r in entry.get("ranges", [])
            )
            if package.get("ecosystem") == ecosystem and same and usable:
                ids.add(record["id"])
    return ids


async def test_import_both_data_sets_and_reimport(vulndb: VulnDB) -> None:
    pypa = await vulndb.import_path(PYPA)
    assert (pypa.files, pypa.advisories, pypa.malformed) == (len(PYPA_FILES), 2661, 0)
    assert pypa.withdrawn == 10
    assert pypa.generation == 1
    debian = await vulndb.import_path(DEBIAN)
    assert (debian.files, debian.advisories, debian.malformed) == (980, 980, 0)
    assert debian.ecosystems == {"Debian:12": 980}
    assert pypa.seconds + debian.seconds < 30

    status = await vulndb.status()
    assert status["advisories"] == 2661 + 980
    # One pypa record (withdrawn, no ranges or versions) names no usable package.
    assert status["ecosystems"] == {"Debian:12": 980, "PyPI": 2660}
    assert status["generation"] == 2
    assert status["source"] == str(DEBIAN)
    assert status["imported_at"].endswith("Z")
    rows = await _row_count(vulndb)

    again = await vulndb.import_path(DEBIAN)
    assert (again.advisories, again.generation) == (980, 3)
    status = await vulndb.status()
    assert status["advisories"] == 3641
    assert status["ecosystems"] == {"Debian:12": 980, "PyPI": 2660}
    assert await _row_count(vulndb) == rows


async def test_advisories_for_returns_the_records_naming_the_package(vulndb: VulnDB) -> None:
    await vulndb.import_path(PYPA)
    await vulndb.import_path(DEBIAN)
    found = await vulndb.advisories_for("PyPI", ["Django", "zope.interface", "no-such-thing"])
    assert set(found) == {"Django", "zope.interface", "no-such-thing"}
    django_files = sorted((PYPA / "vulns" / "django").glob("*.yaml"))
    assert {a.id for a in found["Django"]} == _ids_naming(django_files, "PyPI", "django")
    assert len(found["Django"]) > 100
    assert found["no-such-thing"] == []
    glibc = await vulndb.advisories_for("Debian:12", ["glibc"])
    assert {a.id for a in glibc["glibc"]} == {p.stem for p in DEBIAN.glob("*-glibc.json")}
    (glibc_2961,) = [a for a in glibc["glibc"] if a.id == "DEBIAN-CVE-2024-2961-glibc"]
    assert glibc_2961.affected[0].ranges == ((("introduced", "0"), ("fixed", "2.36-9+deb12u6")),)
    # What comes back from the database is exactly what the record parses to.
    record = json.loads((DEBIAN / "DEBIAN-CVE-2024-2961-glibc.json").read_text())
    assert glibc_2961 == parse_record(record)
    django_100 = next(a for a in found["Django"] if a.id == "PYSEC-2023-100")
    path = PYPA / "vulns" / "django" / "PYSEC-2023-100.yaml"
    assert django_100 == parse_record(yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader))
    # Ecosystems are separate: no Debian record for a PyPI name and the other way round.
    assert (await vulndb.advisories_for("Debian:12", ["django"]))["django"] == []
    assert (await vulndb.advisories_for("PyPI", ["glibc"]))["glibc"] == []


async def test_lookups_follow_a_new_import(vulndb: VulnDB, tmp_path: Path) -> None:
    source = DEBIAN / "DEBIAN-CVE-2023-0687-glibc.json"
    record = json.loads(source.read_text())
    (tmp_path / source.name).write_text(json.dumps(record))
    await vulndb.import_path(tmp_path)
    first = await vulndb.advisories_for("Debian:12", ["glibc"])
    assert first["glibc"][0].affected[0].ranges[0][1] == ("fixed", "2.36-9+deb12u1")
    assert await vulndb.advisories_for("Debian:12", ["glibc"]) == first  # from the cache

    # Another process (here another VulnDB on the same database) imports a changed record.
    record["affected"][0]["ranges"][0]["events"][1]["fixed"] = "2.36-9+deb12u2"
    record["affected"][0]["package"]["name"] = "eglibc"
    (tmp_path / source.name).write_text(json.dumps(record))
    other = VulnDB(vulndb.db)
    await other.import_path(tmp_path)
    now = await vulndb.advisories_for("Debian:12", ["glibc", "eglibc"])
    assert now["glibc"] == []  # the old lookup row is gone with the replaced record
    assert now["eglibc"][0].affected[0].ranges[0][1] == ("fixed", "2.36-9+deb12u2")


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def test_malformed_files_are_counted_and_skipped(vulndb: VulnDB, tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    for path in DEBIAN_FILES[:3]:
        shutil.copy(path, nested / path.name)
    shutil.copy(PYPA / "vulns" / "django" / "PYSEC-2023-100.yaml", tmp_path / "django.yml")
    (tmp_path / "broken.json").write_text('{"id": "X", ')
    (tmp_path / "list.yaml").write_text("- just\n- a list\n")
    (tmp_path / "no-id.json").write_text('{"summary": "no id"}')
    (tmp_path / "binary.json").write_bytes(os.urandom(256))
    (tmp_path / "anchors.yaml").write_text("a: &a [*a]\n")  # a recursive alias
    (tmp_path / "notes.txt").write_text("not a record; not even looked at")
    # PostgreSQL text cannot hold NUL: stored records must escape it (a good record here).
    nul = {"id": "NUL-1", "details": "a\x00b", "affected": [
        {"package": {"ecosystem": "npm", "name": "x"}, "versions": ["1.0.0"]}]}  # fmt: skip
    (tmp_path / "nul.json").write_text(json.dumps(nul))
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    archive = {p.name: p.read_bytes() for p in DEBIAN_FILES[3:6]}
    archive["bad.json"] = b"[1, 2"
    archive["dir/readme.md"] = b"ignored"
    (tmp_path / "more.zip").write_bytes(_zip(archive))
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")

    stats = await vulndb.import_path(tmp_path)
    # 3 + 1 + 1 + 3 good records; 6 bad files, the bad zip member and the bad zip.
    assert stats.advisories == 8
    assert stats.malformed == 8
    assert stats.files == 3 + 1 + 1 + 6 + 4 + 1
    assert (await vulndb.status())["advisories"] == 8
    (stored,) = (await vulndb.advisories_for("npm", ["x"]))["x"]
    assert stored.details == "a\x00b"


async def test_import_archive_from_a_file_object(vulndb: VulnDB) -> None:
    data = _zip({f"debian/{p.name}": p.read_bytes() for p in DEBIAN_FILES})
    stats = await vulndb.import_archive(io.BytesIO(data), source="debian.zip")
    assert (stats.files, stats.advisories, stats.malformed) == (980, 980, 0)
    status = await vulndb.status()
    assert (status["advisories"], status["source"]) == (980, "debian.zip")


@pytest.mark.slow
async def test_readers_never_see_half_an_import(vulndb: VulnDB) -> None:
    await vulndb.import_path(DEBIAN)
    seen: set[int] = set()
    importing = asyncio.create_task(vulndb.import_path(PYPA))
    while not importing.done():
        seen.add((await vulndb.status())["advisories"])
        await asyncio.sleep(0.01)
    await importing
    seen.add((await vulndb.status())["advisories"])
    assert seen == {980, 3641}


def _portside(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PORTSIDE_DATA_DIR": str(data_dir)}
    env.pop("PORTSIDE_DATABASE__URL", None)
    return subprocess.run(
        [sys.executable, "-m", "portside.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.slow  # six real command runs
def test_cli_import_and_status(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    refused = _portside(data_dir, "vulndb", "status")
    assert refused.returncode == 1
    assert "portside db upgrade" in refused.stderr
    assert _portside(data_dir, "db", "upgrade").returncode == 0

    records = tmp_path / "records"
    records.mkdir()
    for path in DEBIAN_FILES[:25]:
        shutil.copy(path, records / path.name)
    (records / "junk.json").write_text("{")
    done = _portside(data_dir, "vulndb", "import", str(records), "--output", "json")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)  # stdout holds only the answer; logs go to stderr
    assert (stats["files"], stats["advisories"], stats["malformed"]) == (26, 25, 1)

    human = _portside(data_dir, "vulndb", "import", str(records))
    assert human.returncode == 0
    assert "imported 25 advisories from 26 files" in human.stdout
    assert "generation 2" in human.stdout

    status = _portside(data_dir, "vulndb", "status", "-o", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) | {"imported_at": None} == {
        "advisories": 25,
        "ecosystems": {"Debian:12": 25},
        "imported_at": None,
        "source": str(records),
        "generation": 2,
    }
    table = _portside(data_dir, "vulndb", "status")
    assert "Debian:12" in table.stdout and "25" in table.stdout

    missing = _portside(data_dir, "vulndb", "import", str(tmp_path / "nowhere"))
    assert missing.returncode == 2


@pytest.mark.slow
def test_cli_import_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert _portside(data_dir, "db", "upgrade").returncode == 0
    env = {**os.environ, "PORTSIDE_DATA_DIR": str(data_dir), "COLUMNS": "120", "TERM": "xterm"}
    env.pop("PORTSIDE_DATABASE__URL", None)
    args = [sys.executable, "-m", "portside.cli.main", "vulndb", "import", str(DEBIAN)]
    controller, terminal = pty.openpty()
    seen = bytearray()
    try:
        process = subprocess.Popen(args, stdout=terminal, stderr=terminal, env=env)
        os.close(terminal)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _, _ = io_select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the terminal closed: the command is done
                    break
                if not chunk:
                    break
                seen += chunk
            elif process.poll() is not None:
                break
        assert process.wait(30) == 0, seen[-2000:]
    finally:
        os.close(controller)
    assert b"reading advisories" in seen, seen[:2000]
    assert b"imported 980 advisories" in seen
    piped = _portside(data_dir, "vulndb", "import", str(DEBIAN))
    assert piped.returncode == 0
    assert "reading advisories" not in piped.stderr + piped.stdout


async def test_importing_a_missing_path_fails_and_changes_nothing(
    vulndb: VulnDB, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        await vulndb.import_path(tmp_path / "nowhere")
    assert (await vulndb.status())["generation"] == 0


# -- what a scan learns besides the advisories of a package --------------------------------------


async def test_ecosystems_are_those_imported_and_follow_other_imports(vulndb: VulnDB) -> None:
    assert await vulndb.ecosystems() == frozenset()  # nothing imported: scans check nothing
    await vulndb.import_path(DEBIAN)
    assert await vulndb.ecosystems() == {"Debian:12"}
    await VulnDB(vulndb.db).import_path(PYPA)  # another replica imports
    assert await vulndb.ecosystems() == {"Debian:12", "PyPI"}
    # The alias lookup rows are no ecosystem of their own.
    assert set((await vulndb.status())["ecosystems"]) == {"Debian:12", "PyPI"}


def _scanner(vulndb: VulnDB) -> ImageScanner:
    async def never(stream: object, media_type: str) -> LayerResult:
        raise AssertionError("findings() reads no layer")

    return ImageScanner(LayerAnalyses(None, never), vulndb)


async def test_an_unrated_finding_takes_the_severity_of_a_record_of_the_same_cve(
    vulndb: VulnDB,
) -> None:
    # PYSEC-2022-230 (lxml, CVE-2022-2309) has no severity; Debian's record of the same CVE
    # for libxml2 has urgency medium.
    await vulndb.import_path(PYPA)
    lxml = Package("lxml", "4.9.0", "PyPI", "app/lxml-4.9.0.dist-info/METADATA")
    (unrated,) = [
        f for f in await _scanner(vulndb).findings([lxml]) if f.advisory.id == "PYSEC-2022-230"
    ]
    assert (unrated.advisory.severity, unrated.rating) == ("Unknown", None)
    await vulndb.import_path(DEBIAN)
    (rated,) = [
        f for f in await _scanner(vulndb).findings([lxml]) if f.advisory.id == "PYSEC-2022-230"
    ]
    assert rated.id == "CVE-2022-2309"
    assert rated.rating is not None
    assert (rated.rating.id, rated.rating.severity) == ("DEBIAN-CVE-2022-2309-libxml2", "Medium")


def _go_record(advisory_id: str, aliases: list[str], **rating: object) -> dict[str, object]:
    return {
        "id": advisory_id,
        "modified": "2024-01-01T00:00:00Z",
        "aliases": aliases,
        "affected": [
            {
                "package": {"ecosystem": "Go", "name": "golang.org/x/net"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.7.0"}]}],
            }
        ],
        **rating,
    }


async def test_a_go_finding_is_rated_by_the_best_record_of_its_aliases(
    vulndb: VulnDB, tmp_path: Path
) -> None:
    # Go's own records carry no severity; the GHSA record of the same CVE carries a vector.
    records = {
        "GO-2023-1571": _go_record("GO-2023-1571", ["CVE-2022-41723", "GHSA-vvpx-j8f3-3w6h"]),
        "GHSA-vvpx-j8f3-3w6h": _go_record(
            "GHSA-vvpx-j8f3-3w6h",
            ["CVE-2022-41723"],
            severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
        ),
        # Another record of the CVE with only a word: a scored vector is preferred.
        "DEBIAN-CVE-2022-41723-golang-golang-x-net": {
            "id": "DEBIAN-CVE-2022-41723-golang-golang-x-net",
            "aliases": ["CVE-2022-41723"],
            "database_specific": {"urgency": "critical"},
        },
        # Withdrawn records rate nothing.
        "GHSA-wwww-xxxx-yyyy": {
            "id": "GHSA-wwww-xxxx-yyyy",
            "aliases": ["CVE-2022-41723"],
            "withdrawn": "2024-01-02T00:00:00Z",
            "severity": [
                {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}
            ],
        },
    }
    for name, record in records.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
    await vulndb.import_path(tmp_path)
    module = Package("golang.org/x/net", "0.6.0", "Go", "usr/local/bin/app")
    findings = {f.advisory.id: f for f in await _scanner(vulndb).findings([module])}
    assert set(findings) == {"GO-2023-1571", "GHSA-vvpx-j8f3-3w6h"}
    go = findings["GO-2023-1571"]
    assert go.rating is not None and go.rating.id == "GHSA-vvpx-j8f3-3w6h"
    assert (go.rated_by.severity, go.rated_by.cvss_score) == ("High", 7.5)
    assert findings["GHSA-vvpx-j8f3-3w6h"].rating is None  # rated by itself
