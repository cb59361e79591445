"""npm packages: installed ones (``node_modules/<name>/package.json``) and the ones a project's
lock file pins (``package-lock.json``, ``yarn.lock``, ``pnpm-lock.yaml``).

Double counting: a lock file counts only outside ``node_modules`` (so npm's hidden lockfile
``node_modules/.package-lock.json`` never does), and installed packages count only through
their own ``package.json``. A project that ships both its lock file and its ``node_modules``
still lists each package twice, once per file; every :class:`Package` carries the file it came
from in ``path``, so the image merge can keep one per (name, version) and each layer's
whiteouts still remove the right file's packages.

Lock entries marked ``dev`` (package-lock, pnpm) are left out: production images install with
``--omit=dev``, and the installed ``package.json`` files report dev packages that really are
there. yarn.lock does not record which entries are dev-only, so all of its entries count.
Only packages from the npm registry count: git, tarball, ``file:``, ``link:`` and workspace
entries have no registry version to match advisories against.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

from portside.scanner.model import Package
from portside.scanner.purl import make_purl

__all__ = ["NpmAnalyzer"]

log = logging.getLogger(__name__)

_LOCK_FILES = frozenset({"package-lock.json", "yarn.lock", "pnpm-lock.yaml"})
_MAX_PACKAGE_JSON = 1024 * 1024
# The largest real lock files list about ten thousand packages; past this many a file is
# hostile, and building each Package would cost seconds.
_MAX_PACKAGES = 50_000
# https://semver.org/ grammar, as npm itself enforces for published versions.
_SEMVER = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")
_NAME = re.compile(r"(?:@[A-Za-z0-9._~-]+/)?[A-Za-z0-9._~-][A-Za-z0-9._~!*'()-]*")


def _package(name: str, version: str, path: str, licenses: tuple[str, ...] = ()) -> Package | None:
    if len(name) > 214 or not _NAME.fullmatch(name) or not _SEMVER.fullmatch(version):
        return None
    scope, _, bare = name.rpartition("/")
    return Package(
        name=name,
        version=version,
        ecosystem="npm",
        path=path,
        purl=make_purl("npm", bare, version, namespace=scope),
        licenses=licenses,
    )


def _split_spec(spec: str) -> tuple[str, str]:
    """``name@rest`` into its two parts; a leading ``@`` belongs to the scope."""
    at = spec.find("@", 1)
    return (spec, "") if at < 0 else (spec[:at], spec[at + 1 :])


def _is_installed_manifest(parts: list[str]) -> bool:
    if len(parts) >= 3 and parts[-3] == "node_modules":
        return not parts[-2].startswith("@")
    return len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")


class NpmAnalyzer:
    name = "npm"
    max_bytes = 64 * 1024 * 1024

    def wants(self, path: str, size: int, mode: int) -> bool:
        if size > self.max_bytes:
            return False
        parts = path.split("/")
        if parts[-1] == "package.json":
            return size <= _MAX_PACKAGE_JSON and _is_installed_manifest(parts)
        return parts[-1] in _LOCK_FILES and "node_modules" not in parts

    def parse(self, path: str, data: bytes) -> list[Package]:
        basename = path.rsplit("/", 1)[-1]
        text = data.decode("utf-8", errors="replace")
        if basename == "yarn.lock":
            found = _yarn_lock(text)
        elif basename == "pnpm-lock.yaml":
            found = _pnpm_lock(text)
        else:
            try:
                document = json.loads(text)
            except (ValueError, RecursionError):
                log.debug("npm file is not valid JSON", extra={"path": path})
                return []
            if not isinstance(document, dict):
                return []
            found = _manifest(document) if basename == "package.json" else _package_lock(document)
        packages: dict[tuple[str, str], Package] = {}
        for name, version, licenses in found:
            # One package per (name, version) and file: a lock file lists a package once per
            # folder it is installed in.
            if len(packages) >= _MAX_PACKAGES:
                log.debug("npm file lists too many packages", extra={"path": path})
                break
            if (name, version) not in packages:
                package = _package(name, version, path, licenses)
                if package is not None:
                    packages[name, version] = package
        return list(packages.values())


Found = Iterator[tuple[str, str, tuple[str, ...]]]


def _manifest(document: dict[str, Any]) -> Found:
    name, version = document.get("name"), document.get("version")
    if isinstance(name, str) and isinstance(version, str):
        yield name, version, _manifest_licenses(document)


def _manifest_licenses(document: dict[str, Any]) -> tuple[str, ...]:
    """``license`` is an SPDX expression; old packages use ``{"type": ...}`` or a ``licenses``
    list of those."""
    declared = document.get("license")
    entries = declared if isinstance(declared, list) else [declared]
    legacy = document.get("licenses")
    if declared is None and isinstance(legacy, list):
        entries = legacy
    names = []
    for entry in entries:
        value = entry.get("type") if isinstance(entry, dict) else entry
        if isinstance(value, str) and value.strip():
            names.append(value.strip())
    return tuple(names)


def _package_lock(document: dict[str, Any]) -> Found:
    """v2 and v3 list every installed folder under ``packages`` (keys like
    ``node_modules/a/node_modules/@s/b``); v1 has only the nested ``dependencies`` tree."""
    packages = document.get("packages")
    if isinstance(packages, dict):
        for key, entry in packages.items():
            if not isinstance(entry, dict) or "node_modules/" not in key:
                continue  # the root project and workspace folders are not registry packages
            if entry.get("link") or entry.get("dev") is True:
                continue
            name = entry.get("name") or key.rsplit("node_modules/", 1)[1]
            version = entry.get("version")
            if isinstance(name, str) and isinstance(version, str):
                yield name, version, _manifest_licenses(entry)
        return
    stack = [document.get("dependencies")]
    while stack:
        tree = stack.pop()
        if not isinstance(tree, dict):
            continue
        for name, entry in tree.items():
            if not isinstance(entry, dict):
                continue
            stack.append(entry.get("dependencies"))
            version = entry.get("version")
            if entry.get("dev") is True or not isinstance(version, str):
                continue
            if version.startswith("npm:"):  # an alias: "npm:real-name@1.2.3"
                name, version = _split_spec(version[4:])
            yield name, version, ()


def _yarn_lock(text: str) -> Found:
    """Both formats are blocks: a descriptor line at column 0 (``"a@^1", a@^1.2:``), then
    two-space-indented fields. yarn v1 writes ``version "1.2.3"``; berry (v2+) writes YAML
    ``version: 1.2.3`` and ``resolution: "a@npm:1.2.3"``, whose protocol tells registry
    packages from workspaces, patches and git checkouts."""
    berry = any(line.startswith("__metadata:") for line in text.splitlines()[:20])
    for descriptor, fields in _yarn_blocks(text):
        if berry:
            name, resolved = _split_spec(fields.get("resolution", ""))
            if resolved.startswith("npm:"):
                yield name, resolved[4:], ()
            continue
        name, wanted = _split_spec(descriptor)
        if wanted.startswith("npm:"):  # an alias: "a@npm:real-name@^1"
            name, _ = _split_spec(wanted[4:])
        if "version" in fields:
            yield name, fields["version"], ()


def _yarn_blocks(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    descriptor: str | None = None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            if descriptor is not None:
                yield descriptor, fields
            first = line.rstrip().rstrip(":").split(",", 1)[0].strip()
            descriptor, fields = first.strip("\"'"), {}
        elif descriptor is not None and line.startswith("  ") and not line[2].isspace():
            key, _, value = line.strip().partition(" ")
            fields[key.rstrip(":").strip("\"'")] = value.strip().strip("\"'")
    if descriptor is not None:
        yield descriptor, fields


def _pnpm_lock(text: str) -> Found:
    """The ``packages:`` section's two-space-indented keys name each package: lockfile v5
    ``/name/1.2.3_peer@1.0.0``, v6 ``/name@1.2.3(peer@1.0.0)``, v9 ``name@1.2.3``. v5 and v6
    mark dev-only packages with a ``dev: true`` field below the key."""
    major = 0
    in_packages = False
    entry: tuple[str, str] | None = None
    dev = False
    for line in text.splitlines():
        if line.startswith("lockfileVersion:"):
            number = re.match(r"[\s'\"]*([0-9]{1,4})", line.partition(":")[2])
            major = int(number.group(1)) if number else 0
        if line and not line[0].isspace():
            if entry is not None and not dev:
                yield (*entry, ())
            entry, in_packages = None, line.rstrip() == "packages:"
        elif in_packages and line.startswith("  ") and not line[2].isspace():
            if entry is not None and not dev:
                yield (*entry, ())
            key = line.strip().split(": ", 1)[0].rstrip(":").strip("\"'")
            entry, dev = _pnpm_key(key, major), False
        elif in_packages and line.strip() == "dev: true":
            dev = True
    if entry is not None and not dev:
        yield (*entry, ())


def _pnpm_key(key: str, major: int) -> tuple[str, str] | None:
    key = key.removeprefix("/")
    if 0 < major < 6:
        segments = key.split("/")
        cut = 2 if key.startswith("@") else 1
        if len(segments) != cut + 1:
            return None  # a registry-prefixed or git key
        return "/".join(segments[:cut]), segments[cut].split("_", 1)[0]
    name, version = _split_spec(key.split("(", 1)[0])
    return name, version
