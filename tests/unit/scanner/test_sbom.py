"""SPDX 2.3 and CycloneDX 1.5 documents, checked by the official validators: the SPDX project's
``spdx-tools`` and CycloneDX's own JSON schema (shipped in ``cyclonedx-python-lib``)."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from packageurl import PackageURL

from portside.scanner.model import OSRelease, Package
from portside.scanner.sbom import (
    CYCLONEDX_MEDIA_TYPE,
    HARBOR_SBOM_ARTIFACT_TYPE,
    PATH_PROPERTY,
    SOURCE_NAME_PROPERTY,
    SOURCE_VERSION_PROPERTY,
    SPDX_MEDIA_TYPE,
    SbomSubject,
    cyclonedx_document,
    harbor_sbom_annotations,
    spdx_document,
)
from portside.scanner.sbom_licenses import KNOWN_EXCEPTIONS, KNOWN_IDS, spdx_expression
from tests.support.sboms import cyclonedx_problems, spdx_problems

DIGEST = "sha256:" + "5b" * 32
CREATED = datetime(2026, 11, 27, 12, 30, 5, tzinfo=UTC)
SUBJECT = SbomSubject("library/app", DIGEST, tag="1.0", registry="127.0.0.1:5000")
DEBIAN = OSRelease("debian", "12", "Debian GNU/Linux 12 (bookworm)")

LIBSSL = Package(
    name="libssl3",
    version="3.0.11-1~deb12u2",
    ecosystem="dpkg",
    path="var/lib/dpkg/status",
    source_name="openssl",
    source_version="3.0.11-1~deb12u2",
    purl="pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
    licenses=("Apache-2.0", "Artistic-1.0 or GPL-1+"),
    arch="amd64",
)
PACKAGES = [
    LIBSSL,
    LIBSSL,  # read twice: one entry
    replace(LIBSSL, licenses=("MIT",), purl=""),  # one file reported twice, differently
    Package(
        "@types/node",
        "20.1.0",
        "npm",
        "app/node_modules/@types/node/package.json",
        purl="pkg:npm/%40types/node@20.1.0",
        licenses=("MIT",),
    ),
    # The same package at two paths stays two entries.
    Package(
        "requests",
        "2.31.0",
        "PyPI",
        "usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA",
        purl="pkg:pypi/requests@2.31.0",
        licenses=("Apache Software License",),
    ),
    Package(
        "requests",
        "2.31.0",
        "PyPI",
        "opt/venv/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
        purl="pkg:pypi/requests@2.31.0",
        licenses=("Apache-2.0",),
    ),
    # Hostile metadata: characters no SPDX id allows, a purl that is not one, a bad licence.
    Package(
        "evil name/../\u00e9\u0000 (x)",
        "1:2.0+b1",
        "PyPI",
        "srv/evil/METADATA",
        purl="javascript:alert(1)",
        licenses=("MIT AND (", "x" * 5000),
    ),
    Package("left-pad", "1.3.0", "npm", "lp/package.json", purl="pkg:npm/left-pad@1.3.0"),
]


@pytest.fixture
def spdx() -> dict[str, Any]:
    return spdx_document(SUBJECT, PACKAGES, DEBIAN, CREATED, "portside-0.1.0")


@pytest.fixture
def cyclonedx() -> dict[str, Any]:
    return cyclonedx_document(SUBJECT, PACKAGES, DEBIAN, CREATED, "portside-0.1.0")


def test_spdx_document_passes_the_spdx_tools_validator(spdx: dict[str, Any]) -> None:
    assert spdx_problems(spdx) == []


def test_spdx_without_os_release_or_packages_is_valid() -> None:
    bare = SbomSubject("tools/x", DIGEST)
    assert spdx_problems(spdx_document(bare, [], None, CREATED, "portside-0.1.0")) == []


MutateSpdx = Callable[[dict[str, Any]], None]
SPDX_BREAKAGES: dict[str, MutateSpdx] = {
    "idstring with a space": lambda d: d["packages"][2].__setitem__("SPDXID", "SPDXRef-a b"),
    "relationship to nothing": lambda d: d["relationships"].append(
        {
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": "SPDXRef-missing",
        }
    ),
    "unknown licence id": lambda d: d["packages"][2].__setitem__("licenseDeclared", "Foo-1.0"),
    "namespace with a fragment": lambda d: d.__setitem__("documentNamespace", "https://x/y#z"),
    "created without time": lambda d: d["creationInfo"].__setitem__("created", "2026-11-27"),
    "bad purl": lambda d: d["packages"][0]["externalRefs"][0].__setitem__(
        "referenceLocator", "oci/app"
    ),
}


@pytest.mark.parametrize("breakage", SPDX_BREAKAGES, ids=list(SPDX_BREAKAGES))
def test_spdx_validator_rejects_a_broken_document(spdx: dict[str, Any], breakage: str) -> None:
    broken = copy.deepcopy(spdx)
    SPDX_BREAKAGES[breakage](broken)
    assert spdx_problems(broken) != []


def test_spdx_relationships_describe_the_image_containing_everything(
    spdx: dict[str, Any],
) -> None:
    ids = [package["SPDXID"] for package in spdx["packages"]]
    assert len(ids) == len(set(ids)) == 1 + 1 + 6  # image, os, six distinct packages
    relationships = {
        (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
        for r in spdx["relationships"]
    }
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image") in relationships
    assert {(s, t, o) for s, t, o in relationships if t == "CONTAINS"} == {
        ("SPDXRef-Image", "CONTAINS", spdx_id) for spdx_id in ids if spdx_id != "SPDXRef-Image"
    }
    image, operating_system = spdx["packages"][0], spdx["packages"][1]
    assert image["primaryPackagePurpose"] == "CONTAINER"
    assert image["versionInfo"] == DIGEST
    assert operating_system["primaryPackagePurpose"] == "OPERATING-SYSTEM"
    assert (operating_system["name"], operating_system["versionInfo"]) == ("debian", "12")


def test_spdx_packages_carry_purl_path_source_and_licence(spdx: dict[str, Any]) -> None:
    libssl = next(p for p in spdx["packages"] if p["name"] == "libssl3")
    assert libssl["externalRefs"] == [
        {
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": LIBSSL.purl,
        }
    ]
    assert "var/lib/dpkg/status" in libssl["sourceInfo"]
    assert "openssl 3.0.11-1~deb12u2" in libssl["sourceInfo"]
    assert libssl["licenseDeclared"] == "Apache-2.0 AND (Artistic-1.0 OR GPL-1.0-or-later)"
    assert libssl["licenseConcluded"] == "NOASSERTION"
    evil = next(p for p in spdx["packages"] if p["name"].startswith("evil"))
    assert "externalRefs" not in evil  # not a purl
    assert evil["licenseDeclared"] == "NOASSERTION"
    free_text = [p for p in spdx["packages"] if p["name"] == "requests"]
    assert sorted(p["licenseDeclared"] for p in free_text) == ["Apache-2.0", "NOASSERTION"]


def test_spdx_namespace_is_unique_per_document() -> None:
    first = spdx_document(SUBJECT, [], None, CREATED, "portside-0.1.0")
    second = spdx_document(SUBJECT, [], None, CREATED, "portside-0.1.0")
    assert first["documentNamespace"] != second["documentNamespace"]
    assert "5b" * 32 in first["documentNamespace"]
    fixed = uuid.UUID("12345678-1234-5678-1234-567812345678")
    again = spdx_document(SUBJECT, PACKAGES, DEBIAN, CREATED, "t-1", document_uuid=fixed)
    assert again == spdx_document(SUBJECT, PACKAGES, DEBIAN, CREATED, "t-1", document_uuid=fixed)
    assert again["documentNamespace"].endswith(str(fixed))


def test_cyclonedx_document_passes_the_official_schema(cyclonedx: dict[str, Any]) -> None:
    assert cyclonedx_problems(cyclonedx) == []


def test_cyclonedx_without_os_release_or_packages_is_valid() -> None:
    bare = SbomSubject("tools/x", DIGEST)
    assert cyclonedx_problems(cyclonedx_document(bare, [], None, CREATED, "portside")) == []


MutateCycloneDx = Callable[[dict[str, Any]], None]
CYCLONEDX_BREAKAGES: dict[str, MutateCycloneDx] = {
    "timestamp not a date-time": lambda d: d["metadata"].__setitem__("timestamp", "yesterday"),
    "serial number not a urn:uuid": lambda d: d.__setitem__("serialNumber", "12345"),
    "licence id not on the SPDX list": lambda d: d["components"][1].__setitem__(
        "licenses", [{"license": {"id": "Foo-1.0"}}]
    ),
    "unknown component type": lambda d: d["components"][1].__setitem__("type", "lib"),
    "unknown property": lambda d: d["components"][1].__setitem__("layer", "x"),
    "wrong bom format": lambda d: d.__setitem__("bomFormat", "SPDX"),
}


@pytest.mark.parametrize("breakage", CYCLONEDX_BREAKAGES, ids=list(CYCLONEDX_BREAKAGES))
def test_cyclonedx_schema_rejects_a_broken_document(
    cyclonedx: dict[str, Any], breakage: str
) -> None:
    broken = copy.deepcopy(cyclonedx)
    CYCLONEDX_BREAKAGES[breakage](broken)
    assert cyclonedx_problems(broken) != []


def test_cyclonedx_describes_the_image_and_its_components(cyclonedx: dict[str, Any]) -> None:
    assert cyclonedx["serialNumber"].startswith("urn:uuid:")
    assert cyclonedx["metadata"]["timestamp"] == "2026-11-27T12:30:05Z"
    assert cyclonedx["metadata"]["tools"]["components"] == [
        {"type": "application", "name": "portside", "version": "0.1.0"}
    ]
    image = cyclonedx["metadata"]["component"]
    assert image["type"] == "container"
    purl = PackageURL.from_string(image["purl"])
    assert (purl.type, purl.name, purl.version) == ("oci", "app", DIGEST)
    assert purl.qualifiers == {"repository_url": "127.0.0.1:5000/library/app", "tag": "1.0"}

    components = cyclonedx["components"]
    refs = [component["bom-ref"] for component in components]
    assert len(refs) == len(set(refs)) == 1 + 6
    assert components[0]["type"] == "operating-system"
    assert {component["type"] for component in components[1:]} == {"library"}
    assert cyclonedx["dependencies"] == [{"ref": image["bom-ref"], "dependsOn": refs}]

    libssl = next(c for c in components if c["name"] == "libssl3")
    properties = {p["name"]: p["value"] for p in libssl["properties"]}
    assert properties[PATH_PROPERTY] == "var/lib/dpkg/status"
    assert properties[SOURCE_NAME_PROPERTY] == "openssl"
    assert properties[SOURCE_VERSION_PROPERTY] == "3.0.11-1~deb12u2"
    assert libssl["purl"] == LIBSSL.purl
    # One SPDX id stays an id; an expression is not a single id, so it is kept as a name.
    assert libssl["licenses"] == [
        {"license": {"id": "Apache-2.0"}},
        {"license": {"name": "Artistic-1.0 or GPL-1+"}},
    ]
    evil = next(c for c in components if c["name"].startswith("evil"))
    assert "purl" not in evil
    assert all(len(entry["license"]["name"]) <= 1024 for entry in evil["licenses"])


def test_documents_of_the_same_packages_list_the_same_packages(
    spdx: dict[str, Any], cyclonedx: dict[str, Any]
) -> None:
    spdx_names = sorted((p["name"], p["versionInfo"]) for p in spdx["packages"][2:])
    cdx_names = sorted((c["name"], c["version"]) for c in cyclonedx["components"][1:])
    assert spdx_names == cdx_names


def test_known_licence_ids_are_on_the_spdx_list() -> None:
    """The ids Portside writes unchecked must be real: the SPDX list shipped with the
    official CycloneDX schema holds every one, and the SPDX tools accept each."""
    import cyclonedx.schema._res as resources  # the schema files' package

    listed = set(
        json.loads((Path(resources.__file__).parent / "spdx.SNAPSHOT.schema.json").read_text())[
            "enum"
        ]
    )
    assert listed >= KNOWN_IDS
    assert listed >= KNOWN_EXCEPTIONS
    packages = [
        Package(identifier, "1", "npm", f"p/{identifier}", licenses=(identifier,))
        for identifier in sorted(KNOWN_IDS)
    ]
    document = spdx_document(SUBJECT, packages, None, CREATED, "portside-0.1.0")
    assert [p["licenseDeclared"] for p in document["packages"][1:]] == sorted(KNOWN_IDS)
    assert spdx_problems(document) == []


@pytest.mark.parametrize(
    ("licenses", "expected"),
    [
        (("MIT",), "MIT"),
        (("mit or apache-2.0",), "MIT OR Apache-2.0"),
        (("GPL-2+",), "GPL-2.0-or-later"),
        (("LGPL-2.1",), "LGPL-2.1-only"),
        (("Expat",), "MIT"),
        (("(MIT OR Apache-2.0) AND BSD-3-Clause",), "(MIT OR Apache-2.0) AND BSD-3-Clause"),
        (
            ("gpl-2.0-or-later with classpath-exception-2.0",),
            "GPL-2.0-or-later WITH Classpath-exception-2.0",
        ),
        (("MIT", "BSD-3-Clause", "MIT"), "MIT AND BSD-3-Clause"),
        (("MIT", "Zlib OR ISC"), "MIT AND (Zlib OR ISC)"),
        (("BSD License",), None),
        (("MIT", "public-domain"), None),
        (("MIT AND",), None),
        (("(MIT",), None),
        (("MIT)",), None),
        (("MIT MIT",), None),
        (("GPL-2.0 WITH Not-An-Exception",), None),
        ((), None),
    ],
)
def test_spdx_expression(licenses: tuple[str, ...], expected: str | None) -> None:
    assert spdx_expression(licenses) == expected


def test_every_accepted_expression_is_valid_spdx() -> None:
    samples = [
        "mit or apache-2.0",
        "GPL-2+",
        "GPL-2.0-or-later WITH Classpath-exception-2.0",
        "(MIT OR Apache-2.0) AND BSD-3-Clause",
        "LGPL-3+ and gpl-3",
    ]
    packages = [
        Package(f"p{i}", "1", "npm", f"p/{i}", licenses=(s,)) for i, s in enumerate(samples)
    ]
    document = spdx_document(SUBJECT, packages, None, CREATED, "portside-0.1.0")
    assert "NOASSERTION" not in [p["licenseDeclared"] for p in document["packages"][1:]]
    assert spdx_problems(document) == []


def test_media_types_and_harbor_accessory_names() -> None:
    assert SPDX_MEDIA_TYPE == "application/spdx+json"
    assert CYCLONEDX_MEDIA_TYPE == "application/vnd.cyclonedx+json"
    assert HARBOR_SBOM_ARTIFACT_TYPE == "application/vnd.goharbor.harbor.sbom.v1"
    annotations = harbor_sbom_annotations(CREATED, "SPDX JSON SBOM")
    assert annotations == {
        "created": "2026-11-27T12:30:05Z",
        "created-by": "Portside",
        "org.opencontainers.artifact.created": "2026-11-27T12:30:05Z",
        "org.opencontainers.artifact.description": "SPDX JSON SBOM",
    }
