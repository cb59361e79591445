"""Pure-Python builders of test images as OCI image layouts on disk.

A layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) is what skopeo reads with
``oci:DIR:TAG``, so tests can push content whose every digest they know in advance.  Layer
content is random (``os.urandom``), so each call yields blobs no registry has seen before and a
test cannot pass by accident on content left by another test.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Compact, key-sorted JSON: one stable byte form per value, so digests are reproducible."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}"


@dataclass(frozen=True)
class ImageInfo:
    """One image manifest written to a layout, with every digest a test may assert on."""

    manifest_digest: str
    manifest_size: int
    config_digest: str
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]  # sha256 of each uncompressed layer tar
    platform: Platform


@dataclass(frozen=True)
class Layout:
    """An OCI layout directory holding one tagged image or image index."""

    path: Path
    tag: str
    top_digest: str  # what ``tag`` points to: the manifest, or the index for multi-arch
    top_media_type: str
    images: tuple[ImageInfo, ...] = field(default_factory=tuple)

    @property
    def ref(self) -> str:
        """skopeo reference, e.g. ``oci:/tmp/x/layout:v1``."""
        return f"oci:{self.path}:{self.tag}"

    @property
    def layer_digests(self) -> set[str]:
        """Compressed layer digests of all images in the layout."""
        return {digest for image in self.images for digest in image.layer_digests}


class _BlobWriter:
    """Writes content-addressed blobs into ``<layout>/blobs/sha256``."""

    def __init__(self, layout: Path) -> None:
        self.dir = layout / "blobs" / "sha256"
        self.dir.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> str:
        digest = sha256_digest(data)
        (self.dir / digest.removeprefix("sha256:")).write_bytes(data)
        return digest


def random_layer(files: int = 2, size: int = 2048) -> tuple[bytes, bytes]:
    """A gzip-compressed tar of ``files`` random files; returns ``(tar, tar_gz)``.

    Entries have fixed metadata (mtime 0, root-owned) so only their content is random.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for index in range(files):
            content = os.urandom(size)
            info = tarfile.TarInfo(f"data/file-{index}-{content[:4].hex()}.bin")
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    # mtime=0 keeps the gzip header deterministic for a given tar
    return tar_bytes, gzip.compress(tar_bytes, mtime=0)


def _write_image(blobs: _BlobWriter, platform: Platform, layer_count: int) -> ImageInfo:
    """Write layers, config and manifest blobs for one platform; returns their digests."""
    layers: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    for _ in range(layer_count):
        tar_bytes, compressed = random_layer()
        diff_ids.append(sha256_digest(tar_bytes))
        digest = blobs.put(compressed)
        layers.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": len(compressed)})
    config = canonical_json(
        {
            "architecture": platform.architecture,
            "os": platform.os,
            "created": "2024-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2024-01-01T00:00:00Z", "comment": "portside test layer"}]
            * layer_count,
        }
    )
    config_digest = blobs.put(config)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": layers,
        }
    )
    return ImageInfo(
        manifest_digest=blobs.put(manifest),
        manifest_size=len(manifest),
        config_digest=config_digest,
        layer_digests=tuple(layer["digest"] for layer in layers),
        diff_ids=tuple(diff_ids),
        platform=platform,
    )


def _write_layout_index(path: Path, descriptor: dict[str, Any], tag: str) -> None:
    """Write ``oci-layout`` and an ``index.json`` with ``descriptor`` as its one entry, ``tag``."""
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    entry = {**descriptor, "annotations": {REF_NAME: tag}}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    (path / "index.json").write_text(json.dumps(index))


def single_arch_image(
    path: Path, tag: str = "v1", platform: Platform = Platform("linux", "amd64"), layers: int = 2
) -> Layout:
    """Write an OCI layout at ``path`` with one image of ``layers`` random gzip layers."""
    blobs = _BlobWriter(path)
    image = _write_image(blobs, platform, layers)
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": image.manifest_digest,
        "size": image.manifest_size,
    }
    _write_layout_index(path, descriptor, tag)
    return Layout(path, tag, image.manifest_digest, OCI_MANIFEST, (image,))


def multi_arch_image(
    path: Path,
    tag: str = "v1",
    platforms: Sequence[Platform] = (Platform("linux", "amd64"), Platform("linux", "arm64")),
) -> Layout:
    """Write an OCI layout at ``path`` whose ``tag`` is an image index over ``platforms``."""
    blobs = _BlobWriter(path)
    images = tuple(_write_image(blobs, platform, 2) for platform in platforms)
    index = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": image.manifest_digest,
                    "size": image.manifest_size,
                    "platform": {
                        "os": image.platform.os,
                        "architecture": image.platform.architecture,
                    },
                }
                for image in images
            ],
        }
    )
    index_digest = blobs.put(index)
    descriptor = {"mediaType": OCI_INDEX, "digest": index_digest, "size": len(index)}
    _write_layout_index(path, descriptor, tag)
    return Layout(path, tag, index_digest, OCI_INDEX, images)


@dataclass(frozen=True)
class ReadImage:
    """Digests read back from a layout written by some other tool (e.g. skopeo copy to oci:)."""

    manifest_digest: str
    media_type: str
    config_digest: str
    layer_digests: tuple[str, ...]


def read_layout_image(path: Path, tag: str) -> ReadImage:
    """Resolve ``tag`` in the OCI layout at ``path`` to its image manifest's digests.

    Verifies each blob it reads against its digest, so a corrupted copy fails here.
    """
    index = json.loads((path / "index.json").read_text())
    matches = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == tag]
    if len(matches) != 1:
        raise AssertionError(f"{path}: expected one manifest tagged {tag!r}, got {matches}")
    digest = matches[0]["digest"]
    manifest = json.loads(read_blob(path, digest))
    if manifest.get("mediaType", matches[0]["mediaType"]) not in (OCI_MANIFEST,):
        raise AssertionError(f"{path}:{tag} is not a single image manifest: {manifest}")
    for layer in manifest["layers"]:
        read_blob(path, layer["digest"])
    return ReadImage(
        manifest_digest=digest,
        media_type=matches[0]["mediaType"],
        config_digest=manifest["config"]["digest"],
        layer_digests=tuple(layer["digest"] for layer in manifest["layers"]),
    )


def read_blob(path: Path, digest: str) -> bytes:
    """Blob ``digest`` from the layout at ``path``, checked against its digest."""
    data = (path / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
    if sha256_digest(data) != digest:
        raise AssertionError(f"blob {digest} in {path} does not match its digest")
    return data
