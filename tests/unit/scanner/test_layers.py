"""Reading layers (portside.scanner.layers) and stacking them (portside.scanner.image), on real
tar archives built here, plain, gzip- and zstd-compressed."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import random
import tarfile
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

import pytest
import zstandard

from portside.scanner.analyzers.dpkg import DpkgAnalyzer
from portside.scanner.image import merge_layers
from portside.scanner.layers import MAX_TAR_HEADER_BYTES, LayerError, analyze_layer
from portside.scanner.model import LayerResult, OSRelease, Package
from portside.storage.base import PathNotFound

OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

STATUS = "var/lib/dpkg/status"
DEBIAN_12 = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
UBUNTU_2204 = b'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu\nVERSION_ID="22.04"\n'


def stanza(name: str, version: str, source: str = "") -> str:
    lines = [f"Package: {name}", "Status: install ok installed", f"Version: {version}"]
    if source:
        lines.append(f"Source: {source}")
    lines += ["Architecture: amd64", "Description: a package", " with a long description", ""]
    return "\n".join(lines) + "\n"


def status_file(*packages: tuple[str, str]) -> bytes:
    return "".join(stanza(name, version) for name, version in packages).encode()


# -- building layers ----------------------------------------------------------------------------


@dataclass
class Entry:
    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""


def tar_layer(entries: Iterable[Entry | tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for entry in entries:
            item = Entry(*entry) if isinstance(entry, tuple) else entry
            info = tarfile.TarInfo(item.name)
            info.type = item.type
            info.linkname = item.linkname
            info.mode = 0o755 if item.type == tarfile.DIRTYPE else 0o644
            if item.type == tarfile.REGTYPE:
                info.size = len(item.data)
                tar.addfile(info, io.BytesIO(item.data))
            else:
                tar.addfile(info)
    return out.getvalue()


COMPRESSIONS = {
    OCI_TAR: lambda data: data,
    OCI_GZIP: lambda data: gzip.compress(data),
    OCI_ZSTD: lambda data: zstandard.ZstdCompressor().compress(data),
}


async def chunks_of(data: bytes, size: int = 4096, views: bool = False) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        yield memoryview(piece) if views else piece  # type: ignore[misc]


async def analyze(
    data: bytes, media_type: str = OCI_TAR, analyzers: list[object] | None = None, **limits: int
) -> LayerResult:
    chosen = [DpkgAnalyzer()] if analyzers is None else analyzers
    return await analyze_layer(chunks_of(data), media_type, chosen, **limits)  # type: ignore[arg-type]


class Recorder:
    """An analyzer that takes every file under ``prefix`` and reports one package per file,
    named after the file's content."""

    name = "recorder"

    def __init__(self, prefix: str = "", max_bytes: int = 1 << 20) -> None:
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.offered: list[tuple[str, int]] = []
        self.parsed: dict[str, bytes] = {}

    def wants(self, path: str, size: int, mode: int) -> bool:
        self.offered.append((path, size))
        return path.startswith(self.prefix)

    def parse(self, path: str, data: bytes) -> list[Package]:
        self.parsed[path] = data
        return [Package(name=data.decode() or "empty", version="1", ecosystem="test", path=path)]


class Exploding(Recorder):
    def __init__(self, fail_in: str, on: str) -> None:
        super().__init__()
        self.fail_in, self.on = fail_in, on

    def wants(self, path: str, size: int, mode: int) -> bool:
        if self.fail_in == "wants" and path == self.on:
            raise RuntimeError("analyzer bug")
        return super().wants(path, size, mode)

    def parse(self, path: str, data: bytes) -> list[Package]:
        if self.fail_in == "parse" and path == self.on:
            raise ValueError("cannot parse")
        return super().parse(path, data)


def names(result: LayerResult, path: str = STATUS) -> list[str]:
    return [p.name for p in result.packages[path]]


# -- formats ------------------------------------------------------------------------------------


BASE_LAYER = [
    Entry("./", type=tarfile.DIRTYPE),
    Entry("./etc/", type=tarfile.DIRTYPE),
    Entry("./etc/os-release", type=tarfile.SYMTYPE, linkname="../usr/lib/os-release"),
    Entry("./usr/lib/os-release", DEBIAN_12),
    Entry("./var/lib/dpkg/status", status_file(("bash", "5.2.15-2+b2"), ("zlib1g", "1:1.2.13"))),
    Entry("./var/lib/dpkg/status-old", status_file(("stale", "1"))),
]


@pytest.mark.parametrize("media_type", sorted(COMPRESSIONS))
async def test_each_compression_reads_the_same_layer(media_type: str) -> None:
    result = await analyze(COMPRESSIONS[media_type](tar_layer(BASE_LAYER)), media_type)
    assert list(result.packages) == [STATUS]
    assert names(result) == ["bash", "zlib1g"]
    assert result.packages[STATUS][1].version == "1:1.2.13"
    assert result.os_release == OSRelease("debian", "12", "Debian GNU/Linux 12 (bookworm)")
    assert result.os_release_path == "usr/lib/os-release"


async def test_chunks_may_be_read_only_views_and_any_size() -> None:
    layer = gzip.compress(tar_layer(BASE_LAYER))
    for size in (1, 7, 512, 1 << 20):
        result = await analyze_layer(chunks_of(layer, size, views=True), OCI_GZIP, [DpkgAnalyzer()])
        assert names(result) == ["bash", "zlib1g"]


async def test_compression_is_sniffed_when_the_media_type_says_plain_tar() -> None:
    # Some tools push gzip layers as ".tar"; runtimes sniff the magic and so do we.
    layer = tar_layer(BASE_LAYER)
    for compressed in (gzip.compress(layer), zstandard.ZstdCompressor().compress(layer)):
        assert names(await analyze(compressed, OCI_TAR)) == ["bash", "zlib1g"]
        assert names(await analyze(compressed, DOCKER_GZIP)) == ["bash", "zlib1g"]


async def test_a_layer_that_is_not_compressed_as_declared_is_refused() -> None:
    with pytest.raises(LayerError, match="not gzip-compressed"):
        await analyze(tar_layer(BASE_LAYER), OCI_GZIP)
    with pytest.raises(LayerError, match="not zstd-compressed"):
        await analyze(tar_layer(BASE_LAYER), OCI_ZSTD)


@pytest.mark.parametrize(
    "media_type",
    ["application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "application/json", ""],
)
async def test_media_types_that_are_not_tar_layers_are_refused(media_type: str) -> None:
    with pytest.raises(LayerError, match="not a tar layer"):
        await analyze(gzip.compress(tar_layer(BASE_LAYER)), media_type)
    with pytest.raises(LayerError, match="not a tar layer"):
        await analyze(b"", media_type)


async def test_several_gzip_members_and_zstd_frames_are_one_stream() -> None:
    layer = tar_layer(BASE_LAYER)
    half = len(layer) // 2
    members = gzip.compress(layer[:half]) + gzip.compress(layer[half:])
    frames = zstandard.ZstdCompressor().compress(layer[:half])
    frames += zstandard.ZstdCompressor().compress(layer[half:])
    assert names(await analyze(members, OCI_GZIP)) == ["bash", "zlib1g"]
    assert names(await analyze(frames, OCI_ZSTD)) == ["bash", "zlib1g"]


async def test_an_empty_blob_is_an_empty_layer() -> None:
    assert await analyze(b"", OCI_GZIP) == LayerResult()


# -- paths --------------------------------------------------------------------------------------


async def test_paths_are_normalised_before_analyzers_see_them() -> None:
    recorder = Recorder()
    layer = tar_layer(
        [
            ("./a/one", b"1"),
            ("/b/two", b"2"),
            ("c//./three", b"3"),
            (".//d/four/", b"4"),
        ],
        fmt=tarfile.GNU_FORMAT,
    )
    result = await analyze(layer, analyzers=[recorder])
    assert sorted(result.packages) == ["a/one", "b/two", "c/three", "d/four"]
    assert recorder.parsed == {"a/one": b"1", "b/two": b"2", "c/three": b"3", "d/four": b"4"}


async def test_hostile_names_are_skipped_and_reading_goes_on() -> None:
    recorder = Recorder()
    layer = tar_layer(
        [
            ("../../etc/passwd", b"climb"),
            ("a/../../b", b"climb again"),
            ("..", b"parent"),
            ("./", b"root"),
            ("x" * 5000 + "/long", b"long"),  # a pax path
            ("ok", b"fine"),
        ]
    )
    result = await analyze(layer, analyzers=[recorder])
    offered = [path for path, _ in recorder.offered]
    assert offered == ["x" * 5000 + "/long", "ok"]
    assert names(result, "ok") == ["fine"]


async def test_names_that_are_not_utf8_do_not_break_reading() -> None:
    header = tarfile.TarInfo("caf\udce9/file")  # the raw byte 0xe9, latin-1 on disk
    header.size = 4
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT, encoding="latin-1") as t:
        t.addfile(header, io.BytesIO(b"data"))
        t.addfile(_file_info("next", 3), io.BytesIO(b"end"))
    result = await analyze(out.getvalue(), analyzers=[Recorder()])
    assert names(result, "next") == ["end"]
    assert len(result.packages) == 2


def _file_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


async def test_a_later_entry_for_the_same_path_replaces_the_earlier_one() -> None:
    layer = tar_layer(
        [
            (STATUS, status_file(("old", "1"))),
            (STATUS, status_file(("new", "2"))),
            ("var/lib/dpkg/status.d/gone", status_file(("gone", "1"))),
            Entry("var/lib/dpkg/status.d/gone", type=tarfile.SYMTYPE, linkname="elsewhere"),
        ]
    )
    result = await analyze(layer)
    assert result.packages == {STATUS: result.packages[STATUS]}
    assert names(result) == ["new"]


# -- whiteouts and os-release -------------------------------------------------------------------


async def test_whiteouts_and_opaque_directories_are_recorded() -> None:
    layer = tar_layer(
        [
            ("usr/lib/.wh.libfoo.so", b""),
            (".wh.toplevel", b""),
            ("opt/app/.wh..wh..opq", b""),
            (".wh..wh..opq", b""),
            ("var/.wh..wh.plnk", b""),  # aufs bookkeeping, not a deletion
            ("var/.wh...", b""),  # would delete "..": refused
            ("var/.wh.", b""),
        ]
    )
    result = await analyze(layer)
    assert result.whiteouts == ["usr/lib/libfoo.so", "toplevel"]
    assert result.opaque_dirs == ["opt/app", ""]
    assert result.packages == {}


@pytest.mark.parametrize(
    ("entries", "expected", "path"),
    [
        (  # the symlink Debian ships, its target later in the archive
            [
                Entry("etc/os-release", type=tarfile.SYMTYPE, linkname="../usr/lib/os-release"),
                Entry("usr/lib/os-release", DEBIAN_12),
            ],
            "debian",
            "usr/lib/os-release",
        ),
        (  # an absolute symlink, its target earlier in the archive
            [
                Entry("usr/lib/os-release", DEBIAN_12),
                Entry("etc/os-release", type=tarfile.SYMTYPE, linkname="/usr/lib/os-release"),
            ],
            "debian",
            "usr/lib/os-release",
        ),
        (  # /etc wins over /usr/lib
            [Entry("usr/lib/os-release", DEBIAN_12), Entry("etc/os-release", UBUNTU_2204)],
            "ubuntu",
            "etc/os-release",
        ),
        (  # a symlink to a file elsewhere, read because the link came first
            [
                Entry("etc/os-release", type=tarfile.SYMTYPE, linkname="../../../opt/release"),
                Entry("opt/release", UBUNTU_2204),
            ],
            "ubuntu",
            "opt/release",
        ),
        (  # a symlink whose target is in another layer: nothing known from this one
            [Entry("etc/os-release", type=tarfile.SYMTYPE, linkname="../usr/lib/os-release")],
            None,
            "",
        ),
    ],
)
async def test_os_release_follows_its_symlink(
    entries: list[Entry], expected: str | None, path: str
) -> None:
    result = await analyze(tar_layer(entries))
    assert (result.os_release.id if result.os_release else None) == expected
    assert result.os_release_path == path


# -- errors and limits --------------------------------------------------------------------------


def _reference() -> bytes:
    return tar_layer(
        [(f"var/lib/dpkg/status.d/p{i}", status_file((f"p{i}", "1.0"))) for i in range(30)]
    )


@pytest.mark.parametrize("media_type", sorted(COMPRESSIONS))
async def test_a_cut_layer_is_an_error_never_a_shorter_layer(media_type: str) -> None:
    layer = COMPRESSIONS[media_type](_reference())
    complete = await analyze(layer, media_type)
    assert len(complete.packages) == 30
    errors = 0
    cuts = {
        *range(1, len(layer), max(1, len(layer) // 97)),
        *range(1, 1100, 37),
        *range(len(layer) - 24, len(layer)),  # the gzip trailer, the zstd and tar ends
    } & set(range(1, len(layer)))
    for cut in sorted(cuts):
        try:
            result = await analyze(layer[:cut], media_type)
        except LayerError:
            errors += 1
        else:  # only a cut inside the tar padding after the end of the archive reads at all
            assert result == complete, f"cut at {cut} of {len(layer)} read a partial layer"
    assert errors > 50
    if media_type == OCI_GZIP:  # its trailer covers the whole stream: any cut is noticed
        assert errors == len(cuts)


@pytest.mark.parametrize("media_type", sorted(COMPRESSIONS))
async def test_corrupt_bytes_raise_layer_error_and_nothing_else(media_type: str) -> None:
    layer = COMPRESSIONS[media_type](_reference())
    rng = random.Random(5)
    for _ in range(150):
        damaged = bytearray(layer)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        with contextlib.suppress(LayerError):
            await analyze(bytes(damaged), media_type)


async def test_a_corrupt_header_inside_the_archive_is_an_error() -> None:
    # tarfile alone would stop at the bad header and report a shorter archive.
    layer = bytearray(_reference())
    second_header = 512 + 512  # the first entry's header and its one block of data
    assert layer[second_header : second_header + 5] == b"var/l"
    layer[second_header + 148] ^= 0x01  # its checksum
    with pytest.raises(LayerError, match="corrupt tar header"):
        await analyze(bytes(layer))


async def test_a_corrupt_pax_header_inside_the_archive_is_an_error() -> None:
    first = tar_layer([("a", b"1")], fmt=tarfile.GNU_FORMAT)[:1024]  # header and data
    pax = _file_info("./PaxHeaders/b", 0)
    pax.type = tarfile.XHDTYPE
    records = b"0 path=b\n"  # a record of length 0
    pax.size = len(records)
    block = pax.tobuf(tarfile.USTAR_FORMAT) + records + bytes(-len(records) % 512)
    rest = tar_layer([("b", b"2")], fmt=tarfile.USTAR_FORMAT)
    with pytest.raises(LayerError, match="corrupt tar header"):
        await analyze(first + block + rest, analyzers=[Recorder()])


async def test_garbage_is_an_error() -> None:
    garbage = random.Random(1).randbytes(100_000)
    for media_type in sorted(COMPRESSIONS):
        with pytest.raises(LayerError):
            await analyze(garbage, media_type)
    with pytest.raises(LayerError):
        await analyze(b"\x1f\x8b" + garbage, OCI_GZIP)
    with pytest.raises(LayerError):
        await analyze(b"\x28\xb5\x2f\xfd" + garbage, OCI_ZSTD)


async def test_entry_count_is_capped() -> None:
    layer = tar_layer([(f"f{i}", b"") for i in range(20)])
    assert len((await analyze(layer, analyzers=[Recorder()], max_entries=20)).packages) == 20
    with pytest.raises(LayerError, match="more than 19 entries"):
        await analyze(layer, max_entries=19)


async def test_unpacked_bytes_are_capped() -> None:
    bomb = gzip.compress(tar_layer([("zeros", bytes(10 << 20))]))
    assert len(bomb) < 100_000
    with pytest.raises(LayerError, match="unpacks to more than"):
        await analyze(bomb, OCI_GZIP, max_unpacked_bytes=1 << 20)


async def test_a_huge_pax_header_is_refused() -> None:
    info = _file_info("file", 0)
    info.pax_headers = {"comment": "x" * (MAX_TAR_HEADER_BYTES + 1)}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info)
    with pytest.raises(LayerError, match="tar header over"):
        await analyze(gzip.compress(out.getvalue()), OCI_GZIP)


# -- analyzers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_in", ["wants", "parse"])
async def test_an_analyzer_failing_on_one_file_skips_only_that_file(fail_in: str) -> None:
    analyzer = Exploding(fail_in, on="b")
    layer = tar_layer([("a", b"one"), ("b", b"two"), ("c", b"three")])
    result = await analyze(layer, analyzers=[analyzer, Recorder(prefix="b")])
    assert {path: names(result, path) for path in result.packages} == {
        "a": ["one"],
        "b": ["two"],  # the other analyzer still read it
        "c": ["three"],
    }
    assert "b" not in analyzer.parsed


async def test_files_over_an_analyzers_limit_are_not_read() -> None:
    small = Recorder(max_bytes=10)
    layer = tar_layer([("big", b"x" * 11), ("fits", b"y" * 10)])
    result = await analyze(layer, analyzers=[small])
    assert list(result.packages) == ["fits"]
    assert small.offered == [("fits", 10)]  # the big file was not even offered


async def test_only_regular_files_are_offered() -> None:
    recorder = Recorder()
    layer = tar_layer(
        [
            Entry("dir", type=tarfile.DIRTYPE),
            Entry("link", type=tarfile.SYMTYPE, linkname="file"),
            ("file", b"content"),
            Entry("hard", type=tarfile.LNKTYPE, linkname="file"),
            Entry("fifo", type=tarfile.FIFOTYPE),
        ]
    )
    await analyze(layer, analyzers=[recorder])
    assert recorder.offered == [("file", 7)]


# -- streaming ----------------------------------------------------------------------------------


async def test_storage_failures_are_raised_as_themselves() -> None:
    layer = gzip.compress(_reference())

    async def failing() -> AsyncIterator[bytes]:
        yield layer[:1000]
        raise PathNotFound("blobs/sha256/ab/abcd/data")

    with pytest.raises(PathNotFound):
        await analyze_layer(failing(), OCI_GZIP, [DpkgAnalyzer()])

    async def missing() -> AsyncIterator[bytes]:
        raise PathNotFound("blobs/sha256/ab/abcd/data")
        yield b""  # pragma: no cover - makes this an async generator

    with pytest.raises(PathNotFound):
        await analyze_layer(missing(), OCI_GZIP, [DpkgAnalyzer()])

    async def failing_after_the_end() -> AsyncIterator[bytes]:
        yield layer
        raise PathNotFound("blobs/sha256/ab/abcd/data")

    with pytest.raises(PathNotFound):
        await analyze_layer(failing_after_the_end(), OCI_GZIP, [DpkgAnalyzer()])


async def test_cancelling_stops_the_worker_and_closes_the_stream() -> None:
    closed = asyncio.Event()
    threads = threading.active_count()

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield tar_layer([("a", b"")])[:512]  # a header, then data forever
            while True:
                yield bytes(1 << 16)
                await asyncio.sleep(0)
        finally:
            closed.set()

    task = asyncio.create_task(analyze_layer(endless(), OCI_TAR, [Recorder()]))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()
    # The worker thread has stopped reading: the pool it ran in shuts down at once.
    await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), 2)
    assert threading.active_count() <= threads


def _zeros_layer(size: int) -> Iterator[bytes]:
    """A gzip layer holding ``size`` zero bytes in one file, then a small wanted file, made
    piece by piece so the test itself never holds the uncompressed layer."""
    deflate = zlib.compressobj(1, zlib.DEFLATED, 31)
    yield deflate.compress(_file_info("big/zeros", size).tobuf(tarfile.PAX_FORMAT))
    block = bytes(1 << 20)
    for start in range(0, size, len(block)):
        yield deflate.compress(block[: size - start])
    tail = tar_layer([("small/after", b"found")])
    yield deflate.compress(bytes(-size % 512) + tail)
    yield deflate.flush()


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(24 << 20, id="24MiB"),
        pytest.param(200 << 20, id="200MiB", marks=pytest.mark.slow),
    ],
)
async def test_a_large_layer_streams_in_bounded_memory_and_keeps_the_loop_responsive(
    size: int,
) -> None:
    compressed = b"".join(_zeros_layer(size))
    recorder = Recorder(prefix="small/", max_bytes=1 << 30)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    tracemalloc.start()
    try:
        result = await analyze_layer(chunks_of(compressed, 1 << 16), OCI_GZIP, [recorder])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        ticking.cancel()
    assert names(result, "small/after") == ["found"]
    assert ("big/zeros", size) in recorder.offered
    assert peak < 8 << 20, f"peak {peak} bytes while reading {size} bytes"
    assert gaps and max(gaps) < 0.25


# -- stacking layers ----------------------------------------------------------------------------


async def layers(*tars: list[Entry | tuple[str, bytes]]) -> list[LayerResult]:
    return [await analyze(gzip.compress(tar_layer(t)), OCI_GZIP) for t in tars]


def package_names(results: list[LayerResult]) -> list[str]:
    return [p.name for p in merge_layers(results).packages]


async def test_later_layers_replace_and_whiteouts_delete() -> None:
    results = await layers(
        [
            (STATUS, status_file(("bash", "1"))),
            ("var/lib/dpkg/status.d/tzdata", stanza("tz", "1").encode()),
        ],
        [(STATUS, status_file(("bash", "2"), ("curl", "7")))],
        [("var/lib/dpkg/status.d/.wh.tzdata", b"")],
    )
    assert package_names(results[:1]) == ["bash", "tz"]
    merged = merge_layers(results)
    assert [(p.name, p.version) for p in merged.packages] == [("bash", "2"), ("curl", "7")]


async def test_a_whiteout_deletes_everything_under_it() -> None:
    results = await layers(
        [
            (STATUS, status_file(("bash", "1"))),
            ("var/lib/dpkg/status.d/a", stanza("a", "1").encode()),
        ],
        [("var/lib/.wh.dpkg", b"")],
    )
    assert package_names(results) == []


async def test_a_whiteout_does_not_touch_its_own_layer() -> None:
    results = await layers(
        [(STATUS, status_file(("old", "1")))],
        [("var/lib/.wh.dpkg", b""), (STATUS, status_file(("new", "1")))],
    )
    assert package_names(results) == ["new"]


async def test_an_opaque_directory_hides_lower_layers_only() -> None:
    results = await layers(
        [
            (STATUS, status_file(("bash", "1"))),
            ("var/lib/dpkg/status.d/a", stanza("a", "1").encode()),
            ("var/lib/dpkg-other/status.d/x", b""),  # a sibling with the same prefix stays
        ],
        [
            ("var/lib/dpkg/status.d/b", stanza("b", "1").encode()),
            ("var/lib/dpkg/.wh..wh..opq", b""),
        ],
    )
    assert package_names(results) == ["b"]


async def test_a_root_opaque_directory_hides_every_lower_layer() -> None:
    results = await layers(
        [(STATUS, status_file(("bash", "1")))],
        [(".wh..wh..opq", b""), ("var/lib/dpkg/status.d/b", stanza("b", "1").encode())],
    )
    assert package_names(results) == ["b"]


async def test_os_packages_get_the_final_images_ecosystem() -> None:
    base = [
        Entry("etc/os-release", type=tarfile.SYMTYPE, linkname="../usr/lib/os-release"),
        Entry("usr/lib/os-release", DEBIAN_12),
        Entry(STATUS, stanza("libssl3", "3.0.15-1~deb12u1", "openssl").encode()),
    ]
    results = await layers(base, [Entry("etc/os-release", UBUNTU_2204)])
    debian = merge_layers(results[:1])
    assert debian.os_release is not None and debian.os_release.id == "debian"
    (package,) = debian.packages
    assert package.ecosystem == "Debian:12"
    assert package.match_name == "openssl"
    assert package.purl == "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12"
    (relabelled,) = merge_layers(results).packages
    assert relabelled.ecosystem == "Ubuntu:22.04:LTS"
    assert relabelled.purl.startswith("pkg:deb/ubuntu/libssl3@")


async def test_without_an_os_release_os_packages_keep_their_kind() -> None:
    results = await layers(
        [Entry("usr/lib/os-release", DEBIAN_12), Entry(STATUS, stanza("bash", "5").encode())],
        [Entry("usr/lib/.wh.os-release")],
    )
    merged = merge_layers(results)
    assert merged.os_release is None
    assert [p.ecosystem for p in merged.packages] == ["dpkg"]
