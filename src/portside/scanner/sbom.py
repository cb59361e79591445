"""SBOMs of an image: SPDX 2.3 JSON and CycloneDX 1.5 JSON, built from the packages found in it.

Both documents describe the same tree: the image (an SPDX package of purpose CONTAINER, the
CycloneDX ``metadata.component`` of type ``container``, purl ``pkg:oci/...``) contains its
operating system (when os-release was found) and every package. Each package carries its purl,
the file it was read from and its source package, so the SBOM answers "where did this come
from" without a rescan.

Specs: SPDX 2.3 (https://spdx.github.io/spdx-spec/v2.3/), CycloneDX 1.5
(https://cyclonedx.org/docs/1.5/json/). Both writers are pure: the caller passes the creation
time and, for reproducible output, the document UUID.

Harbor stores an SBOM as an accessory of the image (src/pkg/scan/sbom/sbom.go,
src/pkg/scan/util.go ``GenAccessoryArt``): an OCI image manifest whose ``config.mediaType`` is
:data:`HARBOR_SBOM_ARTIFACT_TYPE` (it cannot set ``artifactType`` yet; Harbor's subject
middleware accepts either field), one layer of media type ``application/vnd.oci.image.layer.v1.tar``
holding the SBOM JSON itself (not a tarball), ``subject`` the image, and the annotations in
:func:`harbor_sbom_annotations`. Harbor then lists it as accessory type ``sbom.harbor``.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from portside.scanner.model import OSRelease, Package
from portside.scanner.purl import make_purl
from portside.scanner.sbom_licenses import spdx_expression, spdx_id

__all__ = [
    "CYCLONEDX_MEDIA_TYPE",
    "HARBOR_SBOM_ACCESSORY_TYPE",
    "HARBOR_SBOM_ARTIFACT_TYPE",
    "HARBOR_SBOM_LAYER_MEDIA_TYPE",
    "SPDX_MEDIA_TYPE",
    "SbomSubject",
    "cyclonedx_document",
    "harbor_sbom_annotations",
    "spdx_document",
]

SPDX_MEDIA_TYPE = "application/spdx+json"
CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"
# Harbor's names for its SBOM accessory: the manifest's config media type (or artifactType),
# the layer media type it writes, and the accessory type its API reports.
HARBOR_SBOM_ARTIFACT_TYPE = "application/vnd.goharbor.harbor.sbom.v1"
HARBOR_SBOM_LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
HARBOR_SBOM_ACCESSORY_TYPE = "sbom.harbor"

# Properties (CycloneDX) and their SPDX counterparts, in Portside's own namespace.
PATH_PROPERTY = "portside:package:path"
SOURCE_NAME_PROPERTY = "portside:package:source_name"
SOURCE_VERSION_PROPERTY = "portside:package:source_version"
ECOSYSTEM_PROPERTY = "portside:package:ecosystem"
ARCH_PROPERTY = "portside:package:arch"

_NOASSERTION = "NOASSERTION"
_IMAGE_SPDX_ID = "SPDXRef-Image"
_OS_SPDX_ID = "SPDXRef-OperatingSystem"
_IMAGE_BOM_REF = "image"
_OS_BOM_REF = "operating-system"
# Generous for any real package, small enough that a hostile name cannot bloat the document.
_MAX_TEXT = 1024
_NOT_IDSTRING = re.compile(r"[^A-Za-z0-9.-]+")
# The purl grammar's outline (type, then a name segment); anything else is dropped rather
# than written into a document that validators would reject.
_PURL = re.compile(r"^pkg:[A-Za-z][A-Za-z0-9.+-]*/[^\s]+$")


@dataclass(frozen=True)
class SbomSubject:
    """The image an SBOM describes. ``repository`` is the full repository path
    (``library/app``), ``registry`` the host[:port] clients pull it from, when known."""

    repository: str
    digest: str
    tag: str = ""
    registry: str = ""

    @property
    def purl(self) -> str:
        """``pkg:oci/<last path segment>@<digest>?repository_url=<registry>/<repository>``, as
        the purl spec's ``oci`` type defines it (the name is the last segment, lowercased)."""
        name = self.repository.rsplit("/", 1)[-1].lower()
        location = f"{self.registry}/{self.repository}" if self.registry else self.repository
        return make_purl(
            "oci", name, self.digest, qualifiers={"repository_url": location, "tag": self.tag}
        )

    @property
    def display_name(self) -> str:
        return f"{self.repository}:{self.tag}" if self.tag else f"{self.repository}@{self.digest}"


def harbor_sbom_annotations(created: datetime, description: str) -> dict[str, str]:
    """The manifest annotations Harbor puts on its SBOM accessory (``description`` is e.g.
    ``SPDX JSON SBOM``); ``created`` is what its UI shows as the SBOM's creation time."""
    stamp = _utc(created).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "created": stamp,
        "created-by": "Portside",
        "org.opencontainers.artifact.created": stamp,
        "org.opencontainers.artifact.description": description,
    }


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _clip(text: str) -> str:
    return text[:_MAX_TEXT]


def _identity(package: Package) -> tuple[str, str, str, str, str]:
    """What makes two packages different entries: the same name and version at two paths
    are two installs, while one package reported twice for one file is one."""
    return (package.ecosystem, package.name, package.version, package.path, package.arch)


def _unique(packages: Sequence[Package]) -> list[Package]:
    """Packages sorted by identity, one per identity: the first given wins when two reports
    of one identity disagree on purl, source or licences."""
    chosen: dict[tuple[str, str, str, str, str], Package] = {}
    for package in packages:
        chosen.setdefault(_identity(package), package)
    return [chosen[identity] for identity in sorted(chosen)]


def _fingerprint(package: Package) -> str:
    identity = "\0".join(_identity(package))
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _spdx_id(package: Package) -> str:
    """``SPDXRef-Package-<sanitised name>-<fingerprint>``: SPDX idstrings allow only letters,
    digits, ``.`` and ``-``, and the fingerprint keeps ids unique whatever the name held."""
    name = _NOT_IDSTRING.sub("-", package.name).strip("-")[:64] or "unnamed"
    return f"SPDXRef-Package-{name}-{_fingerprint(package)}"


def _purl(package: Package) -> str:
    return package.purl if _PURL.match(package.purl) and len(package.purl) <= _MAX_TEXT else ""


def _source_info(package: Package) -> str:
    info = f"package found in: {package.path}"
    if package.source_name:
        source = f"{package.source_name} {package.source_version}".strip()
        info += f"; built from source package: {source}"
    return _clip(info)


def _namespace(subject: SbomSubject, document_uuid: uuid.UUID) -> str:
    """A URI unique to this document (SPDX 2.3 section 6.5): where it was made, what it
    describes, and a fresh UUID, so two SBOMs of one image never share a namespace."""
    host = quote(subject.registry or "portside.invalid", safe=":")
    repository = quote(subject.repository, safe="/")
    digest = quote(subject.digest.replace(":", "-"), safe="")
    return f"https://{host}/spdx/{repository}/{digest}-{document_uuid}"


def _spdx_package(package: Package) -> dict[str, Any]:
    licence = spdx_expression(package.licenses)
    entry: dict[str, Any] = {
        "SPDXID": _spdx_id(package),
        "name": _clip(package.name),
        "versionInfo": _clip(package.version),
        "downloadLocation": _NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": _NOASSERTION,
        "licenseDeclared": licence or _NOASSERTION,
        "primaryPackagePurpose": "LIBRARY",
        "sourceInfo": _source_info(package),
    }
    purl = _purl(package)
    if purl:
        entry["externalRefs"] = [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }
        ]
    return entry


def _spdx_image(subject: SbomSubject) -> dict[str, Any]:
    return {
        "SPDXID": _IMAGE_SPDX_ID,
        "name": _clip(subject.repository),
        "versionInfo": subject.digest,
        "downloadLocation": _NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": _NOASSERTION,
        "licenseDeclared": _NOASSERTION,
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": subject.purl,
            }
        ],
    }


def _spdx_os(os_release: OSRelease) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "SPDXID": _OS_SPDX_ID,
        "name": _clip(os_release.id) or "unknown",
        "versionInfo": _clip(os_release.version_id),
        "downloadLocation": _NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": _NOASSERTION,
        "licenseDeclared": _NOASSERTION,
        "primaryPackagePurpose": "OPERATING-SYSTEM",
    }
    if os_release.pretty_name:
        entry["description"] = _clip(os_release.pretty_name)
    return entry


def _contains(element: str) -> dict[str, str]:
    return {
        "spdxElementId": _IMAGE_SPDX_ID,
        "relationshipType": "CONTAINS",
        "relatedSpdxElement": element,
    }


def spdx_document(
    subject: SbomSubject,
    packages: Sequence[Package],
    os_release: OSRelease | None,
    created: datetime,
    tool: str,
    *,
    document_uuid: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The SPDX 2.3 JSON document for an image. ``tool`` is ``name-version`` (``portside-0.1.0``),
    the form SPDX's ``Tool:`` creator takes. Licences that are not SPDX expressions become
    NOASSERTION; a package's purl that does not look like one is left out."""
    unique = _unique(packages)
    described = [_spdx_image(subject)]
    relationships = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": _IMAGE_SPDX_ID,
        }
    ]
    if os_release is not None:
        described.append(_spdx_os(os_release))
        relationships.append(_contains(_OS_SPDX_ID))
    for package in unique:
        described.append(_spdx_package(package))
        relationships.append(_contains(_spdx_id(package)))
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": _clip(subject.display_name),
        "documentNamespace": _namespace(subject, document_uuid or uuid.uuid4()),
        "creationInfo": {
            "created": _utc(created).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": [f"Tool: {tool}"],
        },
        "packages": described,
        "relationships": relationships,
    }


def _tool(tool: str) -> dict[str, str]:
    """CycloneDX wants name and version apart: ``portside-0.1.0`` -> portside, 0.1.0."""
    name, _, version = tool.rpartition("-")
    if name and version[:1].isdigit():
        return {"type": "application", "name": name, "version": version}
    return {"type": "application", "name": tool}


def _properties(package: Package) -> Iterator[dict[str, str]]:
    for name, value in (
        (PATH_PROPERTY, package.path),
        (ECOSYSTEM_PROPERTY, package.ecosystem),
        (SOURCE_NAME_PROPERTY, package.source_name),
        (SOURCE_VERSION_PROPERTY, package.source_version),
        (ARCH_PROPERTY, package.arch),
    ):
        if value:
            yield {"name": name, "value": _clip(value)}


def _cyclonedx_licenses(package: Package) -> list[dict[str, Any]]:
    """Each licence string as an SPDX ``id`` when it is exactly one, else as a ``name`` (a
    CycloneDX component may not mix a list of licences with an expression)."""
    licenses: list[dict[str, Any]] = []
    for text in dict.fromkeys(package.licenses):
        identifier = spdx_id(text)
        key = {"id": identifier} if identifier else {"name": _clip(text)}
        if {"license": key} not in licenses:
            licenses.append({"license": key})
    return licenses


def _component(package: Package) -> dict[str, Any]:
    component: dict[str, Any] = {
        "bom-ref": _spdx_id(package).removeprefix("SPDXRef-"),
        "type": "library",
        "name": _clip(package.name),
        "version": _clip(package.version),
    }
    licenses = _cyclonedx_licenses(package)
    if licenses:
        component["licenses"] = licenses
    purl = _purl(package)
    if purl:
        component["purl"] = purl
    properties = list(_properties(package))
    if properties:
        component["properties"] = properties
    return component


def cyclonedx_document(
    subject: SbomSubject,
    packages: Sequence[Package],
    os_release: OSRelease | None,
    created: datetime,
    tool: str,
    *,
    serial: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The CycloneDX 1.5 JSON BOM for an image: the image is ``metadata.component`` and
    depends on the operating system and every package, listed flat in ``components``."""
    components: list[dict[str, Any]] = []
    if os_release is not None:
        os_component: dict[str, Any] = {
            "bom-ref": _OS_BOM_REF,
            "type": "operating-system",
            "name": _clip(os_release.id) or "unknown",
            "version": _clip(os_release.version_id),
        }
        if os_release.pretty_name:
            os_component["description"] = _clip(os_release.pretty_name)
        components.append(os_component)
    components += [_component(package) for package in _unique(packages)]
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{serial or uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": _utc(created).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [_tool(tool)]},
            "component": {
                "bom-ref": _IMAGE_BOM_REF,
                "type": "container",
                "name": _clip(subject.repository),
                "version": subject.digest,
                "purl": subject.purl,
            },
        },
        "components": components,
        # Only the image's edges are known; packages' own dependencies are not read, so they
        # get no entry (an entry without dependsOn would claim they have none).
        "dependencies": [{"ref": _IMAGE_BOM_REF, "dependsOn": [c["bom-ref"] for c in components]}],
    }
