"""Every storage key Portside uses is built here, and only here.

The tree, relative to the driver's root::

    layout-version               which of these trees this is (see storage.upgrade)
    health-probe                 rewritten by each health check, to prove writes succeed
    blobs/
      sha256/
        ab/                      first two hex characters of the digest
          abcdef0123...          the blob's bytes (layers, configs and manifests alike)
      sha512/...                 the same for sha512 digests
    uploads/
      <upload-uuid>              bytes of an upload in progress, appended by PATCH; moved to
                                 its blob path when the upload completes
    exports/
      <execution-uuid>           a finished CVE export (CSV), kept until its execution row
                                 is dropped (each user keeps their latest few)

Content is addressed by digest only: a blob is stored once however many repositories use it.
Which repository uses which blob, and every tag, live in the database, never here.

A blob is a file, not a directory of its own: writing one then creates a single inode and
syncs a single directory. (Layout 1 kept ``<hex>/data``; storage.upgrade moves such trees.)
"""

from __future__ import annotations

import uuid

from portside.oci.digest import Digest

__all__ = [
    "BLOBS_PREFIX",
    "EXPORTS_PREFIX",
    "HEALTH_PROBE_KEY",
    "LAYOUT_KEY",
    "LAYOUT_VERSION",
    "UPLOADS_PREFIX",
    "blob_path",
    "export_path",
    "upload_path",
]

LAYOUT_KEY = "layout-version"
HEALTH_PROBE_KEY = "health-probe"
LAYOUT_VERSION = 2
BLOBS_PREFIX = "blobs/"
UPLOADS_PREFIX = "uploads/"
EXPORTS_PREFIX = "exports/"


def blob_path(digest: Digest) -> str:
    """Key of a blob's bytes. ``digest`` is already validated, so its parts are safe."""
    return f"{BLOBS_PREFIX}{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def upload_path(upload_id: uuid.UUID) -> str:
    """Key of an upload's data. Taking a UUID (not a string) keeps user input out of paths."""
    return f"{UPLOADS_PREFIX}{upload_id}"


def export_path(execution_id: uuid.UUID) -> str:
    """Key of a CVE export's CSV file, by its execution's UUID (never a caller's string)."""
    return f"{EXPORTS_PREFIX}{execution_id}"
