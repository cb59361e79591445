"""Ruby gems: installed gem specifications (``specifications/*.gemspec`` and
``specifications/default/*.gemspec`` under a gem home) and Bundler's ``Gemfile.lock``.

Installed specs are Ruby source that RubyGems generates (``Gem::Specification#to_ruby``), so
they are read with regular expressions over the lines it writes (``s.name = "rack".freeze``),
never evaluated. ``Gemfile.lock`` counts only its ``GEM`` sections: gems from ``GIT`` and
``PATH`` sources are not the published gems advisories name. Lock files inside an installed
gem (``.../gems/<gem>/Gemfile.lock``) describe that gem's own development setup and are
skipped.
"""

from __future__ import annotations

import logging
import re

from portside.scanner.model import Package
from portside.scanner.purl import make_purl

__all__ = ["RubyAnalyzer"]

log = logging.getLogger(__name__)

_LOCK_FILES = frozenset({"Gemfile.lock", "gems.locked"})
_MAX_PACKAGES = 50_000  # real lock files list hundreds; more is a hostile file
# A Ruby string literal as RubyGems writes it: "x", 'x' or the %q{x} of old RubyGems.
_STRING = r"""(?:"([^"\\\n]*)"|'([^'\\\n]*)'|%q\{([^}\n]*)\})"""
_NAME = re.compile(r"^[ \t]*\w+\.name\s*=\s*" + _STRING, re.MULTILINE)
_VERSION = re.compile(r"^[ \t]*\w+\.version\s*=\s*" + _STRING, re.MULTILINE)
_LICENSES = re.compile(r"^[ \t]*\w+\.licenses?\s*=\s*(\[[^\]\n]*\]|" + _STRING + ")", re.MULTILINE)
_STUB = re.compile(r"^# stub: (\S+) (\S+)", re.MULTILINE)  # written since RubyGems 2.0
_LOCK_SPEC = re.compile(r"    ([^\s()]+) \(([^)\s]+)\)")
# Bundler's lock grammar: the version ends at the first "-", a platform follows it.
_GEM_VERSION = re.compile(r"[0-9]+(?:\.[0-9a-zA-Z]+)*")


def _string(match: re.Match[str]) -> str:
    return next((group for group in match.groups() if group is not None), "")


def _is_gemspec_path(parts: list[str]) -> bool:
    if not parts[-1].endswith(".gemspec") or len(parts) < 2:
        return False
    return parts[-2] == "specifications" or (
        len(parts) >= 3 and parts[-2] == "default" and parts[-3] == "specifications"
    )


class RubyAnalyzer:
    name = "ruby"
    max_bytes = 8 * 1024 * 1024

    def wants(self, path: str, size: int, mode: int) -> bool:
        if size > self.max_bytes:
            return False
        parts = path.split("/")
        if parts[-1] in _LOCK_FILES:
            return "gems" not in parts[:-1]
        return _is_gemspec_path(parts)

    def parse(self, path: str, data: bytes) -> list[Package]:
        text = data.decode("utf-8", errors="replace")
        is_lock = path.rsplit("/", 1)[-1] in _LOCK_FILES
        found = _lock_gems(text) if is_lock else _gemspec(text)
        packages = []
        for name, version, licenses in list(dict.fromkeys(found))[:_MAX_PACKAGES]:
            if not _GEM_VERSION.fullmatch(version) or not name or any(c.isspace() for c in name):
                continue
            packages.append(
                Package(
                    name=name,
                    version=version,
                    ecosystem="RubyGems",
                    path=path,
                    purl=make_purl("gem", name, version),
                    licenses=licenses,
                )
            )
        return packages


def _gemspec(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    name_match, version_match = _NAME.search(text), _VERSION.search(text)
    if name_match is not None and version_match is not None:
        name, version = _string(name_match), _string(version_match)
    else:
        stub = _STUB.search(text)
        if stub is None:
            log.debug("gemspec without name and version")
            return []
        name, version = stub.group(1), stub.group(2)
    licenses: tuple[str, ...] = ()
    declared = _LICENSES.search(text)
    if declared is not None:
        literals = re.finditer(_STRING, declared.group(1))
        licenses = tuple(value for value in map(_string, literals) if value)
    return [(name, version, licenses)]


def _lock_gems(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """The ``name (version[-platform])`` lines four spaces deep in each ``GEM`` section."""
    gems: list[tuple[str, str, tuple[str, ...]]] = []
    in_gem_section = False
    for line in text.splitlines():
        if line and not line[0].isspace():
            in_gem_section = line.rstrip() == "GEM"
            continue
        match = _LOCK_SPEC.fullmatch(line.rstrip()) if in_gem_section else None
        if match is not None:
            # A gem built per platform has one line per platform, one version for all of them.
            gems.append((match.group(1), match.group(2).split("-", 1)[0], ()))
    return gems
