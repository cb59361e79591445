"""Parsing and validating manifests and indexes on push (OCI image-spec manifest.md, index.md).

The registry stores manifests byte for byte; parsing only extracts what the registry must know:
the media type, the blobs and child manifests it references, its subject and artifact type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from portside.oci import mediatypes as mt
from portside.oci.digest import Digest, DigestError
from portside.oci.errors import ErrorCode, RegistryError

__all__ = ["Descriptor", "ParsedManifest", "parse_manifest"]


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    foreign: bool = False


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    blobs: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Digest | None
    artifact_type: str | None
    annotations: dict[str, str] = field(default_factory=dict)


def _invalid(message: str) -> RegistryError:
    return RegistryError(ErrorCode.MANIFEST_INVALID, message)


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}.mediaType must be a non-empty string")
    if not isinstance(digest, str):
        raise _invalid(f"{where}.digest must be a string")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _invalid(f"{where}.size must be a non-negative integer")
    try:
        parsed = Digest.parse(digest)
    except DigestError as exc:
        raise _invalid(f"{where}.digest: {exc}") from None
    urls = value.get("urls")
    foreign = media_type in mt.FOREIGN_LAYERS and isinstance(urls, list) and bool(urls)
    return Descriptor(media_type, parsed, size, foreign)


def _descriptors(body: dict[str, Any], key: str) -> tuple[Descriptor, ...]:
    items = body.get(key, [])
    if not isinstance(items, list):
        raise _invalid(f"{key} must be an array")
    return tuple(_descriptor(item, f"{key}[{i}]") for i, item in enumerate(items))


def _media_type(content_type: str | None, body: dict[str, Any]) -> str:
    declared = body.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    header = (content_type or "").split(";")[0].strip().lower() or None
    if header in mt.SCHEMA1 or declared in mt.SCHEMA1 or body.get("schemaVersion") == 1:
        raise _invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if body.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    if header in mt.MANIFESTS:
        if declared is not None and declared != header:
            raise _invalid(f"mediaType {declared!r} does not match Content-Type {header!r}")
        return header
    if declared in mt.MANIFESTS:
        return declared
    if declared is None and "manifests" in body:
        return mt.OCI_INDEX
    if declared is None and "config" in body:
        return mt.OCI_MANIFEST
    raise RegistryError(
        ErrorCode.MANIFEST_INVALID,
        f"unsupported manifest media type {header or declared!r}",
    )


def parse_manifest(raw: bytes, content_type: str | None) -> ParsedManifest:
    """Validate ``raw`` as an image manifest or index. Raises ``MANIFEST_INVALID``."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _invalid("manifest is not valid JSON") from None
    if not isinstance(body, dict):
        raise _invalid("manifest must be a JSON object")
    media_type = _media_type(content_type, body)
    subject = _descriptor(body["subject"], "subject").digest if body.get("subject") else None
    artifact_type = body.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    annotations = body.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise _invalid("annotations must map strings to strings")
    if media_type in mt.INDEXES:
        return ParsedManifest(
            media_type, (), _descriptors(body, "manifests"), subject, artifact_type, annotations
        )
    if "config" not in body:
        raise _invalid("an image manifest needs a config descriptor")
    config = _descriptor(body["config"], "config")
    layers = _descriptors(body, "layers")
    if artifact_type is None:
        # The referrers API reports config.mediaType when artifactType is absent.
        artifact_type = config.media_type
    return ParsedManifest(media_type, (config, *layers), (), subject, artifact_type, annotations)
