"""An image's contents: its layers' findings applied in order, as the container runtime would
stack them (https://github.com/opencontainers/image-spec/blob/main/layer.md#applying-changesets).

A later layer's file replaces an earlier one at the same path. A whiteout deletes its path and
everything under it from the layers below; an opaque directory hides everything under it from
the layers below. Neither touches its own layer. OS packages then get the OSV ecosystem and
package URL of the OS the final image runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from portside.scanner.ecosystems import OS_PACKAGE_KINDS, os_ecosystem, os_purl
from portside.scanner.model import LayerResult, OSRelease, Package

__all__ = ["ImageContents", "merge_layers"]


@dataclass(frozen=True)
class ImageContents:
    """The packages of the final image, ordered by the file that listed them, and its OS."""

    packages: list[Package]
    os_release: OSRelease | None


class _Hidden:
    """Whether a lower layer's path is hidden by a layer's whiteouts and opaque directories."""

    def __init__(self, layer: LayerResult) -> None:
        self._deleted = frozenset(layer.whiteouts)
        self._opaque = frozenset(layer.opaque_dirs)

    def __bool__(self) -> bool:
        return bool(self._deleted or self._opaque)

    def __call__(self, path: str) -> bool:
        if path in self._deleted or "" in self._opaque:
            return True
        # Each directory above the path, by prefix: O(depth) per path however many whiteouts.
        start = 0
        while (slash := path.find("/", start)) >= 0:
            parent = path[:slash]
            if parent in self._deleted or parent in self._opaque:
                return True
            start = slash + 1
        return False


def _with_os(package: Package, release: OSRelease | None) -> Package:
    if package.ecosystem not in OS_PACKAGE_KINDS or release is None:
        return package
    kind = package.ecosystem
    return replace(
        package,
        ecosystem=os_ecosystem(kind, release) or kind,
        purl=os_purl(kind, package.name, package.version, package.arch, release),
    )


def merge_layers(results: Sequence[LayerResult]) -> ImageContents:
    """Stack ``results`` (lowest layer first) into the final image's contents."""
    files: dict[str, list[Package]] = {}
    lists: dict[str, list[str]] = {}
    release: tuple[str, OSRelease] | None = None
    for layer in results:
        hidden = _Hidden(layer)
        if hidden:
            files = {path: found for path, found in files.items() if not hidden(path)}
            lists = {path: owned for path, owned in lists.items() if not hidden(path)}
            if release is not None and hidden(release[0]):
                release = None
        files.update(layer.packages)
        lists.update(layer.owned)
        if layer.os_release is not None:
            release = (layer.os_release_path, layer.os_release)
    os_release = release[1] if release is not None else None
    owned = {path for listed in lists.values() for path in listed}
    packages = [
        _with_os(p, os_release)
        for path in sorted(files)
        for p in files[path]
        if p.ecosystem in OS_PACKAGE_KINDS or p.path not in owned
    ]
    return ImageContents(packages, os_release)
