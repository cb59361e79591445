"""Real Debian images for scanner tests and benchmarks: a bookworm root filesystem made by
debootstrap, packed by GNU tar into image layers, written as an OCI image layout that skopeo
pushes, and dpkg status files rewritten to chosen versions.

Needs root, ``debootstrap`` (``apt-get install debootstrap``) and a Debian mirror: the one in
this machine's apt sources, or ``PORTSIDE_DEBIAN_MIRROR``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "SUITE",
    "Layer",
    "binary_sources",
    "debian_mirror",
    "debian_rootfs_fixture",
    "debootstrap",
    "image_descriptor",
    "pack_layer",
    "rewrite_sources",
    "tracked_versions",
    "write_layout",
]

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def debian_mirror() -> str:
    """The Debian archive this machine's apt is set up to reach."""
    configured = os.environ.get("PORTSIDE_DEBIAN_MIRROR")
    if configured:
        return configured
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for uri in re.findall(r"^URIs:\s*(\S+)", path.read_text(), flags=re.M):
            if uri.rstrip("/").endswith("/debian"):
                return str(uri)
    return DEFAULT_MIRROR


def debootstrap(rootfs: Path) -> Path:
    """A minbase bookworm from the main archive only (no bookworm-security): it holds the
    point-release versions, so the security fixes after them are findings."""
    subprocess.run(
        ["debootstrap", "--variant=minbase", SUITE, str(rootfs), debian_mirror()],
        check=True,
        capture_output=True,
        timeout=1200,
    )
    return rootfs


@pytest.fixture(scope="session", name="debian_rootfs")
def debian_rootfs_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One debootstrap per session, shared by every test module that imports this fixture
    (each import is a fixture of its own to pytest, hence the marker in the session's temp)."""
    if shutil.which("debootstrap") is None:
        pytest.skip("needs debootstrap")
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root")
    folder = tmp_path_factory.getbasetemp() / "debian"
    rootfs, done = folder / "rootfs", folder / "debootstrap.done"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        debootstrap(rootfs)
        done.touch()
    return rootfs


# -- layers and OCI layouts ---------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """A gzip-compressed layer file and its two digests (blob and uncompressed)."""

    path: Path
    digest: str
    diff_id: str
    size: int
    raw_size: int  # uncompressed


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def pack_layer(directory: Path, out: Path) -> Layer:
    """``directory``'s tree as a tar.gz layer, packed by GNU tar as image builders do."""
    plain = out.with_suffix(".tar")
    subprocess.run(
        ["tar", "--numeric-owner", "-C", str(directory), "-cf", str(plain), "."],
        check=True,
        timeout=600,
    )
    diff_id, raw_size = _sha256_file(plain), plain.stat().st_size
    with out.open("wb") as sink:
        subprocess.run(["gzip", "-1", "-n", "-c", str(plain)], stdout=sink, check=True, timeout=600)
    plain.unlink()
    return Layer(out, _sha256_file(out), diff_id, out.stat().st_size, raw_size)


def _put_blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}", len(data)


def _put_layer(layout: Path, layer: Layer) -> None:
    target = layout / "blobs" / "sha256" / layer.digest.removeprefix("sha256:")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return
    try:
        os.link(layer.path, target)  # layers are tens of MB: no copy when on one filesystem
    except OSError:
        shutil.copyfile(layer.path, target)


def image_descriptor(
    layout: Path, layers: Sequence[Layer], architecture: str = "amd64", label: str = ""
) -> dict[str, Any]:
    """Write an image's config and manifest into ``layout``; returns the manifest descriptor
    (with its platform, for an index)."""
    for layer in layers:
        _put_layer(layout, layer)
    config = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Labels": {"test": label}} if label else {},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
    }
    config_digest, config_size = _put_blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [
            {"mediaType": OCI_LAYER_GZIP, "digest": layer.digest, "size": layer.size}
            for layer in layers
        ],
    }
    digest, size = _put_blob(layout, json.dumps(manifest).encode())
    return {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": size,
        "platform": {"architecture": architecture, "os": "linux"},
    }


def write_layout(layout: Path, tag: str, images: Sequence[Mapping[str, Any]]) -> str:
    """Name one image (or, given several, an index of them) ``tag`` in the layout's
    index.json; returns the digest a registry will know it by."""
    if len(images) == 1:
        top = dict(images[0])
    else:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(images)}
        digest, size = _put_blob(layout, json.dumps(index).encode())
        top = {"mediaType": OCI_INDEX, "digest": digest, "size": size}
    top.pop("platform", None)
    top["annotations"] = {REF_NAME: tag}
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index_path = layout / "index.json"
    entries = json.loads(index_path.read_text())["manifests"] if index_path.exists() else []
    entries = [e for e in entries if e.get("annotations", {}).get(REF_NAME) != tag]
    index_path.write_text(json.dumps({"schemaVersion": 2, "manifests": [*entries, top]}))
    return str(top["digest"])


# -- dpkg status files --------------------------------------------------------------------------


def _stanzas(status: str) -> Iterator[str]:
    for block in status.split("\n\n"):
        if block.strip():
            yield block


def _field(block: str, name: str) -> str:
    match = re.search(rf"^{name}:[ \t]*(.*)$", block, flags=re.M)
    return match.group(1).strip() if match else ""


def _source_of(block: str) -> tuple[str, str]:
    """(source name, source version given in ``Source:`` or "") of a stanza."""
    match = re.fullmatch(r"(\S+)(?:\s+\((\S+)\))?", _field(block, "Source"))
    if match is None:
        return _field(block, "Package"), ""
    return match.group(1), match.group(2) or ""


def binary_sources(status: str) -> dict[str, str]:
    """{binary package: source package} of a dpkg status file (the ``Source:`` field, else
    the package itself), what a report's binary names are mapped back with."""
    return {_field(block, "Package"): _source_of(block)[0] for block in _stanzas(status)}


def rewrite_sources(status: str, versions: Mapping[str, str]) -> str:
    """The status file with every binary of each source in ``versions`` moved to that source
    version, as if built from it: an explicit ``Source: name (version)`` gets the new version
    and the binary keeps its epoch and binNMU suffix around it."""
    blocks = []
    for block in _stanzas(status):
        source, explicit = _source_of(block)
        if source in versions:
            new = versions[source]
            old_binary = _field(block, "Version")
            if explicit:
                binary = old_binary.replace(explicit, new) if explicit in old_binary else new
                block = re.sub(
                    r"^Source:.*$", f"Source: {source} ({new})", block, count=1, flags=re.M
                )
            else:
                binary = new
            block = re.sub(r"^Version:.*$", f"Version: {binary}", block, count=1, flags=re.M)
        blocks.append(block.strip("\n"))
    return "\n\n".join(blocks) + "\n"


def tracked_versions(packages_tsv: Path) -> dict[str, tuple[str, str]]:
    """{source: (bookworm 12.0 version, newest version)} from the vulndb's packages.tsv."""
    versions: dict[str, tuple[str, str]] = {}
    for line in packages_tsv.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        columns = line.split("\t")
        versions[columns[0]] = (columns[1], columns[2])
    return versions
