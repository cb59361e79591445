"""Version ordering per ecosystem, checked against the real tools where they exist here
(``dpkg --compare-versions``, ``packaging``, rpm's own ``rpm.vercmp``, Maven's
``ComparableVersion``) and against the documented orderings elsewhere."""

from __future__ import annotations

import itertools
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from portside.scanner.versions import (
    InvalidVersion,
    UnknownEcosystem,
    compare,
    parse,
    scheme_name,
)

DEBIAN_DATA = Path("/work/shared/vulndb/debian-bookworm")
MAVEN_JAR = Path("/usr/share/java/maven-artifact-3.x.jar")
MAVEN_MAIN = "org.apache.maven.artifact.versioning.ComparableVersion"


def _ascending(ecosystem: str, versions: list[str]) -> None:
    """Every pair of the list compares as its positions do."""
    for (i, a), (j, b) in itertools.combinations(enumerate(versions), 2):
        expected = (i > j) - (i < j)
        assert compare(ecosystem, a, b) == expected, (a, b)
        assert compare(ecosystem, b, a) == -expected, (b, a)


# -- dispatch --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ecosystem", "scheme"),
    [
        ("Debian:12", "dpkg"),
        ("Ubuntu:22.04:LTS", "dpkg"),
        ("Alpine:v3.19", "apk"),
        ("Rocky Linux:9", "rpm"),
        ("AlmaLinux:9", "rpm"),
        ("Red Hat:rhel_aus:8.4::appstream", "rpm"),
        ("openSUSE:Leap 15.5", "rpm"),
        ("SUSE:Linux Enterprise Server 15 SP5", "rpm"),
        ("PyPI", "pep440"),
        ("npm", "semver"),
        ("Go", "semver"),
        ("crates.io", "semver"),
        ("RubyGems", "rubygems"),
        ("Maven", "maven"),
    ],
)
def test_ecosystems_map_to_their_scheme(ecosystem: str, scheme: str) -> None:
    assert scheme_name(ecosystem) == scheme


def test_unknown_ecosystem_is_an_invalid_version() -> None:
    with pytest.raises(UnknownEcosystem):
        compare("Hackage", "1", "2")
    with pytest.raises(InvalidVersion):
        parse("CRAN", "1.0")


@pytest.mark.parametrize(
    "ecosystem", ["Debian:12", "Alpine:v3.19", "Red Hat", "PyPI", "npm", "RubyGems", "Maven"]
)
@pytest.mark.parametrize("bad", ["", "   ", "1" * 300])
def test_empty_or_huge_versions_are_refused_everywhere(ecosystem: str, bad: str) -> None:
    with pytest.raises(InvalidVersion):
        parse(ecosystem, bad)


def test_versions_of_different_schemes_do_not_order() -> None:
    with pytest.raises(TypeError):
        assert parse("Debian:12", "1.0") < parse("Alpine:v3.19", "1.0")
    assert parse("Debian:12", "1.0") != parse("Alpine:v3.19", "1.0")


# -- dpkg: against the real dpkg --------------------------------------------------------------


def _dpkg_results(pairs: list[tuple[str, str]]) -> list[int]:
    """dpkg's verdict for each pair, from one shell running dpkg --compare-versions."""
    script = "".join(
        f"if dpkg --compare-versions '{a}' lt '{b}' 2>/dev/null; then echo -1; "
        f"elif dpkg --compare-versions '{a}' eq '{b}' 2>/dev/null; then echo 0; "
        "else echo 1; fi\n"
        for a, b in pairs
    )
    out = subprocess.run(["sh"], input=script, capture_output=True, text=True, check=True)
    return [int(line) for line in out.stdout.split()]


def _bookworm_versions() -> list[str]:
    versions = set()
    for line in (DEBIAN_DATA / "packages.tsv").read_text().splitlines()[1:]:
        versions.update(v for v in line.split("\t")[1:6] if v != "-")
    return sorted(versions)


HAND_PICKED_DPKG = [
    "1.0",
    "1.0-1",
    "1.0-1~deb12u1",
    "1.0-1+deb12u1",
    "1.0-1+b1",
    "1.0-1+deb12u1+b1",
    "1.0~rc1",
    "1.0~rc1-1",
    "1.0~~",
    "1.0~",
    "1.0a",
    "1.0+",
    "1.0.",
    "1.00",
    "1.01",
    "1.1",
    "1:0.9",
    "1:1.0-1",
    "2:0",
    "0:1.0",
    "1.0-0",
    "1.0-a",
    "1.0-1.1",
    "2.36-9+deb12u1",
    "2.36-9+deb12u10",
    "2.36-9",
    "3.0.11-1~deb12u2",
    "3.0.11-1",
    "1:2.38.1-5+deb12u1",
    "2.38.1-5+deb12u1+b1",
    "9.2p1-2+deb12u3",
    "9.2p1-2",
    "a1.0",
    "1.0-1-2",
]


def _assert_dpkg_agrees(pairs: list[tuple[str, str]]) -> None:
    expected = _dpkg_results(pairs)
    assert len(expected) == len(pairs)
    mismatches = [
        (a, b, want, compare("Debian:12", a, b))
        for (a, b), want in zip(pairs, expected, strict=True)
        if compare("Debian:12", a, b) != want
    ]
    assert mismatches == []


def test_dpkg_agrees_with_real_dpkg_on_bookworm_neighbours() -> None:
    # Neighbours in the sorted bookworm list share prefixes: the interesting comparisons.
    bookworm = _bookworm_versions()
    pairs = list(itertools.pairwise(bookworm))
    pairs += [(b, a) for a, b in itertools.pairwise(HAND_PICKED_DPKG)]
    assert len(pairs) > 300
    _assert_dpkg_agrees(pairs)


@pytest.mark.slow
def test_dpkg_agrees_with_real_dpkg_on_many_generated_pairs() -> None:
    rng = random.Random(12)
    bookworm = _bookworm_versions()
    pairs = list(itertools.combinations(HAND_PICKED_DPKG, 2))
    pairs += [tuple(rng.sample(bookworm, 2)) for _ in range(150)]  # type: ignore[misc]
    # Generated variants of real versions: tilde, binNMU, epoch, security suffixes.
    for version in rng.sample(bookworm, 40):
        for variant in (
            f"{version}~deb12u1",
            f"{version}+b1",
            f"1:{version}",
            f"{version}+deb12u1",
            f"{version}.1",
        ):
            pairs.append((version, variant))
    assert len(pairs) > 900
    _assert_dpkg_agrees(pairs)


@pytest.mark.parametrize("bad", ["1:", "1.0-", "x:1.0", "1.0 1", "-1", "99999999999:1"])
def test_dpkg_refuses_what_dpkg_calls_an_error(bad: str) -> None:
    assert subprocess.run(["dpkg", "--compare-versions", bad, "lt", "1"]).returncode == 2
    with pytest.raises(InvalidVersion):
        parse("Debian:12", bad)


# -- PEP 440: against packaging ----------------------------------------------------------------

PEP440 = [
    "1.0.dev1",
    "1.0a1",
    "1.0a2.dev1",
    "1.0b1",
    "1.0rc1",
    "1.0",
    "1.0.post1",
    "1.0.1",
    "1!0.1",
    "2.0",
    "2.0.0",
    "1.1.dev0",
    "0.9",
    "4.1a1",
    "4.2.3",
    "4.1.10",
    "1.0+local.1",
    "1.0+local.2",
]


def test_pep440_agrees_with_packaging() -> None:
    for a, b in itertools.product(PEP440, repeat=2):
        left, right = Version(a), Version(b)
        assert compare("PyPI", a, b) == (left > right) - (left < right), (a, b)


@pytest.mark.parametrize("bad", ["not a version", "1.0-alpha-beta-gamma", "0.8.0-alpha2x"])
def test_pep440_refuses_what_packaging_refuses(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        parse("PyPI", bad)


# -- rpm: against rpm's own vercmp ------------------------------------------------------------

RPM = [
    "1.0~rc1",
    "1.0~rc2",
    "1.0",
    "1.0^git1",
    "1.0^git2",
    "1.0.1",
    "1.0a",
    "1.01",
    "1.1",
    "1.0-1",
    "1.0-1.el9",
    "1.0-1.el9_2",
    "1.0-2",
    "1.0-10",
    "2.17-326.el9",
    "2.17-326.el9_3",
    "2.17-326.el9_3.1",
    "1:0.9",
    "1:1.0-1",
    "010",
    "1.0alpha",
    "1.0.alpha",
]

RPM_ORDERED = ["1.0~rc1", "1.0~rc2", "1.0", "1.0^git1", "1.0^git2", "1.0.1", "1.1", "1:0.9"]


def test_rpm_documented_order() -> None:
    _ascending("Rocky Linux:9", RPM_ORDERED)
    assert compare("Red Hat", "1.0", "1.0-1") == -1  # a missing release sorts first
    assert compare("Red Hat", "0:1.0-1", "1.0-1") == 0
    assert compare("Red Hat", "1.0a", "1.0.1") == -1  # letters lose to numbers
    assert compare("Red Hat", "1.01", "1.1") == 0  # leading zeros do not count


def test_rpm_agrees_with_rpm_itself() -> None:
    if shutil.which("rpm") is None:
        pytest.skip("rpm is not installed (apt-get install rpm)")
    pairs = list(itertools.permutations(RPM, 2))
    lua = " ".join(f'%{{lua: print(rpm.vercmp("{a}", "{b}"))}}' for a, b in pairs)
    out = subprocess.run(["rpm", "--eval", lua], capture_output=True, text=True, check=True)
    expected = [int(value) for value in out.stdout.split()]
    assert len(expected) == len(pairs)
    for (a, b), want in zip(pairs, expected, strict=True):
        assert compare("Red Hat", a, b) == want, (a, b)


# -- apk: apk-tools' documented order ---------------------------------------------------------

APK_ORDERED = [
    "1.0_alpha",
    "1.0_alpha1",
    "1.0_alpha2",
    "1.0_beta",
    "1.0_pre1",
    "1.0_rc1",
    "1.2",
    "1.2-r1",
    "1.2_p1",
    "1.2_p1-r0",
    "1.2a",
    "1.2b",
    "1.2.0",
    "1.2.1_rc3",
    "1.2.1",
    "1.2.1-r0",
    "1.2.1-r1",
    "1.2.1-r10",
    "1.2.1_git20200101",
    "1.2.1_p2",
    "1.2.2",
    "1.10",
    "2",
]


def test_apk_documented_order() -> None:
    _ascending("Alpine:v3.19", APK_ORDERED)


def test_apk_leading_zeros_and_equal_spellings() -> None:
    # A number after a dot that starts with 0 compares as text.
    assert compare("Alpine:v3.19", "1.01", "1.1") == -1
    assert compare("Alpine:v3.19", "1.001", "1.01") == -1
    assert compare("Alpine:v3.19", "1.010", "1.09") == -1
    assert compare("Alpine:v3.19", "1.10", "1.9") == 1
    assert compare("Alpine:v3.19", "1.0_rc1", "1.0") == -1
    assert compare("Alpine:v3.19", "1.0_", "1.0") == 1  # a bare "_" ranks as the release
    assert compare("Alpine:v3.19", "1.2-r0", "1.2") == 1
    assert compare("Alpine:v3.19", "01.2", "1.2") == 0  # the first number is a plain number


@pytest.mark.parametrize(
    "bad",
    ["1.0-1", "1.0_foo", "1.0_pr", "1.0ab", "1.0-r1a", "1.0 beta", "1.0_rc1.1", "a1", "1.2a.3"],
)
def test_apk_refuses_invalid_versions(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        parse("Alpine:v3.19", bad)


# -- semver: npm, Go, crates.io ---------------------------------------------------------------

SEMVER_ORDERED = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0",
]


@pytest.mark.parametrize("ecosystem", ["npm", "crates.io", "Go"])
def test_semver_precedence_from_the_spec(ecosystem: str) -> None:
    # The example list of SemVer 2.0 section 11.
    _ascending(ecosystem, SEMVER_ORDERED)


def test_go_versions() -> None:
    assert compare("Go", "v1.2.3", "1.2.3") == 0
    assert compare("Go", "v2.0.0+incompatible", "v2.0.0") == 0
    assert compare("Go", "v2.0.1+incompatible", "v2.0.0") == 1
    # Pseudo-versions sort by time below the release they precede.
    _ascending(
        "Go",
        [
            "v0.0.0-20191109021931-daa7c04131f5",
            "v0.0.0-20201109021931-aaaaaaaaaaaa",
            "v0.1.0",
            "v0.1.1-0.20210101000000-bbbbbbbbbbbb",
            "v0.1.1",
        ],
    )


def test_semver_ignores_build_metadata_and_refuses_junk() -> None:
    assert compare("npm", "1.0.0+build.1", "1.0.0+build.2") == 0
    for bad in ("1.0.0-", "x1.0", "1.0.0.0", "1.0.0-al$pha"):
        with pytest.raises(InvalidVersion):
            parse("npm", bad)


# -- RubyGems -------------------------------------------------------------------------------------

GEM_ORDERED = [
    "0.9",
    "1.0.a",
    "1.0.a.1",
    "1.0.b1",
    "1.0.pre",
    "1.0.rc1",
    "1.0",
    "1.0.1",
    "1.1-alpha",
    "1.1",
    "1.10",
    "2",
]


def test_rubygems_order() -> None:
    _ascending("RubyGems", GEM_ORDERED)
    assert compare("RubyGems", "1.0", "1") == 0
    assert compare("RubyGems", "1.0.0", "1") == 0
    assert compare("RubyGems", "1.1-alpha", "1.1.pre.alpha") == 0
    with pytest.raises(InvalidVersion):
        parse("RubyGems", "junk")


# -- Maven: against Maven's own ComparableVersion ---------------------------------------------

# Maven's documented qualifier order and its own test lists.
MAVEN_ORDERED = [
    "1-alpha2snapshot",
    "1-alpha2",
    "1-alpha-123",
    "1-beta-2",
    "1-beta123",
    "1-m2",
    "1-m11",
    "1-rc",
    "1-cr2",
    "1-rc123",
    "1-SNAPSHOT",
    "1",
    "1-sp",
    "1-sp2",
    "1-sp123",
    "1-abc",
    "1-def",
    "1-pom-1",
    "1-1-snapshot",
    "1-1",
    "1-2",
    "1-123",
]
MAVEN_EQUAL = ["1", "1.0", "1.0.0", "1-0", "1.0-0", "1ga", "1-ga", "1.0-final", "1-release"]


def test_maven_documented_order() -> None:
    _ascending("Maven", MAVEN_ORDERED)
    for a, b in itertools.combinations(MAVEN_EQUAL, 2):
        assert compare("Maven", a, b) == 0, (a, b)
    assert compare("Maven", "1-cr2", "1-rc2") == 0
    assert compare("Maven", "1a1", "1-alpha-1") == 0


def test_maven_agrees_with_maven_itself() -> None:
    if shutil.which("java") is None or not MAVEN_JAR.is_file():
        pytest.skip("java and maven-artifact are not installed (apt-get install maven)")
    versions = [
        *MAVEN_ORDERED,
        *MAVEN_EQUAL,
        "2.0.a",
        "2.0.0.a",
        "2-1",
        "1.0.RC1",
        "1.0.0.RELEASE",
        "5.3.18.RELEASE",
        "1.2.3-M10",
        "1.2.3.Beta1",
        "31.1-jre",
        "31.1-android",
        "1.x1.2",
        "1..1",
        "1-0.alpha",
        "1.0.0-20190101.123456-1",
    ]
    rng = random.Random(5)
    orders = [versions] + [rng.sample(versions, len(versions)) for _ in range(3)]
    checked = 0
    for order in orders:
        out = subprocess.run(
            ["java", "-cp", str(MAVEN_JAR), MAVEN_MAIN, *order],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for a, op, b in re.findall(r"^   (\S+) (==|<|>) (\S+)$", out, re.M):
            assert compare("Maven", a, b) == {"<": -1, "==": 0, ">": 1}[op], (a, op, b)
            checked += 1
    assert checked == len(orders) * (len(versions) - 1)


# -- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ecosystem",
    ["Debian:12", "Alpine:v3.19", "Red Hat", "PyPI", "npm", "Go", "RubyGems", "Maven"],
)
def test_random_text_is_a_version_or_invalid_and_orders_consistently(ecosystem: str) -> None:
    rng = random.Random(ecosystem)
    alphabet = "0123456789....---__~~^+:abcprvgitlph \x00é"
    texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 14))) for _ in range(1500)]
    parsed = []
    for text in texts:
        try:
            parsed.append(parse(ecosystem, text))
        except InvalidVersion:
            continue
    assert len(parsed) > 20, "the generator should make some valid versions"
    for a, b in zip(parsed, reversed(parsed), strict=True):
        assert (a < b) == (b > a)
        assert (a == b) == (b == a) == (not a < b and not b < a)
