import json

import pytest

from portside.oci import mediatypes as mt
from portside.oci.digest import Digest
from portside.oci.errors import ErrorCode, RegistryError
from portside.oci.manifest import parse_manifest

CONFIG = {"mediaType": mt.OCI_IMAGE_CONFIG, "digest": str(Digest.of(b"{}")), "size": 2}
LAYER = {
    "mediaType": "application/vnd.oci.image.layer.v1.tar",
    "digest": str(Digest.of(b"l")),
    "size": 1,
}


def _raw(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode()


def test_image_manifest_lists_config_and_layers() -> None:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": CONFIG, "layers": [LAYER]}
    parsed = parse_manifest(_raw(body), mt.OCI_MANIFEST)
    assert parsed.media_type == mt.OCI_MANIFEST
    assert [str(d.digest) for d in parsed.blobs] == [CONFIG["digest"], LAYER["digest"]]
    assert parsed.artifact_type == mt.OCI_IMAGE_CONFIG
    assert parsed.subject is None


def test_artifact_type_and_subject_are_extracted() -> None:
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"s")), "size": 1}
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": "application/x-sig",
        "config": CONFIG,
        "layers": [],
        "subject": subject,
        "annotations": {"a": "b"},
    }
    parsed = parse_manifest(_raw(body), None)
    assert parsed.artifact_type == "application/x-sig"
    assert parsed.subject == Digest.of(b"s")
    assert parsed.annotations == {"a": "b"}


def test_index_lists_children() -> None:
    child = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"c")), "size": 1}
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [child]}
    parsed = parse_manifest(_raw(body), "application/octet-stream")
    assert parsed.media_type == mt.OCI_INDEX
    assert [str(d.digest) for d in parsed.manifests] == [child["digest"]]


def test_media_type_falls_back_to_the_body_shape() -> None:
    parsed = parse_manifest(_raw({"schemaVersion": 2, "config": CONFIG, "layers": []}), None)
    assert parsed.media_type == mt.OCI_MANIFEST


@pytest.mark.parametrize(
    ("raw", "content_type", "message"),
    [
        (b"not json", None, "not valid JSON"),
        (b"[]", None, "JSON object"),
        (b"\xff\xfe", None, "not valid JSON"),
        (
            _raw({"schemaVersion": 1, "name": "x", "fsLayers": []}),
            mt.DOCKER_SCHEMA1_SIGNED,
            "schema 1",
        ),
        (_raw({"schemaVersion": 1}), None, "schema 1"),
        (
            _raw({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}),
            mt.OCI_MANIFEST,
            "does not match",
        ),
        (_raw({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": []}), None, "config"),
        (_raw({"schemaVersion": 2, "config": {**CONFIG, "size": -1}, "layers": []}), None, "size"),
        (
            _raw({"schemaVersion": 2, "config": {**CONFIG, "size": True}, "layers": []}),
            None,
            "size",
        ),
        (
            _raw({"schemaVersion": 2, "config": {**CONFIG, "digest": "sha256:x"}, "layers": []}),
            None,
            "digest",
        ),
        (_raw({"schemaVersion": 2, "config": CONFIG, "layers": {}}), None, "array"),
        (_raw({"schemaVersion": 2, "config": CONFIG, "layers": [7]}), None, "descriptor"),
        (
            _raw({"schemaVersion": 2, "config": CONFIG, "annotations": {"a": 1}}),
            None,
            "annotations",
        ),
        (_raw({"schemaVersion": 3, "config": CONFIG}), None, "schemaVersion"),
        (_raw({"schemaVersion": 2, "mediaType": "text/plain"}), None, "unsupported"),
    ],
)
def test_invalid_manifests_are_manifest_invalid(
    raw: bytes, content_type: str | None, message: str
) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_manifest(raw, content_type)
    assert caught.value.code is ErrorCode.MANIFEST_INVALID
    assert message in caught.value.message
