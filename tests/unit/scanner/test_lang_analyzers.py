"""The language package analyzers on real files: metadata as pip, npm, yarn, pnpm, Maven,
RubyGems and Cargo write it, and binaries from the real Go and Rust toolchains (slow tests),
plus hand-made ELF files for the layouts no installed toolchain produces any more.

Every analyzer also gets the hostile-input treatment: truncated and corrupted copies of each
sample must give a list (possibly empty), never an exception.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

from portside.scanner.analyzers import java, npm, rust
from portside.scanner.analyzers.golang import GoBinaryAnalyzer
from portside.scanner.analyzers.java import JavaArchiveAnalyzer
from portside.scanner.analyzers.npm import NpmAnalyzer
from portside.scanner.analyzers.python import PythonAnalyzer
from portside.scanner.analyzers.ruby import RubyAnalyzer
from portside.scanner.analyzers.rust import RustAnalyzer
from portside.scanner.model import Analyzer, Package
from portside.scanner.purl import make_purl
from tests.unit.scanner.lang_fixtures import (
    go_inline_buildinfo,
    go_pointer_buildinfo,
    make_elf,
    modinfo,
)

FILE = 0o100644
EXECUTABLE = 0o100755


def found(packages: list[Package]) -> set[tuple[str, str]]:
    return {(p.name, p.version) for p in packages}


def analyze_tree(analyzer: Analyzer, root: Path) -> list[Package]:
    """What the layer reader does: offer every regular file, parse the wanted ones."""
    packages = []
    for file in sorted(root.rglob("*")):
        if file.is_file() and not file.is_symlink():
            path = file.relative_to(root).as_posix()
            stat = file.stat()
            if analyzer.wants(path, stat.st_size, stat.st_mode):
                packages += analyzer.parse(path, file.read_bytes())
    return packages


def assert_survives_corruption(analyzer: Analyzer, path: str, data: bytes) -> None:
    rng = random.Random(len(data))
    samples = [data[:cut] for cut in range(0, len(data), max(1, len(data) // 40))]
    for _ in range(40):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        samples.append(bytes(damaged))
    samples += [b"", b"\0" * 64, rng.randbytes(4096), b"[" * 100_000, b"{" * 100_000]
    for sample in samples:
        assert isinstance(analyzer.parse(path, sample), list)


# --------------------------------------------------------------------------------- purl


def test_purl_encodes_each_component() -> None:
    assert make_purl("npm", "animation", "12.3.1", namespace="@angular") == (
        "pkg:npm/%40angular/animation@12.3.1"
    )
    assert make_purl("golang", "b", "v2.0.0+incompatible", namespace="github.com/a") == (
        "pkg:golang/github.com/a/b@v2.0.0%2Bincompatible"
    )
    assert make_purl("gem", "nokogiri", "1.0", qualifiers={"platform": "x86_64-linux"}) == (
        "pkg:gem/nokogiri@1.0?platform=x86_64-linux"
    )
    assert make_purl("maven", "a b", "1:2") == "pkg:maven/a%20b@1:2"


# ------------------------------------------------------------------------------- Python

METADATA = b"""\
Metadata-Version: 2.1
Name: Flask_Login
Version: 0.6.3
Summary: User authentication and session management for Flask.
License: MIT
Classifier: Framework :: Flask
Classifier: License :: OSI Approved :: MIT License
Requires-Python: >=3.7
Requires-Dist: Flask >=1.0.4

Flask-Login
===========
Name: not-a-header
"""

METADATA_2_4 = b"""\
Metadata-Version: 2.4
Name: attrs
Version: 25.1.0
License-Expression: MIT
License-File: LICENSE

"""

PKG_INFO_CLASSIFIER_ONLY = b"""\
Metadata-Version: 1.2
Name: python-apt
Version: 2.6.0
License: UNKNOWN
Classifier: License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)
"""


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("usr/local/lib/python3.12/site-packages/flask_login-0.6.3.dist-info/METADATA", True),
        ("opt/venv/lib/python3.11/site-packages/six-1.16.0.egg-info/PKG-INFO", True),
        ("usr/lib/python3/dist-packages/python_apt-2.6.0.egg-info", True),
        ("usr/lib/python3/dist-packages/pkg-1.0.dist-info/RECORD", False),
        ("usr/lib/python3/dist-packages/setuptools/_vendor/a-1.0.dist-info/METADATA", False),
        ("src/app/app.egg-info/PKG-INFO", False),
        ("flask_login-0.6.3.dist-info/METADATA", False),
    ],
)
def test_python_wants_installed_metadata_only(path: str, wanted: bool) -> None:
    assert PythonAnalyzer().wants(path, 1000, FILE) is wanted


def test_python_refuses_oversized_metadata() -> None:
    analyzer = PythonAnalyzer()
    path = "usr/lib/python3/dist-packages/a-1.dist-info/METADATA"
    assert not analyzer.wants(path, analyzer.max_bytes + 1, FILE)


def test_python_reads_headers_not_the_description() -> None:
    path = "usr/local/lib/python3.12/site-packages/flask_login-0.6.3.dist-info/METADATA"
    (package,) = PythonAnalyzer().parse(path, METADATA)
    assert package == Package(
        name="Flask_Login",
        version="0.6.3",
        ecosystem="PyPI",
        path=path,
        purl="pkg:pypi/flask-login@0.6.3",
        licenses=("MIT",),
    )


@pytest.mark.parametrize(
    ("data", "licenses"),
    [
        (METADATA_2_4, ("MIT",)),
        (PKG_INFO_CLASSIFIER_ONLY, ("GNU General Public License v2 or later (GPLv2+)",)),
        (METADATA_2_4.replace(b"License-Expression: MIT\n", b""), ()),
    ],
)
def test_python_licenses(data: bytes, licenses: tuple[str, ...]) -> None:
    (package,) = PythonAnalyzer().parse("x/site-packages/a.egg-info", data)
    assert package.licenses == licenses


@pytest.mark.parametrize(
    "data",
    [b"", b"Name: foo\n", b"Version: 1\n", b"Name: a b\nVersion: 1\n", b"\xff\xfe\0garbage"],
)
def test_python_skips_metadata_without_name_and_version(data: bytes) -> None:
    assert PythonAnalyzer().parse("x/site-packages/a.egg-info", data) == []


def test_python_survives_corruption() -> None:
    assert_survives_corruption(PythonAnalyzer(), "x/site-packages/a.egg-info", METADATA)


@pytest.mark.slow
def test_python_reads_what_pip_installs(tmp_path: Path) -> None:
    site = tmp_path / "usr/lib/python3.11/site-packages"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
         "--disable-pip-version-check", "--target", str(site), "six==1.16.0", "idna==3.7",
         "typing_extensions==4.12.2"],
        check=True,
        timeout=300,
    )  # fmt: skip
    packages = analyze_tree(PythonAnalyzer(), tmp_path)
    assert found(packages) == {("six", "1.16.0"), ("idna", "3.7"), ("typing_extensions", "4.12.2")}
    purls = {p.purl for p in packages}
    assert "pkg:pypi/typing-extensions@4.12.2" in purls
    assert all(p.path.endswith(".dist-info/METADATA") for p in packages)


# ---------------------------------------------------------------------------------- npm

PACKAGE_LOCK_V1 = {
    "name": "app",
    "version": "1.0.0",
    "lockfileVersion": 1,
    "requires": True,
    "dependencies": {
        "express": {
            "version": "4.18.2",
            "resolved": "https://registry.npmjs.org/express/-/express-4.18.2.tgz",
            "integrity": "sha512-x",
            "requires": {"debug": "2.6.9"},
            "dependencies": {
                "debug": {"version": "2.6.9", "resolved": "https://registry.npmjs.org/d.tgz"}
            },
        },
        "debug": {"version": "4.3.4"},
        "@babel/core": {"version": "7.23.0", "dev": True},
        "lodash-old": {"version": "npm:lodash@4.17.20"},
        "local-thing": {"version": "file:../local-thing"},
        "from-git": {"version": "github:user/repo#0123abc"},
    },
}

PACKAGE_LOCK_V3 = {
    "name": "app",
    "version": "1.0.0",
    "lockfileVersion": 3,
    "requires": True,
    "packages": {
        "": {"name": "app", "version": "1.0.0", "workspaces": ["packages/*"]},
        "node_modules/@types/node": {"version": "20.11.5", "license": "MIT"},
        "node_modules/express": {"version": "4.18.2", "license": "MIT"},
        "node_modules/express/node_modules/debug": {"version": "2.6.9"},
        "node_modules/send/node_modules/debug": {"version": "2.6.9"},
        "node_modules/jest": {"version": "29.7.0", "dev": True},
        "node_modules/old-lodash": {"name": "lodash", "version": "4.17.20"},
        "node_modules/my-lib": {"resolved": "packages/my-lib", "link": True},
        "packages/my-lib": {"name": "my-lib", "version": "0.1.0"},
    },
}

YARN_V1 = """\
# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.
# yarn lockfile v1


"@babel/code-frame@^7.0.0", "@babel/code-frame@^7.22.13":
  version "7.22.13"
  resolved "https://registry.yarnpkg.com/@babel/code-frame/-/code-frame-7.22.13.tgz#e3c1c"
  integrity sha512-XktuhWlJ5g+3TJXc5upd9Ks1HutSArik6jf2eAjYFyIOf4ej3RN+184cZbzDvbPnuTJIUhPKKJE3cIsYTiAT3w==
  dependencies:
    "@babel/highlight" "^7.22.13"
    chalk "^2.4.2"

chalk@^2.4.2:
  version "2.4.2"
  resolved "https://registry.yarnpkg.com/chalk/-/chalk-2.4.2.tgz#cd42541677a54333cf541a49108c1432b44c9424"

lodash-legacy@npm:lodash@^4.17.0:
  version "4.17.21"
"""  # noqa: E501

YARN_BERRY = """\
# This file is generated by running "yarn install" inside your project.
# Manual changes might be lost - proceed with caution!

__metadata:
  version: 8
  cacheKey: 10c0

"@babel/code-frame@npm:^7.0.0, @babel/code-frame@npm:^7.22.13":
  version: 7.22.13
  resolution: "@babel/code-frame@npm:7.22.13"
  dependencies:
    "@babel/highlight": "npm:^7.22.13"
  checksum: 10c0/f4cc1ae
  languageName: node
  linkType: hard

"my-app@workspace:.":
  version: 0.0.0-use.local
  resolution: "my-app@workspace:."
  languageName: unknown
  linkType: soft

"resolve@patch:resolve@npm%3A^1.20.0#optional!builtin<compat/resolve>":
  version: 1.22.8
  resolution: "resolve@patch:resolve@npm%3A1.22.8#optional!builtin<compat/resolve>::version=1.22.8"
  languageName: node
  linkType: hard

"resolve@npm:^1.20.0":
  version: 1.22.8
  resolution: "resolve@npm:1.22.8"
  languageName: node
  linkType: hard
"""

PNPM_V5 = """\
lockfileVersion: 5.4

specifiers:
  react: ^18.2.0

dependencies:
  react: 18.2.0

packages:

  /@babel/runtime/7.23.2:
    resolution: {integrity: sha512-mM8eg4yl5D6i3lu2QKPuPH4FArvJ8KhtofbE7jwMUv9KX5mBvwPAqnV3MlyBNqdp9RyRKP6Yck8TrfYrPvX3bg==}
    dependencies:
      regenerator-runtime: 0.14.0
    dev: false

  /react-dom/18.2.0_react@18.2.0:
    resolution: {integrity: sha512-x}
    dev: false

  /typescript/5.2.2:
    resolution: {integrity: sha512-x}
    dev: true
"""  # noqa: E501

PNPM_V6 = """\
lockfileVersion: '6.0'

dependencies:
  react-dom:
    specifier: ^18.2.0
    version: 18.2.0(react@18.2.0)

packages:

  /@babel/runtime@7.23.2:
    resolution: {integrity: sha512-x}
    dev: false

  /react-dom@18.2.0(react@18.2.0):
    resolution: {integrity: sha512-x}
    peerDependencies:
      react: ^18.2.0
    dev: false

  /vitest@0.34.6:
    resolution: {integrity: sha512-x}
    dev: true

  github.com/user/repo/0123456789abcdef:
    resolution: {tarball: https://codeload.github.com/user/repo/tar.gz/0123456789abcdef}
    name: repo
    version: 1.0.0
    dev: false
"""

PNPM_V9 = """\
lockfileVersion: '9.0'

settings:
  autoInstallPeers: true

importers:

  .:
    dependencies:
      react-dom:
        specifier: ^18.2.0
        version: 18.2.0(react@18.2.0)

packages:

  '@babel/runtime@7.23.2':
    resolution: {integrity: sha512-x}

  react-dom@18.2.0:
    resolution: {integrity: sha512-x}
    peerDependencies:
      react: ^18.2.0

snapshots:

  '@babel/runtime@7.23.2': {}

  react-dom@18.2.0(react@18.2.0):
    dependencies:
      react: 18.2.0

  not-in-packages@1.0.0: {}
"""


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("app/node_modules/express/package.json", True),
        ("usr/lib/node_modules/npm/node_modules/@npmcli/arborist/package.json", True),
        ("app/node_modules/express/lib/package.json", False),
        ("app/node_modules/@types/package.json", False),
        ("app/package.json", False),
        ("app/package-lock.json", True),
        ("app/yarn.lock", True),
        ("app/pnpm-lock.yaml", True),
        ("app/node_modules/.package-lock.json", False),
        ("app/node_modules/some-dep/package-lock.json", False),
        ("app/node_modules/some-dep/yarn.lock", False),
    ],
)
def test_npm_wants(path: str, wanted: bool) -> None:
    assert NpmAnalyzer().wants(path, 1000, FILE) is wanted


def test_npm_installed_package_json() -> None:
    path = "app/node_modules/@angular/core/package.json"
    data = json.dumps({"name": "@angular/core", "version": "17.0.1", "license": "MIT"})
    (package,) = NpmAnalyzer().parse(path, data.encode())
    assert package == Package(
        name="@angular/core",
        version="17.0.1",
        ecosystem="npm",
        path=path,
        purl="pkg:npm/%40angular/core@17.0.1",
        licenses=("MIT",),
    )


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ({"name": "ws", "version": "8.0.0", "licenses": [{"type": "MIT"}]}, ("ws", ("MIT",))),
        ({"name": "x", "version": "1.0.0", "license": {"type": "ISC"}}, ("x", ("ISC",))),
        ({"name": "root", "private": True, "workspaces": ["a"]}, None),
        ({"name": "x", "version": "latest"}, None),
        ({"name": "../../etc", "version": "1.0.0"}, None),
        (["not", "an", "object"], None),
    ],
)
def test_npm_package_json_variants(manifest: object, expected: object) -> None:
    packages = NpmAnalyzer().parse("a/node_modules/x/package.json", json.dumps(manifest).encode())
    assert [(p.name, p.licenses) for p in packages] == ([expected] if expected else [])


def test_npm_package_lock_v1_walks_the_nested_tree() -> None:
    packages = NpmAnalyzer().parse("app/package-lock.json", json.dumps(PACKAGE_LOCK_V1).encode())
    assert sorted(found(packages)) == [
        ("debug", "2.6.9"),
        ("debug", "4.3.4"),
        ("express", "4.18.2"),
        ("lodash", "4.17.20"),
    ]


@pytest.mark.parametrize("version", [2, 3])
def test_npm_package_lock_v2_v3_read_the_packages_map(version: int) -> None:
    lock = dict(PACKAGE_LOCK_V3, lockfileVersion=version)
    if version == 2:  # v2 also carries the v1 tree for old npm; the packages map wins
        lock["dependencies"] = {"ignored": {"version": "9.9.9"}}
    packages = NpmAnalyzer().parse("app/package-lock.json", json.dumps(lock).encode())
    assert sorted(found(packages)) == [
        ("@types/node", "20.11.5"),
        ("debug", "2.6.9"),
        ("express", "4.18.2"),
        ("lodash", "4.17.20"),
    ]
    assert len(packages) == 4  # debug 2.6.9 once, though installed in two folders
    types = next(p for p in packages if p.name == "@types/node")
    assert types.purl == "pkg:npm/%40types/node@20.11.5"
    assert types.path == "app/package-lock.json"


def test_npm_yarn_v1() -> None:
    packages = NpmAnalyzer().parse("app/yarn.lock", YARN_V1.encode())
    assert sorted(found(packages)) == [
        ("@babel/code-frame", "7.22.13"),
        ("chalk", "2.4.2"),
        ("lodash", "4.17.21"),
    ]


def test_npm_yarn_berry_counts_registry_resolutions_only() -> None:
    packages = NpmAnalyzer().parse("app/yarn.lock", YARN_BERRY.encode())
    assert sorted(found(packages)) == [("@babel/code-frame", "7.22.13"), ("resolve", "1.22.8")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PNPM_V5, [("@babel/runtime", "7.23.2"), ("react-dom", "18.2.0")]),
        (PNPM_V6, [("@babel/runtime", "7.23.2"), ("react-dom", "18.2.0")]),
        (PNPM_V9, [("@babel/runtime", "7.23.2"), ("react-dom", "18.2.0")]),
    ],
)
def test_npm_pnpm_lock(text: str, expected: list[tuple[str, str]]) -> None:
    assert sorted(found(NpmAnalyzer().parse("app/pnpm-lock.yaml", text.encode()))) == expected


def test_npm_caps_packages_per_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(npm, "_MAX_PACKAGES", 3)
    text = "packages:\n" + "".join(f"  /p{i}@1.0.0:\n" for i in range(10))
    assert len(NpmAnalyzer().parse("a/pnpm-lock.yaml", text.encode())) == 3


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("a/package-lock.json", json.dumps(PACKAGE_LOCK_V1).encode()),
        ("a/package-lock.json", json.dumps(PACKAGE_LOCK_V3).encode()),
        ("a/yarn.lock", YARN_V1.encode()),
        ("a/yarn.lock", YARN_BERRY.encode()),
        ("a/pnpm-lock.yaml", PNPM_V6.encode()),
        ("a/node_modules/x/package.json", b'{"name": "x", "version": "1.0.0"}'),
    ],
)
def test_npm_survives_corruption(path: str, data: bytes) -> None:
    assert_survives_corruption(NpmAnalyzer(), path, data)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
def test_npm_reads_what_npm_installs(tmp_path: Path) -> None:
    app = tmp_path / "srv/app"
    app.mkdir(parents=True)
    (app / "package.json").write_text('{"name": "app", "version": "1.0.0", "private": true}')
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts",
         "is-number@7.0.0", "@isaacs/string-locale-compare@1.1.0"],
        cwd=app, check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    packages = analyze_tree(NpmAnalyzer(), tmp_path)
    expected = {("is-number", "7.0.0"), ("@isaacs/string-locale-compare", "1.1.0")}
    by_file: dict[str, set[tuple[str, str]]] = {}
    for package in packages:
        by_file.setdefault(package.path, set()).add((package.name, package.version))
    assert by_file == {
        "srv/app/package-lock.json": expected,
        "srv/app/node_modules/is-number/package.json": {("is-number", "7.0.0")},
        "srv/app/node_modules/@isaacs/string-locale-compare/package.json": {
            ("@isaacs/string-locale-compare", "1.1.0")
        },
    }


# ----------------------------------------------------------------------------------- Go

GO_MODINFO = modinfo(
    [
        "path\texample.com/app/cmd/server",
        "mod\texample.com/app\tv1.4.0\th1:abc=",
        "dep\tgolang.org/x/net\tv0.17.0\th1:def=",
        "dep\tgithub.com/Azure/go-ansiterm\tv0.0.0-20230124172434-306776ec8161\th1:x=",
        "dep\tgithub.com/old/lib\tv1.0.0",
        "=>\tgithub.com/fork/lib\tv1.0.1\th1:y=",
        "dep\tgithub.com/patched/lib\tv2.0.0+incompatible",
        "=>\t../patched\t\t",
        "build\t-compiler=gc",
    ]
)
GO_EXPECTED = {
    ("example.com/app", "1.4.0"),
    ("golang.org/x/net", "0.17.0"),
    ("github.com/Azure/go-ansiterm", "0.0.0-20230124172434-306776ec8161"),
    ("github.com/fork/lib", "1.0.1"),
}


@pytest.mark.parametrize(
    ("path", "size", "mode", "wanted"),
    [
        ("usr/local/bin/server", 10_000_000, EXECUTABLE, True),
        ("app/server", 10_000_000, FILE, False),
        ("usr/share/doc/script", 10_000_000, EXECUTABLE, False),
        ("usr/bin/tool.sh", 10_000, EXECUTABLE, False),
        ("usr/lib/libfoo.so", 10_000, EXECUTABLE, False),
        ("usr/local/bin/huge", 300 * 1024 * 1024, EXECUTABLE, False),
        ("usr/local/bin/tiny", 10, EXECUTABLE, False),
    ],
)
def test_go_wants_executables(path: str, size: int, mode: int, wanted: bool) -> None:
    assert GoBinaryAnalyzer().wants(path, size, mode) is wanted


def test_go_inline_build_info() -> None:
    blob = go_inline_buildinfo("go1.21.5", GO_MODINFO)
    binary = make_elf([(".text", b"\x90" * 200), (".go.buildinfo", blob)])
    packages = GoBinaryAnalyzer().parse("usr/local/bin/server", binary)
    assert found(packages) == {*GO_EXPECTED, ("stdlib", "1.21.5")}
    purls = {p.name: p.purl for p in packages}
    assert purls["github.com/Azure/go-ansiterm"] == (
        "pkg:golang/github.com/azure/go-ansiterm@v0.0.0-20230124172434-306776ec8161"
    )
    assert purls["stdlib"] == "pkg:golang/stdlib@v1.21.5"
    assert {p.ecosystem for p in packages} == {"Go"}
    assert {p.path for p in packages} == {"usr/local/bin/server"}


@pytest.mark.parametrize("big_endian", [False, True])
def test_go_pointer_build_info_before_go_1_18(big_endian: bool) -> None:
    blob = go_pointer_buildinfo("go1.16.15", GO_MODINFO, big_endian)
    binary = make_elf([(".go.buildinfo", blob)], big_endian)
    packages = GoBinaryAnalyzer().parse("bin/server", binary)
    assert found(packages) == {*GO_EXPECTED, ("stdlib", "1.16.15")}


@pytest.mark.parametrize(
    ("toolchain", "stdlib"),
    [("go1.19", "1.19.0"), ("go1.22rc1", "1.22.0-rc.1"), ("go1.22.1 X:boringcrypto", "1.22.1")],
)
def test_go_toolchain_versions_in_osv_form(toolchain: str, stdlib: str) -> None:
    binary = make_elf([(".go.buildinfo", go_inline_buildinfo(toolchain, modinfo([])))])
    assert found(GoBinaryAnalyzer().parse("bin/x", binary)) == {("stdlib", stdlib)}


def test_go_development_toolchain_and_devel_main_module() -> None:
    info = modinfo(["mod\texample.com/tool\t(devel)\t", "dep\tgolang.org/x/sys\tv0.1.0\th1:x="])
    binary = make_elf([(".go.buildinfo", go_inline_buildinfo("devel go1.23-abc", info))])
    packages = GoBinaryAnalyzer().parse("bin/x", binary)
    assert found(packages) == {("example.com/tool", ""), ("golang.org/x/sys", "0.1.0")}
    assert next(p.purl for p in packages if p.name == "example.com/tool") == (
        "pkg:golang/example.com/tool"
    )


def test_go_ignores_the_magic_outside_aligned_build_info() -> None:
    """A Go program that uses debug/buildinfo carries the magic as a string constant; a
    candidate whose header does not decode must not stop the search or produce packages."""
    literal = b"\x00" * 16 + b"\xff Go buildinf:" + b"\x08\x02" + b"\xff" * 40
    binary = make_elf([(".rodata", literal)])
    assert GoBinaryAnalyzer().parse("bin/x", binary) == []
    real = go_inline_buildinfo("go1.20.1", modinfo([]))
    binary = make_elf([(".rodata", literal), (".go.buildinfo", real)])
    assert found(GoBinaryAnalyzer().parse("bin/x", binary)) == {("stdlib", "1.20.1")}


def test_go_build_info_must_be_aligned() -> None:
    """Go's linker aligns the blob to 16 bytes and Go's reader skips unaligned matches."""
    real = go_inline_buildinfo("go1.20.1", modinfo([]))
    assert GoBinaryAnalyzer().parse("bin/x", make_elf([(".data", b"\0" * 3 + real)])) == []
    assert found(GoBinaryAnalyzer().parse("bin/x", make_elf([(".data", b"\0" * 16 + real)]))) == {
        ("stdlib", "1.20.1")
    }


@pytest.mark.parametrize(
    "data",
    [b"#!/bin/sh\necho hi\n" * 100, make_elf([(".text", b"\x90" * 4000)]), b"MZ" + bytes(3000)],
)
def test_go_other_files_give_nothing(data: bytes) -> None:
    assert GoBinaryAnalyzer().parse("bin/x", data) == []


def test_go_survives_corruption() -> None:
    analyzer = GoBinaryAnalyzer()
    for blob in (
        go_inline_buildinfo("go1.21.5", GO_MODINFO),
        go_pointer_buildinfo("go1.16.15", GO_MODINFO),
    ):
        assert_survives_corruption(analyzer, "bin/x", make_elf([(".go.buildinfo", blob)]))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain (golang-go)")
def test_go_reads_a_real_go_binary(tmp_path: Path) -> None:
    """A program with two dependencies, vendored so the build needs no network: one plain,
    one replaced by a fork (``replace`` in go.mod, ``=>`` in the build info)."""
    app = tmp_path / "src"
    greet = app / "vendor/example.com/greet"
    fork = app / "vendor/example.org/colour"
    for folder, package in ((greet, "greet"), (fork, "colour")):
        folder.mkdir(parents=True)
        (folder / f"{package}.go").write_text(
            f'package {package}\n\nfunc Name() string {{ return "{package}" }}\n'
        )
    (app / "go.mod").write_text(
        "module example.com/app\n\ngo 1.19\n\n"
        "require (\n\texample.com/greet v1.2.3\n\texample.org/colour v0.4.0\n)\n\n"
        "replace example.org/colour => example.net/colourfork v0.4.1\n"
    )
    (app / "vendor/modules.txt").write_text(
        "# example.com/greet v1.2.3\n## explicit\nexample.com/greet\n"
        "# example.org/colour v0.4.0 => example.net/colourfork v0.4.1\n## explicit\n"
        "example.org/colour\n"
        "# example.org/colour => example.net/colourfork v0.4.1\n"
    )
    (app / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/greet"\n\t"example.org/colour"\n)\n\n'
        "func main() { fmt.Println(greet.Name(), colour.Name()) }\n"
    )
    output = tmp_path / "image/usr/local/bin/app"
    env = dict(os.environ, GOFLAGS="-mod=vendor", GOPROXY="off", GOCACHE=str(tmp_path / "cache"),
               GOPATH=str(tmp_path / "gopath"), CGO_ENABLED="0")  # fmt: skip
    subprocess.run(["go", "build", "-o", str(output), "."], cwd=app, env=env, check=True,
                   timeout=300)  # fmt: skip
    toolchain = subprocess.run(["go", "env", "GOVERSION"], env=env, capture_output=True,
                               text=True, check=True).stdout.strip()  # fmt: skip
    packages = analyze_tree(GoBinaryAnalyzer(), tmp_path / "image")
    assert found(packages) == {
        ("example.com/app", ""),
        ("example.com/greet", "1.2.3"),
        ("example.net/colourfork", "0.4.1"),
        ("stdlib", toolchain.removeprefix("go")),
    }


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain (golang-go)")
@pytest.mark.parametrize("layout", ["inline", "pointer", "pointer-big-endian"])
def test_go_fixtures_are_what_go_itself_reads(tmp_path: Path, layout: str) -> None:
    """``go version -m`` reads the hand-made fixtures, so they are faithful to the format."""
    if layout == "inline":
        blob = go_inline_buildinfo("go1.21.5", GO_MODINFO)
    else:
        blob = go_pointer_buildinfo("go1.16.15", GO_MODINFO, layout.endswith("endian"))
    binary = tmp_path / "server"
    binary.write_bytes(make_elf([(".go.buildinfo", blob)], layout.endswith("endian")))
    binary.chmod(0o755)
    listing = subprocess.run(["go", "version", "-m", str(binary)], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    assert "\tdep\tgolang.org/x/net\tv0.17.0" in listing
    assert "\t=>\tgithub.com/fork/lib\tv1.0.1" in listing


# --------------------------------------------------------------------------------- Java


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def pom_properties(group: str, artifact: str, version: str) -> bytes:
    return (
        f"#Generated by Maven\n#Tue Oct 03 10:00:00 UTC 2023\n"
        f"artifactId={artifact}\ngroupId={group}\nversion={version}\n"
    ).encode()


def maven_jar(group: str, artifact: str, version: str) -> bytes:
    return make_zip(
        {
            "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\r\nCreated-By: Maven\r\n\r\n",
            f"META-INF/maven/{group}/{artifact}/pom.properties": pom_properties(
                group, artifact, version
            ),
            f"META-INF/maven/{group}/{artifact}/pom.xml": b"<project/>",
            "org/example/Thing.class": b"\xca\xfe\xba\xbe" + bytes(100),
        }
    )


@pytest.mark.parametrize(
    ("path", "wanted"),
    [("app/app.jar", True), ("srv/ROOT.war", True), ("a/b.EAR", True), ("a/b.zip", False)],
)
def test_java_wants_archives(path: str, wanted: bool) -> None:
    assert JavaArchiveAnalyzer().wants(path, 1000, FILE) is wanted


def test_java_pom_properties() -> None:
    jar = maven_jar("org.apache.logging.log4j", "log4j-core", "2.14.1")
    (package,) = JavaArchiveAnalyzer().parse("app/lib/log4j-core-2.14.1.jar", jar)
    assert package == Package(
        name="org.apache.logging.log4j:log4j-core",
        version="2.14.1",
        ecosystem="Maven",
        path="app/lib/log4j-core-2.14.1.jar",
        purl="pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
    )


def test_java_shaded_jar_lists_every_pom() -> None:
    entries = {
        f"META-INF/maven/{g}/{a}/pom.properties": pom_properties(g, a, v)
        for g, a, v in [("com.acme", "app", "1.0"), ("com.google.guava", "guava", "31.1-jre")]
    }
    packages = JavaArchiveAnalyzer().parse("app.jar", make_zip(entries))
    assert found(packages) == {("com.acme:app", "1.0"), ("com.google.guava:guava", "31.1-jre")}


def test_java_manifest_fallback() -> None:
    osgi = (
        b"Manifest-Version: 1.0\r\nBundle-SymbolicName: org.eclipse.jetty.ser\r\n"
        b" ver;singleton:=true\r\nBundle-Version: 9.4.51.v20230217\r\n"
        b"Implementation-Title: Jetty :: Server\r\n\r\n"
        b"Name: org/eclipse/\r\nBundle-Version: 0.0\r\n"
    )
    plain = b"Manifest-Version: 1.0\nImplementation-Title: tool\nImplementation-Version: 3.2\n"
    vendor = plain.replace(b"Manifest", b"Implementation-Vendor-Id: org.acme\nManifest")
    spaced = b"Implementation-Title: Some Tool\nImplementation-Version: 1\n"
    analyzer = JavaArchiveAnalyzer()
    (bundle,) = analyzer.parse("a.jar", make_zip({"META-INF/MANIFEST.MF": osgi}))
    assert (bundle.name, bundle.version, bundle.purl) == (
        "org.eclipse.jetty.server", "9.4.51.v20230217", "",
    )  # fmt: skip
    assert found(analyzer.parse("a.jar", make_zip({"META-INF/MANIFEST.MF": plain}))) == {
        ("tool", "3.2")
    }
    (acme,) = analyzer.parse("a.jar", make_zip({"META-INF/MANIFEST.MF": vendor}))
    assert (acme.name, acme.purl) == ("org.acme:tool", "pkg:maven/org.acme/tool@3.2")
    assert analyzer.parse("a.jar", make_zip({"META-INF/MANIFEST.MF": spaced})) == []


def test_java_spring_boot_and_war_nesting() -> None:
    boot = make_zip(
        {
            "META-INF/maven/com.acme/service/pom.properties": pom_properties(
                "com.acme", "service", "2.0.0"
            ),
            "BOOT-INF/lib/spring-core-5.3.20.jar": maven_jar(
                "org.springframework", "spring-core", "5.3.20"
            ),
            "BOOT-INF/lib/snakeyaml-1.30.jar": maven_jar("org.yaml", "snakeyaml", "1.30"),
        },
        compression=zipfile.ZIP_STORED,  # as Spring Boot stores nested jars
    )
    war = make_zip({"WEB-INF/lib/service.jar": boot})
    ear = make_zip({"web.war": war})
    expected = {
        ("com.acme:service", "2.0.0"),
        ("org.springframework:spring-core", "5.3.20"),
        ("org.yaml:snakeyaml", "1.30"),
    }
    analyzer = JavaArchiveAnalyzer()
    assert found(analyzer.parse("app.jar", boot)) == expected
    assert found(analyzer.parse("srv/app.war", war)) == expected
    # ear -> war -> jar -> jar: the innermost jars are past the depth limit
    assert found(analyzer.parse("srv/app.ear", ear)) == {("com.acme:service", "2.0.0")}
    assert {p.path for p in analyzer.parse("srv/app.war", war)} == {"srv/app.war"}


def padded_jar(group: str, artifact: str, padding: int) -> bytes:
    """A jar whose stored (uncompressed) padding makes it ``padding`` bytes big, yet tiny once
    deflated inside another archive."""
    pom = {
        f"META-INF/maven/{group}/{artifact}/pom.properties": pom_properties(group, artifact, "1")
    }
    return make_zip({**pom, "pad.bin": bytes(padding)}, compression=zipfile.ZIP_STORED)


def test_java_zip_bomb_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A nested entry that inflates past the nested-archive cap is read only up to the cap
    and skipped; the rest of the archive still counts, and under a larger cap it is read."""
    data = make_zip(
        {
            "META-INF/maven/a/b/pom.properties": pom_properties("a", "b", "1"),
            "BOOT-INF/lib/bomb.jar": padded_jar("c", "d", 8 << 20),
        }
    )
    assert len(data) < 64 * 1024
    monkeypatch.setattr(java, "_MAX_NESTED_BYTES", 1 << 20)
    assert found(JavaArchiveAnalyzer().parse("bomb.jar", data)) == {("a:b", "1")}
    monkeypatch.setattr(java, "_MAX_NESTED_BYTES", 16 << 20)
    assert found(JavaArchiveAnalyzer().parse("bomb.jar", data)) == {("a:b", "1"), ("c:d", "1")}


def test_java_total_budget_spans_nested_archives(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_zip({f"WEB-INF/lib/{n}.jar": padded_jar("g", n, 600_000) for n in "xyz"})
    assert found(JavaArchiveAnalyzer().parse("app.war", data)) == {
        ("g:x", "1"), ("g:y", "1"), ("g:z", "1"),
    }  # fmt: skip
    monkeypatch.setattr(java, "_MAX_TOTAL_BYTES", 1_500_000)
    assert found(JavaArchiveAnalyzer().parse("app.war", data)) == {("g:x", "1"), ("g:y", "1")}


@pytest.mark.parametrize(("entries", "expected"), [(10, 1), (11, 0)])
def test_java_entry_count_is_capped(
    monkeypatch: pytest.MonkeyPatch, entries: int, expected: int
) -> None:
    monkeypatch.setattr(java, "_MAX_ENTRIES", 10)
    files = {f"f{i}": b"" for i in range(entries - 1)}
    files["META-INF/maven/a/b/pom.properties"] = pom_properties("a", "b", "1")
    assert len(JavaArchiveAnalyzer().parse("many.jar", make_zip(files))) == expected


def test_java_central_directory_size_is_capped_whatever_the_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """zipfile reads entries until the declared directory size is used up, so an end record
    declaring 1 entry over a directory of 2,000 is still refused."""
    files = {f"f{i}": b"" for i in range(2000)}
    files["META-INF/maven/a/b/pom.properties"] = pom_properties("a", "b", "1")
    data = bytearray(make_zip(files))
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = (1).to_bytes(2, "little") * 2  # both entry counts
    assert found(JavaArchiveAnalyzer().parse("lying.jar", bytes(data))) == {("a:b", "1")}
    monkeypatch.setattr(java, "_MAX_DIRECTORY_BYTES", 10_000)
    assert JavaArchiveAnalyzer().parse("lying.jar", bytes(data)) == []


def test_java_zip64_end_record_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(20):
            archive.writestr(f"f{i}", b"")
        archive.writestr("META-INF/maven/a/b/pom.properties", pom_properties("a", "b", "1"))
        # zipfile writes a zip64 end record when asked to, as tools do past 65,535 entries
        monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 10)
    data = bytearray(buffer.getvalue())
    assert b"PK\x06\x06" in data
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = (1).to_bytes(2, "little") * 2  # the zip64 record's 21 rules
    assert found(JavaArchiveAnalyzer().parse("z64.jar", bytes(data))) == {("a:b", "1")}
    monkeypatch.setattr(java, "_MAX_ENTRIES", 20)
    assert JavaArchiveAnalyzer().parse("z64.jar", bytes(data)) == []


def test_java_survives_corruption() -> None:
    inner = maven_jar("org.yaml", "snakeyaml", "1.30")
    outer = make_zip({"BOOT-INF/lib/s.jar": inner, "META-INF/MANIFEST.MF": b"A: b\n"})
    assert_survives_corruption(JavaArchiveAnalyzer(), "a.jar", outer)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("jar") is None, reason="needs the JDK's jar tool")
def test_java_reads_a_jar_made_by_the_jdk(tmp_path: Path) -> None:
    tree = tmp_path / "classes"
    maven = tree / "META-INF/maven/org.example/widget"
    maven.mkdir(parents=True)
    (maven / "pom.properties").write_bytes(pom_properties("org.example", "widget", "1.2.3"))
    (tree / "org/example").mkdir(parents=True)
    (tree / "org/example/Widget.class").write_bytes(b"\xca\xfe\xba\xbe" + bytes(64))
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("Implementation-Title: widget\nImplementation-Version: 9.9\n")
    image = tmp_path / "image/opt/app"
    image.mkdir(parents=True)
    subprocess.run(["jar", "--create", "--file", str(image / "widget.jar"), "--manifest",
                    str(manifest), "-C", str(tree), "."], check=True, timeout=120)  # fmt: skip
    # A jar of manifest only (no Maven metadata) takes the manifest fallback.
    subprocess.run(["jar", "--create", "--file", str(image / "plain.jar"), "--manifest",
                    str(manifest), "-C", str(tree), "org"], check=True, timeout=120)  # fmt: skip
    packages = analyze_tree(JavaArchiveAnalyzer(), tmp_path / "image")
    assert {(p.path, p.name, p.version) for p in packages} == {
        ("opt/app/widget.jar", "org.example:widget", "1.2.3"),
        ("opt/app/plain.jar", "widget", "9.9"),
    }


# --------------------------------------------------------------------------------- Ruby

RACK_GEMSPEC = """\
# -*- encoding: utf-8 -*-
# stub: rack 2.2.3 ruby lib

Gem::Specification.new do |s|
  s.name = "rack".freeze
  s.version = "2.2.3"

  s.required_rubygems_version = Gem::Requirement.new(">= 0".freeze) if s.respond_to? :required_rubygems_version=
  s.metadata = { "bug_tracker_uri" => "https://github.com/rack/rack/issues", "changelog_uri" => "https://github.com/rack/rack/blob/master/CHANGELOG.md" } if s.respond_to? :metadata=
  s.require_paths = ["lib".freeze]
  s.authors = ["Leah Neukirchen".freeze]
  s.bindir = "bin".freeze
  s.date = "2020-06-15"
  s.description = "Rack provides a minimal, modular and adaptable interface for developing\\nweb applications in Ruby.".freeze
  s.email = "leah@vuxu.org".freeze
  s.executables = ["rackup".freeze]
  s.files = ["bin/rackup".freeze]
  s.homepage = "https://github.com/rack/rack".freeze
  s.licenses = ["MIT".freeze]
  s.required_ruby_version = Gem::Requirement.new(">= 2.3.0".freeze)
  s.rubygems_version = "3.3.5".freeze
  s.summary = "a modular Ruby webserver interface".freeze

  s.installed_by_version = "3.3.5" if s.respond_to? :installed_by_version

  if s.respond_to? :specification_version then
    s.specification_version = 4
  end

  if s.respond_to? :add_runtime_dependency then
    s.add_development_dependency(%q<minitest>.freeze, ["~> 5.0"])
  else
    s.add_dependency(%q<minitest>.freeze, ["~> 5.0"])
  end
end
"""  # noqa: E501

OLD_GEMSPEC = """\
# -*- encoding: utf-8 -*-

Gem::Specification.new do |s|
  s.name = %q{json_pure}
  s.version = "1.4.6"
  s.license = %q{Ruby}
end
"""

GEMFILE_LOCK = """\
GIT
  remote: https://github.com/rails/rails.git
  revision: 0123456789abcdef
  specs:
    rails (7.2.0.alpha)

PATH
  remote: engines/billing
  specs:
    billing (0.1.0)

GEM
  remote: https://rubygems.org/
  specs:
    actionpack (7.0.8)
      rack (~> 2.0, >= 2.2.4)
    nokogiri (1.15.4-x86_64-linux)
      racc (~> 1.4)
    nokogiri (1.15.4-aarch64-linux)
      racc (~> 1.4)
    rack (2.2.8)
    racc (1.7.1)
    rails-html-sanitizer (1.6.0.rc1)

PLATFORMS
  aarch64-linux
  x86_64-linux

DEPENDENCIES
  nokogiri (~> 1.15)
  rack

BUNDLED WITH
   2.4.19
"""


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("usr/lib/ruby/gems/3.1.0/specifications/rack-2.2.3.gemspec", True),
        ("usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec", True),
        ("usr/local/bundle/specifications/nokogiri-1.15.4-x86_64-linux.gemspec", True),
        ("usr/lib/ruby/gems/3.1.0/gems/rack-2.2.3/rack.gemspec", False),
        ("app/Gemfile.lock", True),
        ("app/gems.locked", True),
        ("usr/lib/ruby/gems/3.1.0/gems/rack-2.2.3/Gemfile.lock", False),
        ("app/Gemfile", False),
    ],
)
def test_ruby_wants(path: str, wanted: bool) -> None:
    assert RubyAnalyzer().wants(path, 1000, FILE) is wanted


def test_ruby_installed_gemspec() -> None:
    path = "usr/lib/ruby/gems/3.1.0/specifications/rack-2.2.3.gemspec"
    (package,) = RubyAnalyzer().parse(path, RACK_GEMSPEC.encode())
    assert package == Package(
        name="rack",
        version="2.2.3",
        ecosystem="RubyGems",
        path=path,
        purl="pkg:gem/rack@2.2.3",
        licenses=("MIT",),
    )


def test_ruby_old_gemspec_and_stub_fallback() -> None:
    (old,) = RubyAnalyzer().parse("x/specifications/j.gemspec", OLD_GEMSPEC.encode())
    assert (old.name, old.version, old.licenses) == ("json_pure", "1.4.6", ("Ruby",))
    stub_only = "# -*- encoding: utf-8 -*-\n# stub: erb 2.2.0 ruby lib\n\nGem::Specification.new\n"
    assert found(RubyAnalyzer().parse("x/specifications/erb.gemspec", stub_only.encode())) == {
        ("erb", "2.2.0")
    }


def test_ruby_gemspec_is_never_evaluated() -> None:
    hostile = 's.name = "x".freeze\ns.version = `rm -rf /`\n# stub: x 1.0\n'
    (package,) = RubyAnalyzer().parse("x/specifications/x.gemspec", hostile.encode())
    assert (package.name, package.version) == ("x", "1.0")


def test_ruby_gemfile_lock_counts_gem_sections_only() -> None:
    packages = RubyAnalyzer().parse("srv/app/Gemfile.lock", GEMFILE_LOCK.encode())
    assert sorted(found(packages)) == [
        ("actionpack", "7.0.8"),
        ("nokogiri", "1.15.4"),
        ("racc", "1.7.1"),
        ("rack", "2.2.8"),
        ("rails-html-sanitizer", "1.6.0.rc1"),
    ]
    assert len(packages) == 5  # nokogiri once, not once per platform
    assert {p.path for p in packages} == {"srv/app/Gemfile.lock"}


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("x/specifications/rack.gemspec", RACK_GEMSPEC.encode()),
        ("x/Gemfile.lock", GEMFILE_LOCK.encode()),
    ],
)
def test_ruby_survives_corruption(path: str, data: bytes) -> None:
    assert_survives_corruption(RubyAnalyzer(), path, data)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gem") is None, reason="needs RubyGems (the ruby package)")
def test_ruby_reads_what_rubygems_installs(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "lib").mkdir(parents=True)
    (source / "lib/tinygem.rb").write_text("module Tinygem; end\n")
    (source / "tinygem.gemspec").write_text(
        'Gem::Specification.new do |s|\n  s.name = "tinygem"\n  s.version = "0.3.1"\n'
        '  s.summary = "t"\n  s.authors = ["a"]\n  s.files = ["lib/tinygem.rb"]\n'
        '  s.licenses = ["MIT", "Apache-2.0"]\nend\n'
    )
    subprocess.run(["gem", "build", "tinygem.gemspec"], cwd=source, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    home = tmp_path / "image/usr/local/bundle"
    subprocess.run(["gem", "install", "--local", "--no-document", "--install-dir", str(home),
                    str(source / "tinygem-0.3.1.gem")], check=True, capture_output=True,
                   timeout=120)  # fmt: skip
    packages = analyze_tree(RubyAnalyzer(), tmp_path / "image")
    assert [(p.path, p.name, p.version, p.licenses) for p in packages] == [
        ("usr/local/bundle/specifications/tinygem-0.3.1.gemspec", "tinygem", "0.3.1",
         ("MIT", "Apache-2.0")),
    ]  # fmt: skip


# --------------------------------------------------------------------------------- Rust

CARGO_LOCK = """\
# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 3

[[package]]
name = "app"
version = "0.1.0"
dependencies = [
 "serde",
 "smallvec 1.11.0",
]

[[package]]
name = "serde"
version = "1.0.188"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "cf9e0fcba69a370eed61bcf2b728575f726b50b55cba78064753d708ddc7549e"

[[package]]
name = "smallvec"
version = "1.11.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "62bb4feee49fdd9f707ef802e22365a35de4b7b299de4763d44bfea899442ff9"

[[package]]
name = "time"
version = "0.1.45"
source = "git+https://github.com/time-rs/time?rev=abc#abc"
"""

AUDIT_JSON = {
    "format": 1,
    "packages": [
        {"name": "app", "version": "0.1.0", "source": "local", "kind": "runtime",
         "dependencies": [1, 2], "root": True},
        {"name": "smallvec", "version": "1.11.0", "source": "crates.io", "kind": "runtime"},
        {"name": "cc", "version": "1.0.83", "source": "crates.io", "kind": "build"},
    ],
}  # fmt: skip


def test_rust_wants() -> None:
    analyzer = RustAnalyzer()
    assert analyzer.wants("src/app/Cargo.lock", 1000, FILE)
    assert not analyzer.wants("src/app/Cargo.toml", 1000, FILE)
    assert analyzer.wants("usr/local/bin/app", 100_000, EXECUTABLE)
    assert not analyzer.wants("usr/local/bin/app", 100_000, FILE)


def test_rust_cargo_lock_skips_the_projects_own_crates() -> None:
    packages = RustAnalyzer().parse("src/app/Cargo.lock", CARGO_LOCK.encode())
    assert sorted(found(packages)) == [
        ("serde", "1.0.188"),
        ("smallvec", "1.11.0"),
        ("time", "0.1.45"),
    ]
    serde = next(p for p in packages if p.name == "serde")
    assert (serde.ecosystem, serde.purl, serde.path) == (
        "crates.io", "pkg:cargo/serde@1.0.188", "src/app/Cargo.lock",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "version"),
    [("../etc", "1.0.0"), ("a b", "1.0.0"), ("serde", "latest"), ("serde", "")],
)
def test_rust_skips_invalid_names_and_versions(name: str, version: str) -> None:
    lock = f'[[package]]\nname = "{name}"\nversion = "{version}"\nsource = "registry+x"\n'
    assert RustAnalyzer().parse("a/Cargo.lock", lock.encode()) == []


def test_rust_cargo_auditable_section() -> None:
    binary = make_elf(
        [(".text", b"\x90" * 64), (".dep-v0", zlib.compress(json.dumps(AUDIT_JSON).encode()))]
    )
    packages = RustAnalyzer().parse("usr/local/bin/app", binary)
    assert found(packages) == {("smallvec", "1.11.0"), ("cc", "1.0.83")}


def test_rust_audit_data_zlib_bomb_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    document = json.dumps(AUDIT_JSON).encode()
    bomb = make_elf([(".dep-v0", zlib.compress(document[:-1] + b" " * (4 << 20) + b"}", 9))])
    assert found(RustAnalyzer().parse("bin/app", bomb)) == {
        ("smallvec", "1.11.0"),
        ("cc", "1.0.83"),
    }
    monkeypatch.setattr(rust, "_MAX_AUDIT_JSON", 1 << 20)
    assert RustAnalyzer().parse("bin/app", bomb) == []


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("a/Cargo.lock", CARGO_LOCK.encode()),
        ("bin/app", make_elf([(".dep-v0", zlib.compress(json.dumps(AUDIT_JSON).encode()))])),
    ],
)
def test_rust_survives_corruption(path: str, data: bytes) -> None:
    assert_survives_corruption(RustAnalyzer(), path, data)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cargo") is None, reason="needs the Rust toolchain")
def test_rust_reads_what_cargo_and_rustc_write(tmp_path: Path) -> None:
    """Cargo writes the lock file of a workspace with a path dependency (left out: neither
    crate is from a registry), and rustc links audit data into ``.dep-v0`` the way
    cargo-auditable does, with a ``#[link_section]`` static."""
    project = tmp_path / "image/src/app"
    for crate in ("app", "helper"):
        (project / crate / "src").mkdir(parents=True)
    (project / "app/Cargo.toml").write_text(
        '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n'
        '[dependencies]\nhelper = { path = "../helper" }\n'
    )
    (project / "helper/Cargo.toml").write_text(
        '[package]\nname = "helper"\nversion = "0.2.0"\nedition = "2021"\n'
    )
    (project / "helper/src/lib.rs").write_text("pub fn x() {}\n")
    (project / "app/src/main.rs").write_text("fn main() { helper::x(); }\n")
    subprocess.run(["cargo", "generate-lockfile", "--offline"], cwd=project / "app",
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    lock = (project / "app/Cargo.lock").read_bytes()
    assert b'name = "helper"' in lock
    assert RustAnalyzer().parse("src/app/app/Cargo.lock", lock) == []

    build = tmp_path / "build"
    build.mkdir()
    (build / "dep.zlib").write_bytes(zlib.compress(json.dumps(AUDIT_JSON).encode()))
    (build / "main.rs").write_text(
        '#[used]\n#[link_section = ".dep-v0"]\n'
        'static AUDIT: [u8; include_bytes!("dep.zlib").len()] = *include_bytes!("dep.zlib");\n'
        'fn main() { println!("hi"); }\n'
    )
    binary = tmp_path / "image/usr/local/bin/app"
    binary.parent.mkdir(parents=True)
    subprocess.run(["rustc", "-O", "main.rs", "-o", str(binary)], cwd=build, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    packages = analyze_tree(RustAnalyzer(), tmp_path / "image")
    assert {(p.path, p.name, p.version) for p in packages} == {
        ("usr/local/bin/app", "smallvec", "1.11.0"),
        ("usr/local/bin/app", "cc", "1.0.83"),
    }
