"""Matching installed versions against advisories, with the edge cases the shared data holds
(see /work/shared/vulndb/README.md): withdrawn records, GIT-only events, Django's several
ranges, ``~deb12u1``, epochs, binNMUs and the binary-to-source mapping, ``last_affected`` and
``versions`` lists."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from portside.scanner.matching import affected, match, normalize_name
from portside.scanner.model import Advisory, AffectedPackage, Package
from portside.scanner.osv import parse_record

DATA = Path("/work/shared/vulndb")
PYPA = DATA / "pypa" / "vulns"
DEBIAN = DATA / "debian-bookworm"


def _pypa(package: str, advisory_id: str) -> Advisory:
    path = PYPA / package / f"{advisory_id}.yaml"
    return parse_record(yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader))


def _debian(name: str) -> Advisory:
    return parse_record(json.loads((DEBIAN / f"{name}.json").read_text()))


def _python(name: str, version: str) -> Package:
    return Package(name=name, version=version, ecosystem="PyPI", path="site-packages/x")


def _deb(name: str, version: str, source: str = "", source_version: str = "") -> Package:
    return Package(
        name=name,
        version=version,
        ecosystem="dpkg",
        path="var/lib/dpkg/status",
        source_name=source,
        source_version=source_version,
    )


# -- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "normal"),
    [("Django", "django"), ("zope.interface", "zope-interface"), ("Foo__Bar-.baz", "foo-bar-baz")],
)
def test_pypi_names_are_pep503_normalised(name: str, normal: str) -> None:
    assert normalize_name("PyPI", name) == normal


def test_other_ecosystems_keep_names_as_written() -> None:
    assert normalize_name("npm", "@Scope/Pkg") == "@Scope/Pkg"
    assert normalize_name("Go", "github.com/BurntSushi/toml") == "github.com/BurntSushi/toml"
    assert normalize_name("Debian:12", "python3.11") == "python3.11"


# -- PyPI edge cases from the pypa data ---------------------------------------------------------

DJANGO = "PYSEC-2023-100"  # introduced/fixed pairs 3.2-3.2.20, 4.0-4.1.10, 4.2-4.2.3


@pytest.mark.parametrize(
    ("version", "hit", "fix"),
    [
        ("3.1.14", False, ""),
        ("3.2", True, "3.2.20"),
        ("3.2.19", True, "3.2.20"),
        ("3.2.20", False, ""),
        ("3.2.25", False, ""),
        ("4.0", True, "4.1.10"),
        ("4.1rc1", True, "4.1.10"),
        ("4.1.9", True, "4.1.10"),
        ("4.1.10", False, ""),
        ("4.2.2", True, "4.2.3"),
        ("4.2.3", False, ""),
        ("5.0", False, ""),
    ],
)
def test_django_branch_ranges(version: str, hit: bool, fix: str) -> None:
    (entry,) = _pypa("django", DJANGO).affected
    assert affected(version, entry) == (hit, fix)


def test_match_django_by_any_spelling_of_the_name() -> None:
    advisory = _pypa("django", DJANGO)
    (finding,) = match(_python("Django", "4.2.1"), "PyPI", [advisory])
    assert finding.fix_version == "4.2.3"
    assert finding.id == "CVE-2023-36053"
    assert match(_python("django", "4.2.3"), "PyPI", [advisory]) == []


def test_last_affected_includes_that_version_and_no_later_one() -> None:
    (entry,) = _pypa("py", "PYSEC-2022-42969").affected
    assert affected("1.11.0", entry) == (True, "")
    assert affected("1.4.7.dev3", entry) == (True, "")
    assert affected("1.11.1", entry) == (False, "")


def test_versions_list_only() -> None:
    (entry,) = _pypa("gratient", "PYSEC-2024-1").affected
    assert entry.ranges == ()
    assert affected("0.5", entry) == (True, "")
    assert affected("0.6", entry) == (False, "")
    assert affected("0.5.0", entry) == (False, "")  # only verbatim entries of the list


def test_withdrawn_advisories_never_match() -> None:
    advisory = _pypa("redis", "PYSEC-2023-73")
    assert advisory.withdrawn
    (entry,) = advisory.affected
    assert affected("4.5.4", entry)[0]  # its range covers every version ...
    assert match(_python("redis", "4.5.4"), "PyPI", [advisory]) == []  # ... but it is withdrawn


def test_git_only_entries_never_match() -> None:
    entry = AffectedPackage("PyPI", "django", ranges=(), versions=())
    assert affected("1.0", entry) == (False, "")


def test_versions_listed_but_outside_ranges_still_match_with_the_next_fix() -> None:
    entry = AffectedPackage(
        "PyPI", "x", ranges=((("introduced", "2.0"), ("fixed", "2.5")),), versions=("1.5",)
    )
    assert affected("1.5", entry) == (True, "2.5")


# -- Debian edge cases --------------------------------------------------------------------------


def test_tilde_sorts_before_the_release() -> None:
    # fixed 3.0.11-1~deb12u2: ~deb12u1 is older, the plain -1 is newer.
    (entry,) = _debian("DEBIAN-CVE-2023-5363-openssl").affected
    fixed = dict(entry.ranges[0])["fixed"]
    assert fixed == "3.0.11-1~deb12u2"
    assert affected("3.0.11-1~deb12u1", entry) == (True, fixed)
    assert affected("3.0.11-1~deb12u2", entry) == (False, "")
    assert affected("3.0.11-1", entry) == (False, "")


def test_epochs_count_before_everything() -> None:
    (entry,) = _debian("DEBIAN-CVE-2023-2828-bind9").affected
    assert dict(entry.ranges[0])["fixed"] == "1:9.18.16-1~deb12u1"
    assert affected("1:9.18.13-1", entry) == (True, "1:9.18.16-1~deb12u1")
    assert affected("9.18.99-1", entry)[0]  # no epoch is epoch 0
    assert not affected("1:9.18.16-1", entry)[0]


def test_binnmu_binaries_match_by_their_source_version() -> None:
    # libpam-cap 1:2.66-4+b1 is a binNMU of source libcap2 1:2.66-4 (12.0), fixed in +deb12u1.
    advisory = _debian("DEBIAN-CVE-2025-1390-libcap2")
    binary = _deb("libpam-cap", "1:2.66-4+b1", "libcap2", "1:2.66-4")
    (finding,) = match(binary, "Debian:12", [advisory])
    assert finding.fix_version == "1:2.66-4+deb12u1"
    # The newest binNMU of the fixed source is clean.
    fixed = _deb("libpam-cap", "1:2.66-4+deb12u3+b1", "libcap2", "1:2.66-4+deb12u3")
    assert match(fixed, "Debian:12", [advisory]) == []


def test_binary_to_source_mapping_with_a_different_epoch() -> None:
    # bsdutils carries epoch 1 but its source util-linux does not: compare the source version.
    advisory = _debian("DEBIAN-CVE-2024-28085-util-linux")
    bsdutils = _deb("bsdutils", "1:2.38.1-5+b1", "util-linux", "2.38.1-5")
    assert [f.fix_version for f in match(bsdutils, "Debian:12", [advisory])] == ["2.38.1-5+deb12u1"]
    # A binary named like its source, without a Source: field, is matched by its own name.
    assert match(_deb("util-linux", "2.38.1-5"), "Debian:12", [advisory]) != []
    assert match(_deb("libc6", "2.36-9"), "Debian:12", [advisory]) == []


def test_point_release_records_match_like_security_ones() -> None:
    record = json.loads((DEBIAN / "DEBIAN-CVE-2023-0687-glibc.json").read_text())
    assert record["database_specific"]["distribution"] == "bookworm"
    libc6 = _deb("libc6", "2.36-9", "glibc", "2.36-9")
    assert [f.fix_version for f in match(libc6, "Debian:12", [parse_record(record)])] == [
        "2.36-9+deb12u1"
    ]


def test_other_ecosystems_do_not_match() -> None:
    advisory = _debian("DEBIAN-CVE-2023-0687-glibc")
    assert match(_deb("glibc", "2.36-9"), "Debian:11", [advisory]) == []
    assert match(_deb("glibc", "2.36-9"), "Ubuntu:22.04", [advisory]) == []


def _bookworm_packages() -> dict[str, list[str]]:
    rows = {}
    for line in (DEBIAN / "packages.tsv").read_text().splitlines()[1:]:
        fields = line.split("\t")
        rows[fields[0]] = fields
    return rows


def _all_debian() -> list[Advisory]:
    return [parse_record(json.loads(p.read_text())) for p in sorted(DEBIAN.glob("*.json"))]


def test_bookworm_12_0_versions_agree_with_dpkg() -> None:
    """The README's recipe: a record applies to the 12.0 version when dpkg says it is lower
    than the fix. Checked on a sample of records against the real dpkg."""
    packages = _bookworm_packages()
    sample = random.Random(3).sample(_all_debian(), 150)
    script = ""
    for advisory in sample:
        entry = advisory.affected[0]
        installed = packages[entry.name][1]
        fixed = dict(entry.ranges[0])["fixed"]
        script += f"dpkg --compare-versions '{installed}' lt '{fixed}' && echo 1 || echo 0\n"
    out = subprocess.run(["sh"], input=script, capture_output=True, text=True, check=True)
    expected = [line == "1" for line in out.stdout.split()]
    assert len(expected) == len(sample)
    for advisory, want in zip(sample, expected, strict=True):
        entry = advisory.affected[0]
        installed = packages[entry.name][1]
        package = _deb(entry.name, installed)
        found = match(package, "Debian:12", [advisory])
        assert bool(found) == want, (advisory.id, installed)
        if found:
            assert found[0].fix_version == dict(entry.ranges[0])["fixed"]
    assert sum(expected) > 100  # the sample is mostly fixes made after 12.0


def test_newest_bookworm_versions_have_no_findings() -> None:
    packages = _bookworm_packages()
    advisories = _all_debian()
    assert len(advisories) == 980
    old = new = 0
    for advisory in advisories:
        entry = advisory.affected[0]
        newest = packages[entry.name][2]
        base = packages[entry.name][1]
        new += len(match(_deb(entry.name, newest), "Debian:12", [advisory]))
        old += len(match(_deb(entry.name, base), "Debian:12", [advisory]))
    assert new == 0
    assert old > 900  # nearly every fix came after 12.0


# -- robustness -----------------------------------------------------------------------------------


def _entry(*events: tuple[str, str], ecosystem: str = "PyPI", versions: Any = ()) -> Any:
    return AffectedPackage(ecosystem, "x", ranges=(tuple(events),), versions=tuple(versions))


def test_unparsable_installed_versions_do_not_crash() -> None:
    entry = _entry(("introduced", "0"), ("fixed", "2.0"), versions=["weird version"])
    assert affected("not a version", entry) == (False, "")
    assert affected("weird version", entry) == (True, "")  # listed verbatim


def test_unparsable_event_versions_are_ignored() -> None:
    entry = _entry(("introduced", "0"), ("fixed", "bogus!"), ("fixed", "2.0"))
    assert affected("1.0", entry) == (True, "2.0")
    assert affected("2.0", entry) == (False, "")


def test_unknown_ecosystems_match_only_listed_versions() -> None:
    entry = _entry(("introduced", "0"), ecosystem="Hackage", versions=["1.0"])
    assert affected("1.0", entry) == (True, "")
    assert affected("0.9", entry) == (False, "")


def test_limit_events() -> None:
    entry = _entry(("introduced", "1.0"), ("limit", "2.0"))
    assert affected("1.5", entry) == (True, "")
    assert affected("2.0", entry) == (False, "")
    assert affected("0.5", entry) == (False, "")
    star = _entry(("introduced", "1.0"), ("limit", "*"))
    assert affected("99", star) == (True, "")
    several = _entry(("introduced", "1.0"), ("limit", "1.2"), ("limit", "3.0"))
    assert affected("2.5", several) == (True, "")


def test_unsorted_events_are_sorted_first() -> None:
    entry = _entry(("fixed", "1.5"), ("introduced", "1.0"), ("introduced", "0"))
    assert affected("0.1", entry) == (True, "1.5")
    assert affected("1.2", entry) == (True, "1.5")
    assert affected("1.5", entry) == (False, "")


def test_the_lowest_fix_over_several_entries_wins() -> None:
    advisory = Advisory(
        id="X-1",
        aliases=(),
        summary="",
        details="",
        severity="Unknown",
        cvss_vector="",
        cvss_score=None,
        cwe_ids=(),
        links=(),
        affected=(
            AffectedPackage("npm", "lib", ((("introduced", "0"), ("fixed", "1.10.0")),)),
            AffectedPackage("npm", "lib", ((("introduced", "1.0.0"), ("fixed", "1.2.0")),)),
            AffectedPackage("npm", "other", ((("introduced", "0"),),)),
        ),
    )
    package = Package(name="lib", version="1.1.0", ecosystem="npm", path="package.json")
    (finding,) = match(package, "npm", [advisory])
    assert finding.fix_version == "1.2.0"


def test_red_hat_streams_match_the_release_an_image_names() -> None:
    from portside.scanner.matching import advisory_ecosystem

    record = {
        "id": "RHSA-2024:0001",
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "Red Hat:enterprise_linux:9::appstream", "name": "curl"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": "0:7.76.1-26.el9"}],
                    }
                ],
            }
        ],
    }
    advisory = parse_record(record)
    ecosystem = "Red Hat:enterprise_linux:9"
    assert advisory_ecosystem("Red Hat:enterprise_linux:9::appstream") == ecosystem
    assert advisory_ecosystem("Debian:12") == "Debian:12"
    old = Package("curl", "7.76.1-19.el9", ecosystem, "var/lib/rpm/rpmdb.sqlite")
    new = Package("curl", "7.76.1-26.el9", ecosystem, "var/lib/rpm/rpmdb.sqlite")
    assert [f.fix_version for f in match(old, ecosystem, [advisory])] == ["0:7.76.1-26.el9"]
    assert match(new, ecosystem, [advisory]) == []
    assert match(old, "Red Hat:enterprise_linux:8", [advisory]) == []
