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
      <upload-uuid>/
        <chunk token>            bytes of one append (PATCH) to an upload in progress, under a
                                 random name no other writer uses, so no two writers ever share
                                 a key; the database lists which chunks (and how many of their
                                 bytes) make up the upload. Assembled into the blob path when
                                 the upload completes, then deleted
    exports/
      <execution-uuid>           a finished CVE export (CSV), kept until its execution row
                                 is dropped (each user keeps their latest few)
    quarantine/
      sha256/
        abcdef0123....<time>     bytes found under a blob key whose digest they do not have,
                                 moved away by ``portside fsck --verify-digests --repair``
                                 (registry.scrub) at <time> (UTC, 20261207T235001.123456Z);
                                 kept for inspection, never read by the registry

Content is addressed by digest only: a blob is stored once however many repositories use it.
Which repository uses which blob, and every tag, live in the database, never here.

A blob is a file, not a directory of its own: writing one then creates a single inode and
syncs a single directory. (Layout 1 kept ``<hex>/data``; storage.upgrade moves such trees.)
"""

from __future__ import annotations

import datetime as dt
import uuid

from portside.oci.digest import Digest, DigestError

__all__ = [
    "BLOBS_PREFIX",
    "EXPORTS_PREFIX",
    "HEALTH_PROBE_KEY",
    "LAYOUT_KEY",
    "LAYOUT_VERSION",
    "QUARANTINE_PREFIX",
    "UPLOADS_PREFIX",
    "blob_path",
    "digest_of_blob_path",
    "export_path",
    "quarantine_path",
    "upload_chunk_path",
    "upload_prefix",
]

LAYOUT_KEY = "layout-version"
HEALTH_PROBE_KEY = "health-probe"
LAYOUT_VERSION = 2
BLOBS_PREFIX = "blobs/"
UPLOADS_PREFIX = "uploads/"
EXPORTS_PREFIX = "exports/"
QUARANTINE_PREFIX = "quarantine/"


def blob_path(digest: Digest) -> str:
    """Key of a blob's bytes. ``digest`` is already validated, so its parts are safe."""
    return f"{BLOBS_PREFIX}{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def digest_of_blob_path(key: str) -> Digest | None:
    """The digest a key of :func:`blob_path`'s shape names, or None for any other key (a
    driver's temporary file beside a blob, a layout-1 leftover)."""
    parts = key.split("/")
    if len(parts) != 4 or f"{parts[0]}/" != BLOBS_PREFIX:
        return None
    try:
        digest = Digest.parse(f"{parts[1]}:{parts[3]}")
    except DigestError:
        return None
    return digest if digest.hex[:2] == parts[2] else None


def quarantine_path(digest: Digest, stamp: dt.datetime) -> str:
    """Key that a blob's bytes are moved to when they do not match ``digest``. The time keeps
    two quarantines of one digest (bad bytes stored again later) apart."""
    when = stamp.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{QUARANTINE_PREFIX}{digest.algorithm}/{digest.hex}.{when}"


def upload_prefix(upload_id: uuid.UUID) -> str:
    """Prefix of every chunk of an upload. Taking a UUID (not a string) keeps user input out
    of paths."""
    return f"{UPLOADS_PREFIX}{upload_id}/"


def upload_chunk_path(upload_id: uuid.UUID, token: str) -> str:
    """Key of one chunk of an upload; ``token`` is made by the server (hex), never a caller's."""
    return f"{UPLOADS_PREFIX}{upload_id}/{token}"


def export_path(execution_id: uuid.UUID) -> str:
    """Key of a CVE export's CSV file, by its execution's UUID (never a caller's string)."""
    return f"{EXPORTS_PREFIX}{execution_id}"
