"""Per-project storage quotas, over real HTTP against a Portside of each test's own.

The tests change the ``library`` project's quota, so they share a server of this module's own
(per backend): SQLite and a data folder, and (with ``--run-slow``) PostgreSQL and S3, where
concurrent pushes really run in parallel transactions and the advisory lock is what keeps usage
within the limit. Each test starts with library unlimited, and sets limits relative to the usage
it finds, so no test depends on what the others pushed.

Usage is read back from ``GET /api/v2.0/quotas/{id}``; what is "half-written" is looked for over
HTTP (blob HEAD, upload status) and, for the tables no endpoint shows, in the database itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
from sqlalchemy import Connection, Engine, create_engine, insert, select
from sqlalchemy import delete as sql_delete

from portside.db.engine import Database
from portside.db.queries import now
from portside.db.tables import blobs, project_blobs, projects, repositories, repository_blobs
from portside.projects.quotas import claim_digest, release_unreferenced
from portside.registry.repositories import Repositories
from tests.support.oci import (
    Blob,
    assert_error,
    blob_path,
    image_manifest,
    manifest_path,
    patch_chunk,
    push_blob,
    push_content,
    push_manifest,
    random_blob,
    start_upload,
    upload_url,
)
from tests.support.server import PortsideServer

API = "/api/v2.0"
MAX_HARD_BYTES = 1 << 50

BACKENDS = [
    pytest.param("sqlite-fs", id="sqlite-fs"),
    pytest.param("postgres-s3", id="postgres-s3", marks=pytest.mark.slow),
]


# -- a server of the test's own, on either backend ------------------------------------------


@contextlib.contextmanager
def _backend_env(request: pytest.FixtureRequest, backend: str) -> Iterator[dict[str, str]]:
    if backend == "sqlite-fs":
        yield {}
        return
    from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY
    from tests.support.backends import postgres_database

    s3 = request.getfixturevalue("s3_server")
    with postgres_database() as url:
        yield {
            "PORTSIDE_DATABASE__URL": url,
            "PORTSIDE_STORAGE__DRIVER": "s3",
            "PORTSIDE_STORAGE__S3__BUCKET": s3.bucket,
            "PORTSIDE_STORAGE__S3__ENDPOINT_URL": s3.endpoint,
            "PORTSIDE_STORAGE__S3__REGION": REGION,
            "PORTSIDE_STORAGE__S3__ACCESS_KEY": ACCESS_KEY,
            "PORTSIDE_STORAGE__S3__SECRET_KEY": SECRET_KEY,
            "PORTSIDE_STORAGE__S3__PREFIX": f"quota-{secrets.token_hex(4)}/",
        }


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PortsideServer]:
    """A Portside of this module's own, on the parametrized backend."""
    with _backend_env(request, request.param) as env:
        portside = PortsideServer(tmp_path_factory.mktemp(f"quotas-{request.param}"), env)
        portside.start()
        try:
            yield portside
        finally:
            portside.stop()


@pytest.fixture
def admin(server: PortsideServer) -> Iterator[httpx.Client]:
    """The admin's client; library's quota is unlimited when the test starts."""
    with server.client() as client:
        _set_hard(client, -1)
        yield client


def _database_url(server: PortsideServer) -> str:
    return server.env.get("PORTSIDE_DATABASE__URL") or f"sqlite:///{server.data_dir}/portside.db"


def _rows(server: PortsideServer, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows straight from the server's database (``?`` placeholders)."""
    url = server.env.get("PORTSIDE_DATABASE__URL")
    if url is None:
        with contextlib.closing(sqlite3.connect(server.data_dir / "portside.db")) as db:
            return list(db.execute(sql, params))
    dbname = url.rsplit("/", 1)[1]
    with (
        contextlib.closing(
            psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=dbname)
        ) as db,
        db.cursor() as cursor,
    ):
        cursor.execute(sql.replace("?", "%s"), params)
        return list(cursor.fetchall())


# -- quota helpers -------------------------------------------------------------------------------


def _library_quota(client: httpx.Client) -> dict[str, Any]:
    response = client.get(f"{API}/quotas", params={"reference": "project", "page_size": 100})
    assert response.status_code == 200, response.text
    for quota in response.json():
        if quota["ref"]["name"] == "library":
            return dict(quota)
    raise AssertionError(f"no quota for library in {response.json()}")


def _used(client: httpx.Client) -> int:
    return int(_library_quota(client)["used"]["storage"])


def _set_hard(client: httpx.Client, hard: int) -> int:
    """Set library's limit; returns the quota (project) id."""
    quota_id = int(_library_quota(client)["id"])
    response = client.put(f"{API}/quotas/{quota_id}", json={"hard": {"storage": hard}})
    assert response.status_code == 200, response.text
    assert _library_quota(client)["hard"]["storage"] == hard
    return quota_id


def _repo() -> str:
    return f"library/q{secrets.token_hex(4)}"


def _assert_denied(response: httpx.Response, *numbers: int) -> str:
    """A quota refusal: 403 DENIED whose message gives ``numbers``."""
    error = assert_error(response, 403, "DENIED")
    message = str(error["message"])
    assert message.startswith("quota exceeded: project library uses "), message
    words = message.replace(";", " ").split()
    for number in numbers:
        assert str(number) in words, (number, message)
    return message


def _head(client: httpx.Client, repo: str, digest: str) -> int:
    return client.head(blob_path(repo, digest)).status_code


def _monolithic(client: httpx.Client, repo: str, blob: Blob) -> httpx.Response:
    return client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": blob.digest},
        content=blob.data,
        headers={"Content-Type": "application/octet-stream"},
    )


def _open_uploads(server: PortsideServer, repo: str) -> int:
    return int(_rows(server, "SELECT COUNT(*) FROM uploads WHERE repository = ?", repo)[0][0])


def _project_blob_rows(server: PortsideServer, digest: str) -> int:
    return int(_rows(server, "SELECT COUNT(*) FROM project_blobs WHERE digest = ?", digest)[0][0])


# -- the API -------------------------------------------------------------------------------------


def test_quotas_are_listed_in_harbors_shape(admin: httpx.Client) -> None:
    response = admin.get(f"{API}/quotas")
    assert response.status_code == 200, response.text
    assert response.headers["X-Total-Count"] == "1"
    (quota,) = response.json()
    assert set(quota) == {"id", "ref", "hard", "used", "creation_time", "update_time"}
    assert quota["ref"]["name"] == "library"
    assert quota["ref"]["id"] == quota["id"]
    assert set(quota["ref"]) == {"id", "name", "owner_name"}
    assert quota["hard"] == {"storage": -1}
    assert set(quota["used"]) == {"storage"}
    assert quota["creation_time"].endswith("Z")

    single = admin.get(f"{API}/quotas/{quota['id']}")
    assert single.status_code == 200
    assert single.json() == quota

    by_ref = admin.get(f"{API}/quotas", params={"reference_id": str(quota["id"])})
    assert [q["id"] for q in by_ref.json()] == [quota["id"]]
    for params in ({"reference_id": "999999"}, {"reference_id": "x"}, {"reference": "user"}):
        empty = admin.get(f"{API}/quotas", params=params)
        assert empty.status_code == 200
        assert empty.json() == []
        assert empty.headers["X-Total-Count"] == "0"
    for sort in ("hard.storage", "-used.storage", "creation_time", "-update_time"):
        assert admin.get(f"{API}/quotas", params={"sort": sort}).status_code == 200
    assert admin.get(f"{API}/quotas", params={"sort": "name"}).status_code == 400
    assert admin.get(f"{API}/quotas/999999").status_code == 404


def test_new_projects_get_the_default_quota_from_settings(tmp_path: Path) -> None:
    portside = PortsideServer(tmp_path / "p", {"PORTSIDE_QUOTA__DEFAULT_PROJECT_BYTES": "5000"})
    portside.start()
    try:
        with portside.client() as client:
            assert _library_quota(client)["hard"] == {"storage": 5000}
            assert _library_quota(client)["used"] == {"storage": 0}
    finally:
        portside.stop()


@pytest.mark.parametrize(
    "body",
    [
        {"hard": {"storage": -2}},
        {"hard": {"storage": MAX_HARD_BYTES + 1}},
        {"hard": {"storage": "1000"}},
        {"hard": {"storage": 1.5}},
        {"hard": {"storage": True}},
        {"hard": {"storage": None}},
        {"hard": {}},
        {"hard": {"count": 10}},
        {"hard": {"storage": 10, "count": 10}},
        {"hard": {"storage": 10}, "used": {"storage": 0}},
        {},
        [],
        "storage",
    ],
    ids=repr,
)
def test_update_refuses_invalid_limits(admin: httpx.Client, body: Any) -> None:
    quota_id = int(_library_quota(admin)["id"])
    response = admin.put(f"{API}/quotas/{quota_id}", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "BAD_REQUEST"
    assert _library_quota(admin)["hard"] == {"storage": -1}


def test_update_accepts_limits_and_audits_them(server: PortsideServer, admin: httpx.Client) -> None:
    quota_id = int(_library_quota(admin)["id"])
    before = _library_quota(admin)["update_time"]
    time.sleep(0.01)
    limits = (0, 1001, MAX_HARD_BYTES, -1, 2047)
    for hard in limits:
        _set_hard(admin, hard)
    assert _library_quota(admin)["update_time"] > before
    response = admin.put(f"{API}/quotas/999999", json={"hard": {"storage": 10}})
    assert response.status_code == 404

    expected = [f"hard.storage: {a} -> {b}" for a, b in zip((-1, *limits), limits, strict=False)]
    deadline = time.monotonic() + 10
    while True:  # entries are written in the background, about once a second
        rows = [
            row
            for row in _rows(
                server,
                "SELECT username, operation, resource, result, project_id, detail "
                "FROM audit_logs WHERE resource_type = 'quota' ORDER BY id",
            )
            if row[5] in expected
        ]
        if len(rows) >= len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [row[5] for row in rows] == expected
    assert {row[:5] for row in rows} == {("admin", "update", "library", "success", quota_id)}


def test_only_admins_manage_quotas(server: PortsideServer, admin: httpx.Client) -> None:
    quota_id = int(_library_quota(admin)["id"])
    body = {"hard": {"storage": 10}}
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        assert anonymous.get(f"{API}/quotas").status_code == 401
        assert anonymous.get(f"{API}/quotas/{quota_id}").status_code == 401
        assert anonymous.put(f"{API}/quotas/{quota_id}", json=body).status_code == 401
        # Refused before the body is even looked at.
        assert anonymous.put(f"{API}/quotas/{quota_id}", json={"x": 1}).status_code == 401

    password = "Quota-User-1"
    username = f"u{secrets.token_hex(4)}"
    created = admin.post(
        f"{API}/users",
        json={"username": username, "password": password, "email": f"{username}@example.com"},
    )
    assert created.status_code == 201, created.text
    with httpx.Client(base_url=server.url, auth=(username, password), timeout=30) as user:
        assert user.get(f"{API}/quotas").status_code == 403
        # Not a member of library: no quota:read there (library is public, but reading the
        # quota is for members).
        assert user.get(f"{API}/quotas/{quota_id}").status_code == 403
        assert user.put(f"{API}/quotas/{quota_id}", json=body).status_code == 403
        assert user.put(f"{API}/quotas/{quota_id}", json={"x": 1}).status_code == 403
    assert _library_quota(admin)["hard"] == {"storage": -1}


# -- enforcement ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [500, 300_000], ids=["small", "streamed"])
def test_monolithic_push_over_quota_is_refused(
    server: PortsideServer, admin: httpx.Client, size: int
) -> None:
    """A whole-blob POST that does not fit is refused with the numbers, and leaves nothing."""
    repo = _repo()
    first = random_blob(size)
    base = _used(admin)
    hard = base + size + size // 2
    _set_hard(admin, hard)
    push_blob(admin, repo, first)
    assert _used(admin) == base + size

    second = random_blob(size)
    _assert_denied(_monolithic(admin, repo, second), base + size, hard, size)
    assert _head(admin, repo, second.digest) == 404
    assert _used(admin) == base + size
    assert _project_blob_rows(server, second.digest) == 0
    assert _open_uploads(server, repo) == 0

    # The same content again is not new to the project: it costs nothing and is accepted.
    push_blob(admin, _repo(), first)
    assert _used(admin) == base + size


def test_closing_put_over_quota_is_refused(server: PortsideServer, admin: httpx.Client) -> None:
    repo = _repo()
    base = _used(admin)
    _set_hard(admin, base + 1000)
    blob = random_blob(1200)
    url = upload_url(start_upload(admin, repo))
    response = admin.put(
        url,
        params={"digest": blob.digest},
        content=blob.data,
        headers={"Content-Type": "application/octet-stream"},
    )
    _assert_denied(response, base, base + 1000, 1200)
    assert admin.get(url).status_code == 404
    assert _head(admin, repo, blob.digest) == 404
    assert _open_uploads(server, repo) == 0
    assert _used(admin) == base


def test_chunked_push_is_refused_mid_way(server: PortsideServer, admin: httpx.Client) -> None:
    """PATCHes are accepted while they fit; the one that goes over is refused and the whole
    upload discarded."""
    repo = _repo()
    base = _used(admin)
    _set_hard(admin, base + 1000)
    blob = random_blob(1200)
    url = upload_url(start_upload(admin, repo))
    assert patch_chunk(admin, url, blob.data[:400], 0).status_code == 202
    assert patch_chunk(admin, url, blob.data[400:800], 400).status_code == 202
    assert admin.get(url).status_code == 204  # still going

    _assert_denied(patch_chunk(admin, url, blob.data[800:], 800), base, base + 1000, 1200)
    assert_error(admin.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    finish = admin.put(url, params={"digest": blob.digest})
    assert_error(finish, 404, "BLOB_UPLOAD_UNKNOWN")
    assert _head(admin, repo, blob.digest) == 404
    assert _open_uploads(server, repo) == 0
    assert _used(admin) == base


def test_streamed_chunk_without_length_is_refused_once_over(
    server: PortsideServer, admin: httpx.Client
) -> None:
    """A PATCH with no Content-Length (chunked transfer coding) is refused as soon as the bytes
    received pass what is left."""
    repo = _repo()
    push_blob(admin, repo, random_blob(300))
    used = _used(admin)
    _set_hard(admin, used + 700)
    url = upload_url(start_upload(admin, repo))
    data = random_blob(64 * 1024).data

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 4096):
            yield data[start : start + 4096]

    response = admin.patch(url, content=pieces())
    message = _assert_denied(response, used, used + 700)
    assert "this upload needs" in message
    assert admin.get(url).status_code == 404
    assert _open_uploads(server, repo) == 0
    assert _used(admin) == used


def test_blob_shared_by_repositories_is_counted_once(admin: httpx.Client) -> None:
    blob = random_blob(1000)
    first, second, mounted = _repo(), _repo(), _repo()
    base = _used(admin)
    push_blob(admin, first, blob)
    # Counted once, so a limit below twice its size still lets other repositories take it.
    _set_hard(admin, base + 1500)
    push_blob(admin, second, blob)
    mount = admin.post(
        f"/v2/{mounted}/blobs/uploads/", params={"mount": blob.digest, "from": first}
    )
    assert mount.status_code == 201, mount.text
    assert _used(admin) == base + 1000
    for repo in (first, second, mounted):
        assert _head(admin, repo, blob.digest) == 200


def test_manifest_bytes_are_counted_and_refused_when_over(
    server: PortsideServer, admin: httpx.Client
) -> None:
    repo = _repo()
    manifest = image_manifest(layer_count=2)
    content = sum(blob.size for blob in manifest.blobs) + manifest.size
    base = _used(admin)
    push_content(admin, repo, manifest, "v1")
    assert _used(admin) == base + content
    # The same manifest under another tag, or in another repository, costs nothing more.
    push_manifest(admin, repo, manifest, "v2")
    push_content(admin, _repo(), manifest)
    assert _used(admin) == base + content

    # A new manifest over the same blobs: only its own bytes are new, one byte too many.
    other = image_manifest(
        config=manifest.blobs[0],
        layers=manifest.blobs[1:],
        annotations={"nonce": secrets.token_hex(8)},
    )
    hard = base + content + other.size - 1
    _set_hard(admin, hard)
    response = admin.put(
        manifest_path(repo, "v3"),
        content=other.raw,
        headers={"Content-Type": other.media_type},
    )
    message = _assert_denied(response, base + content, hard, other.size)
    assert "this manifest needs" in message
    assert admin.get(manifest_path(repo, other.digest)).status_code == 404
    assert admin.get(manifest_path(repo, "v3")).status_code == 404
    assert _project_blob_rows(server, other.digest) == 0
    assert _used(admin) == base + content

    _set_hard(admin, hard + 1)
    push_manifest(admin, repo, other, "v3")
    assert _used(admin) == hard + 1


def test_deletes_give_the_bytes_back(server: PortsideServer, admin: httpx.Client) -> None:
    first, second = _repo(), _repo()
    shared = random_blob(700)
    manifest = image_manifest()
    content = sum(blob.size for blob in manifest.blobs) + manifest.size
    base = _used(admin)
    push_blob(admin, first, shared)
    push_blob(admin, second, shared)
    push_content(admin, first, manifest, "latest")
    assert _used(admin) == base + 700 + content

    # Still held by the other repository: nothing given back yet.
    assert admin.delete(blob_path(first, shared.digest)).status_code == 202
    assert _used(admin) == base + 700 + content
    assert admin.delete(blob_path(second, shared.digest)).status_code == 202
    assert _used(admin) == base + content
    assert _project_blob_rows(server, shared.digest) == 0

    # Deleting a tag keeps the manifest; deleting the manifest gives its bytes back.
    push_manifest(admin, first, manifest, "other")
    assert admin.delete(manifest_path(first, "other")).status_code == 202
    assert _used(admin) == base + content
    assert admin.delete(manifest_path(first, manifest.digest)).status_code == 202
    assert _used(admin) == base + content - manifest.size
    assert _project_blob_rows(server, manifest.digest) == 0

    # Freed room is usable again.
    _set_hard(admin, base + content - manifest.size + 700)
    push_blob(admin, second, shared)
    assert _used(admin) == base + content - manifest.size + 700


def test_deleting_a_repository_gives_back_what_only_it_held(
    server: PortsideServer, admin: httpx.Client
) -> None:
    """Repository deletion has no endpoint yet; the registry service is called directly."""
    doomed, kept = _repo(), _repo()
    shared = random_blob(500)
    manifest = image_manifest()
    base = _used(admin)
    push_content(admin, doomed, manifest, "latest")
    push_blob(admin, doomed, shared)
    push_blob(admin, kept, shared)
    assert _used(admin) == base + 500 + sum(b.size for b in manifest.blobs) + manifest.size

    async def delete(name: str) -> bool:
        db = Database(_database_url(server))
        try:
            return await Repositories(db, 0).delete(name)
        finally:
            await db.close()

    assert asyncio.run(delete(doomed)) is True
    assert asyncio.run(delete(doomed)) is False
    assert _used(admin) == base + 500
    assert _head(admin, kept, shared.digest) == 200
    for digest in (manifest.digest, *(b.digest for b in manifest.blobs)):
        assert _project_blob_rows(server, digest) == 0


def test_pushes_racing_for_the_last_bytes(server: PortsideServer, admin: httpx.Client) -> None:
    """Eight concurrent pushes of 300 distinct bytes into 1000: exactly three fit."""
    base = _used(admin)
    _set_hard(admin, base + 1000)
    repo = _repo()
    blobs = [random_blob(300) for _ in range(8)]
    barrier = threading.Barrier(len(blobs))
    results: dict[str, httpx.Response] = {}

    def push(blob: Blob) -> None:
        with server.client() as client:
            client.get("/v2/")  # connect before the start line
            barrier.wait()
            results[blob.digest] = _monolithic(client, repo, blob)

    threads = [threading.Thread(target=push, args=(blob,)) for blob in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    accepted = [d for d, r in results.items() if r.status_code == 201]
    refused = [d for d, r in results.items() if r.status_code != 201]
    assert len(accepted) == 3, {d: r.status_code for d, r in results.items()}
    for digest in refused:
        _assert_denied(results[digest], base + 1000, 300)
        assert _head(admin, repo, digest) == 404
    for digest in accepted:
        assert _head(admin, repo, digest) == 200
    assert _used(admin) == base + 900
    assert _open_uploads(server, repo) == 0


def test_closing_puts_racing_for_the_last_bytes(
    server: PortsideServer, admin: httpx.Client
) -> None:
    """The same race through PATCH then PUT: the early check lets all in, the link decides."""
    base = _used(admin)
    _set_hard(admin, base + 1000)
    repo = _repo()
    blobs = [random_blob(300) for _ in range(8)]
    urls = {}
    for blob in blobs:
        url = upload_url(start_upload(admin, repo))
        assert patch_chunk(admin, url, blob.data, 0).status_code == 202
        urls[blob.digest] = url
    barrier = threading.Barrier(len(blobs))
    results: dict[str, httpx.Response] = {}

    def finish(digest: str) -> None:
        with server.client() as client:
            client.get("/v2/")
            barrier.wait()
            results[digest] = client.put(urls[digest], params={"digest": digest})

    threads = [threading.Thread(target=finish, args=(blob.digest,)) for blob in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [201] * 3 + [403] * 5, {d: r.text for d, r in results.items()}
    for digest, response in results.items():
        if response.status_code == 403:
            _assert_denied(response, base + 1000, 300)
        assert _head(admin, repo, digest) == (200 if response.status_code == 201 else 404)
    assert _used(admin) == base + 900
    assert _open_uploads(server, repo) == 0


def test_usage_stays_right_when_pushes_and_deletes_of_a_blob_meet(
    server: PortsideServer, admin: httpx.Client
) -> None:
    """One repository deletes a blob while another pushes it, many times at once: whatever the
    interleaving, the blob stays counted, because the second repository holds it."""
    giving, taking = _repo(), _repo()
    blobs = [random_blob(100 + i) for i in range(12)]
    base = _used(admin)
    for blob in blobs:
        push_blob(admin, giving, blob)
    barrier = threading.Barrier(2 * len(blobs))
    failures: list[str] = []

    def act(blob: Blob, delete: bool) -> None:
        with server.client() as client:
            client.get("/v2/")
            barrier.wait()
            if delete:
                response = client.delete(blob_path(giving, blob.digest))
                expected = 202
            else:
                response = _monolithic(client, taking, blob)
                expected = 201
            if response.status_code != expected:
                failures.append(f"{response.status_code} {response.text}")

    threads = [
        threading.Thread(target=act, args=(blob, delete))
        for blob in blobs
        for delete in (True, False)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert _used(admin) == base + sum(blob.size for blob in blobs)
    for blob in blobs:
        assert _project_blob_rows(server, blob.digest) == 1
        assert _head(admin, giving, blob.digest) == 404
        assert _head(admin, taking, blob.digest) == 200


def test_a_push_and_a_delete_of_one_digest_never_lose_its_count(server: PortsideServer) -> None:
    """The PostgreSQL row-locking protocol, step by step with two connections: a delete that
    meets a push linking the same digest either sees the push's link (and keeps the row) or
    makes the push insert the row again. Over HTTP the window is too narrow to hit reliably."""
    url = server.env.get("PORTSIDE_DATABASE__URL")
    if url is None:
        pytest.skip("SQLite serialises every write transaction: there is no interleaving")
    engine = create_engine(url.replace("+asyncpg", "+psycopg2"))
    try:
        with engine.begin() as setup:
            project_id = setup.execute(
                select(projects.c.id).where(projects.c.name == "library")
            ).scalar_one()
            giving, taking = (
                setup.execute(
                    insert(repositories).returning(repositories.c.id),
                    {"name": _repo(), "project_id": project_id, "created_at": now()},
                ).scalar_one()
                for _ in range(2)
            )
        for push_first in (True, False):
            assert _push_meets_delete(engine, project_id, giving, taking, push_first)
    finally:
        engine.dispose()


def _push_meets_delete(
    engine: Engine, project_id: int, giving: int, taking: int, push_first: bool
) -> bool:
    """Run a push into ``taking`` and a delete from ``giving`` of one digest, the first one
    holding its lock while the other starts; True when the digest is still counted."""
    digest = random_blob(64).digest
    with engine.begin() as setup:
        setup.execute(insert(blobs), {"digest": digest, "size": 64, "created_at": now()})
        setup.execute(
            insert(repository_blobs),
            {"repository_id": giving, "digest": digest, "created_at": now()},
        )
        setup.execute(
            insert(project_blobs),
            {"project_id": project_id, "digest": digest, "size": 64, "created_at": now()},
        )

    def push(connection: Connection) -> None:
        connection.execute(
            insert(repository_blobs),
            {"repository_id": taking, "digest": digest, "created_at": now()},
        )
        claim_digest(connection, project_id, digest, 64)

    def delete(connection: Connection) -> None:
        connection.execute(
            sql_delete(repository_blobs).where(
                repository_blobs.c.repository_id == giving, repository_blobs.c.digest == digest
            )
        )
        release_unreferenced(connection, project_id, [digest])

    first, second = (push, delete) if push_first else (delete, push)
    with engine.connect() as holder, engine.connect() as waiter:
        holder.begin()
        first(holder)

        def run_second() -> None:
            with waiter.begin():
                second(waiter)

        thread = threading.Thread(target=run_second)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the second transaction should wait for the first one's lock"
        holder.commit()
        thread.join(10)
        assert not thread.is_alive()
    with engine.connect() as check:
        counted = check.scalar(
            select(project_blobs.c.size).where(
                project_blobs.c.project_id == project_id, project_blobs.c.digest == digest
            )
        )
    return counted == 64
