"""Harbor's pluggable scanner API (v1.1/v1.2): its MIME types, and the metadata Portside's
built-in scanner advertises when serving that API.

Both sides live in Portside: :mod:`.adapter_client` calls external adapters, and
:mod:`portside.api.scanner_adapter` serves the built-in scanner to anyone speaking the API
(a Harbor, or Portside itself in the tests).
"""

from __future__ import annotations

from typing import Any

from portside.oci import mediatypes as mt
from portside.scanner.reports import SBOM_REPORT, VULNERABILITY_REPORT

__all__ = [
    "ERROR_MIME",
    "HARBOR_REPORT_V1",
    "METADATA_MIME",
    "SCANNABLE_MANIFESTS",
    "SCAN_REQUEST_MIME",
    "SCAN_RESPONSE_MIME",
    "AdapterError",
    "RegistryClientError",
    "builtin_metadata",
]


class AdapterError(Exception):
    """An external adapter could not be reached, refused a request, or answered nonsense."""


class RegistryClientError(Exception):
    """A registry we pull from (to serve a scan request) failed us or served nonsense."""


# The HTTP clients (adapter_client, registry_client) import httpx, which costs the server
# memory at start; the errors live here so callers can catch them without importing those.

METADATA_MIME = "application/vnd.scanner.adapter.metadata+json; version=1.0"
SCAN_REQUEST_MIME = "application/vnd.scanner.adapter.scan.request+json; version=1.0"
SCAN_REQUEST_MIME_V11 = "application/vnd.scanner.adapter.scan.request+json; version=1.1"
SCAN_RESPONSE_MIME = "application/vnd.scanner.adapter.scan.response+json; version=1.0"
ERROR_MIME = "application/vnd.scanner.adapter.error+json; version=1.0"
# The older report type, which Harbor still accepts; same body as version 1.1.
HARBOR_REPORT_V1 = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
SCANNABLE_MANIFESTS = (mt.OCI_MANIFEST, mt.DOCKER_MANIFEST)


def builtin_metadata(version: str, database_updated_at: str | None) -> dict[str, Any]:
    properties = {
        "harbor.scanner-adapter/scanner-type": "os-package-vulnerability",
        "harbor.scanner-adapter/vulnerability-database-skip-update": "true",
    }
    if database_updated_at:
        properties["harbor.scanner-adapter/vulnerability-database-updated-at"] = database_updated_at
    return {
        "scanner": {"name": "Portside", "vendor": "Portside", "version": version},
        "capabilities": [
            {
                "type": "vulnerability",
                "consumes_mime_types": list(SCANNABLE_MANIFESTS),
                "produces_mime_types": [VULNERABILITY_REPORT, HARBOR_REPORT_V1],
            },
            {
                "type": "sbom",
                "consumes_mime_types": list(SCANNABLE_MANIFESTS),
                "produces_mime_types": [SBOM_REPORT],
                "additional_attributes": {
                    "sbom_media_types": ["application/spdx+json", "application/vnd.cyclonedx+json"]
                },
            },
        ],
        "properties": properties,
    }
