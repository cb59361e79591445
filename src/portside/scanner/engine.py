"""Scanning one image: its layers' packages, merged in order, matched against the advisories.

The engine does not know where bytes come from. It is given a function that streams a blob by
digest: from Portside's own storage for its scan jobs, or from a remote registry when Portside
serves its scanner to others through the pluggable scanner API.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from portside.oci import mediatypes as mt
from portside.scanner.analyses import LayerAnalyses
from portside.scanner.coverage import Coverage
from portside.scanner.image import ImageContents, merge_layers
from portside.scanner.matching import match, normalize_name
from portside.scanner.model import Advisory, Finding, LayerResult, Package, Severity
from portside.scanner.vulndb import ALIASES, VulnDB

__all__ = ["LAYER_MEDIA_TYPES", "ImageScan", "ImageScanner", "UnsupportedArtifact", "layers_of"]

# Layers the scanner can read: tar archives, plain or compressed.
LAYER_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)
# What Harbor's Trivy adapter declares it consumes; anything else is not scanned.
IMAGE_CONFIG_TYPES = frozenset({mt.OCI_IMAGE_CONFIG, mt.DOCKER_CONTAINER_CONFIG})

OpenBlob = Callable[[str], AsyncIterator[bytes | memoryview]]


class UnsupportedArtifact(Exception):
    """Not a container image (a Helm chart, a signature, an SBOM …): nothing to scan."""


@dataclass(frozen=True)
class Layer:
    digest: str
    media_type: str


def layers_of(manifest: bytes) -> list[Layer]:
    """The layers of an image manifest, in order. Raises :class:`UnsupportedArtifact` for
    anything that is not an image (the manifest was validated when it was pushed)."""
    try:
        body: Any = json.loads(manifest)
        config_type = body["config"]["mediaType"]
        layers = [Layer(item["digest"], item["mediaType"]) for item in body.get("layers") or []]
    except (ValueError, KeyError, TypeError):
        raise UnsupportedArtifact("not an image manifest") from None
    if config_type not in IMAGE_CONFIG_TYPES:
        raise UnsupportedArtifact(f"artifacts with config {config_type!r} are not images")
    unknown = sorted({layer.media_type for layer in layers} - LAYER_MEDIA_TYPES)
    if unknown:
        raise UnsupportedArtifact(f"layers of type {', '.join(unknown)} cannot be scanned")
    return layers


@dataclass
class ImageScan:
    contents: ImageContents
    findings: list[Finding]
    coverage: Coverage


def _rating_order(advisory: Advisory) -> tuple[int, float, int, str]:
    """Sorts the records that could rate a finding, best first: a scored CVSS vector before a
    bare severity word, then the higher score or severity, then by id (the same choice on
    every scan)."""
    scored = advisory.cvss_score is not None
    return (-scored, -(advisory.cvss_score or 0.0), -Severity.rank(advisory.severity), advisory.id)


class ImageScanner:
    def __init__(self, analyses: LayerAnalyses, vulndb: VulnDB) -> None:
        self._analyses = analyses
        self._vulndb = vulndb

    async def contents(self, layers: Sequence[Layer], open_blob: OpenBlob) -> ImageContents:
        results: list[LayerResult] = []
        for layer in layers:  # in order, one at a time: bounded memory and I/O per scan
            results.append(
                await self._analyses.get(
                    layer.digest,
                    layer.media_type,
                    functools.partial(open_blob, layer.digest),
                )
            )
        return merge_layers(results)

    async def scan(self, layers: Sequence[Layer], open_blob: OpenBlob) -> ImageScan:
        contents = await self.contents(layers, open_blob)
        coverage = Coverage.of(contents.packages, await self._vulndb.ecosystems())
        return ImageScan(contents, await self.findings(contents.packages), coverage)

    async def findings(self, packages: Sequence[Package]) -> list[Finding]:
        by_ecosystem: dict[str, list[Package]] = defaultdict(list)
        for package in packages:
            if package.ecosystem in ("dpkg", "apk", "rpm"):
                continue  # an OS package on an OS we cannot name: no advisories apply
            by_ecosystem[package.ecosystem].append(package)
        findings: list[Finding] = []
        for ecosystem, group in sorted(by_ecosystem.items()):
            names = {normalize_name(ecosystem, p.match_name) for p in group}
            advisories = await self._vulndb.advisories_for(ecosystem, names)
            for package in group:
                candidates = advisories.get(normalize_name(ecosystem, package.match_name), [])
                if candidates:
                    findings.extend(match(package, ecosystem, candidates))
        return await self._rated(findings)

    async def _rated(self, findings: list[Finding]) -> list[Finding]:
        """Findings whose advisory has no severity get one from another imported record of
        the same vulnerability (found by its ids and aliases), when one has a severity."""
        unrated = [f for f in findings if f.advisory.severity == Severity.UNKNOWN]
        if not unrated:
            return findings
        keys = {key for f in unrated for key in (f.advisory.id, *f.advisory.aliases)}
        related = await self._vulndb.advisories_for(ALIASES, keys)
        rated: list[Finding] = []
        for finding in findings:
            if finding.advisory.severity == Severity.UNKNOWN:
                own = finding.advisory
                candidates = {
                    other.id: other
                    for key in (own.id, *own.aliases)
                    for other in related.get(key, [])
                    if other.id != own.id
                    and not other.withdrawn
                    and other.severity != Severity.UNKNOWN
                }
                if candidates:
                    best = min(candidates.values(), key=_rating_order)
                    finding = replace(finding, rating=best)
            rated.append(finding)
        return rated
