"""Helm chart additions: ``values.yaml``, ``readme.md`` and ``dependencies`` of a chart artifact,
read from its chart content layer.

The layer is untrusted: anyone with push rights can store any bytes under a Helm media type. So
it is never held in memory whole. It is streamed from storage through our own bounded gunzip
into :mod:`tarfile`'s stream mode (``r|``, no seeking), and reading stops as soon as the files
we serve are found. Each file we keep is capped (:data:`MAX_FILE_BYTES`), as are the total of
unpacked bytes (a gzip bomb stops at :data:`MAX_UNPACKED_BYTES`) and the number of entries.
Nothing is ever extracted to disk, so hostile member names cannot write anywhere; they are
refused anyway, as Helm refuses them, so a chart is either read as Helm would read it or not
at all. Chart.yaml is parsed with PyYAML's safe loader, and only plain fields are kept.

Results are cached by manifest digest: content addressed, so they never go stale. Verdicts on
broken charts are cached too (the same bytes stay broken); storage failures are not.

Harbor's behaviour (``processor/chart``) is followed: files are matched case-insensitively at the
chart's top directory, dependencies come from Chart.yaml (``apiVersion: v2``) or from
requirements.yaml (``v1``), and the content types are ``text/plain``, ``text/markdown`` and
``application/json``, each with ``charset=utf-8``.
"""

from __future__ import annotations

import asyncio
import json
import tarfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast

import yaml

from portside.oci.digest import Digest, DigestError
from portside.oci.errors import RegistryError
from portside.registry.blobs import Blobs
from portside.registry.manifests import Manifests
from portside.storage.base import PathNotFound

__all__ = [
    "CHART_CONTENT",
    "CONTENT_TYPES",
    "MAX_FILE_BYTES",
    "MISSING_CONTENT",
    "ChartAdditions",
    "ChartError",
    "ChartFiles",
    "read_chart",
]

CHART_CONTENT = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
LEGACY_CHART_CONTENT = "application/tar+gzip"  # charts pushed by Helm 3.0-3.7 experimental OCI
MAX_FILE_BYTES = 1 << 20  # values.yaml, README.md, Chart.yaml, requirements.yaml: 1 MiB each
MAX_UNPACKED_BYTES = 64 << 20  # all of the tar stream that may be read to find them
MAX_ENTRIES = 10_000
CACHE_BUDGET_BYTES = 32 << 20

# What each addition answers with (Harbor's content types).
CONTENT_TYPES = {
    "values.yaml": "text/plain; charset=utf-8",
    "readme.md": "text/markdown; charset=utf-8",
    "dependencies": "application/json; charset=utf-8",
}

# Top-level chart files we read, by upper-cased name (Harbor compares them upper-cased; Helm
# itself requires the exact name Chart.yaml).
_CHART_YAML = "Chart.yaml"
_WANTED = {"VALUES.YAML": "values.yaml", "README.MD": "readme.md", "REQUIREMENTS.YAML": "req"}

# Helm's Dependency fields, as Harbor serialises them: (key, kind), in Helm's order.
_DEPENDENCY_FIELDS = (
    ("name", "str"),
    ("version", "str"),
    ("repository", "str"),
    ("condition", "str"),
    ("tags", "strings"),
    ("enabled", "bool"),
    ("import-values", "imports"),
    ("alias", "str"),
)
_ALWAYS = ("name", "repository")  # the fields Helm serialises even when empty


class ChartError(Exception):
    """The chart content cannot be read: not a chart, broken, hostile or over a limit. The
    message says which, and is safe to show to the caller."""


@dataclass(frozen=True, slots=True)
class ChartFiles:
    """What a chart's additions are made of. A file absent from the chart is None; one over
    :data:`MAX_FILE_BYTES` is named in ``too_large``."""

    values: bytes | None
    readme: bytes | None
    dependencies: list[dict[str, Any]]
    too_large: frozenset[str] = field(default_factory=frozenset)

    @property
    def cost(self) -> int:
        """Approximate bytes held in the cache."""
        return (
            512 + len(self.values or b"") + len(self.readme or b"") + 256 * len(self.dependencies)
        )

    def addition(self, name: str) -> bytes | None:
        """The body of addition ``name`` (lower-case), or None when the chart has no such file.
        Raises :class:`ChartError` for a file over the cap."""
        if name in self.too_large:
            raise ChartError(f"the chart's {name} is larger than {MAX_FILE_BYTES} bytes")
        if name == "values.yaml":
            return self.values
        if name == "readme.md":
            return self.readme
        if name == "dependencies":
            return json.dumps(self.dependencies, separators=(",", ":")).encode()
        return None


# -- reading an archive -------------------------------------------------------------------------


class _BoundedGunzip:
    """A read-only file over gunzipped ``chunks`` (several gzip members allowed, as Go's reader
    allows them) that refuses to produce more than ``limit`` bytes: tarfile's own ``r|gz``
    cannot bound what it inflates while skipping a member, so a small bomb could cost minutes
    of CPU."""

    def __init__(self, chunks: Iterator[bytes], limit: int) -> None:
        self._chunks = chunks
        self._limit = limit
        self._produced = 0
        self._inflater = zlib.decompressobj(wbits=31)  # gzip framing only
        self._input = b""
        self._inside_member = False

    def read(self, size: int = -1) -> bytes:
        size = size if size > 0 else 1 << 16
        while True:
            if not self._input:
                chunk = next(self._chunks, None)
                if chunk is None:
                    if self._inside_member:
                        raise ChartError("the chart content is truncated")
                    return b""
                self._input = chunk
            if self._inflater.eof:  # the previous member ended and more input follows
                self._inflater = zlib.decompressobj(wbits=31)
            try:
                out = self._inflater.decompress(self._input, size)
            except zlib.error:
                raise ChartError("the chart content is not gzip-compressed") from None
            done = self._inflater.eof
            self._inside_member = not done
            self._input = self._inflater.unused_data if done else self._inflater.unconsumed_tail
            if out:
                self._produced += len(out)
                if self._produced > self._limit:
                    raise ChartError(f"the chart unpacks to more than {self._limit} bytes")
                return out


def _top_level_name(name: str) -> str | None:
    """The file name within the chart's top directory (``mychart/values.yaml`` ->
    ``values.yaml``), None for anything deeper or shallower. Refuses names Helm refuses:
    absolute ones and any that climb out with ``..``."""
    cleaned = name.replace("\\", "/")
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise ChartError("the chart contains an absolute path")
    parts = [part for part in cleaned.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ChartError("the chart contains a path outside its directory")
    return parts[1] if len(parts) == 2 else None


def _load_yaml(data: bytes, what: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(data)
    except (yaml.YAMLError, RecursionError, ValueError):
        raise ChartError(f"the chart's {what} is not valid YAML") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ChartError(f"the chart's {what} is not a YAML mapping")
    return loaded


def _scalar(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _dependency(raw: Any) -> dict[str, Any] | None:
    """One dependency with Helm's fields only, each of its plain type (YAML may hold dates,
    aliases or nested structures that JSON or Helm would not take)."""
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for key, kind in _DEPENDENCY_FIELDS:
        value = raw.get(key)
        if kind == "str":
            text = _scalar(value)
            if text or (key in _ALWAYS):
                out[key] = text or ""
        elif kind == "strings" and isinstance(value, list):
            strings = [s for s in value if isinstance(s, str)]
            if strings:
                out[key] = strings
        elif kind == "bool" and value is True:
            out[key] = True
        elif kind == "imports" and isinstance(value, list):
            imports: list[Any] = []
            for item in value:
                if isinstance(item, str):
                    imports.append(item)
                elif isinstance(item, dict):
                    pairs = {k: v for k, v in item.items() if isinstance(k, str)}
                    plain = {k: v for k, v in pairs.items() if isinstance(v, str)}
                    if plain:
                        imports.append(plain)
            if imports:
                out[key] = imports
    return out


def _dependencies(listed: Any) -> list[dict[str, Any]]:
    if not isinstance(listed, list):
        return []
    return [dep for dep in map(_dependency, listed) if dep is not None]


def read_chart(chunks: Iterator[bytes]) -> ChartFiles:
    """Read a chart archive (``.tgz``) from ``chunks`` and pick out its additions. Blocking:
    run it in a worker thread. Raises :class:`ChartError`."""
    found: dict[str, bytes] = {}
    too_large: set[str] = set()
    chart: dict[str, Any] | None = None
    unpacked = _BoundedGunzip(chunks, MAX_UNPACKED_BYTES)
    try:
        with tarfile.open(fileobj=cast(IO[bytes], unpacked), mode="r|") as tar:
            for count, member in enumerate(tar, start=1):
                if count > MAX_ENTRIES:
                    raise ChartError(f"the chart has more than {MAX_ENTRIES} entries")
                name = _top_level_name(member.name)
                if name is None or not member.isfile() or member.issparse():
                    continue
                key = "chart" if name == _CHART_YAML else _WANTED.get(name.upper())
                if key is None or key in found or key in too_large:
                    continue
                if member.size > MAX_FILE_BYTES:
                    too_large.add(key)
                    continue
                extracted = tar.extractfile(member)
                found[key] = extracted.read() if extracted is not None else b""
                if key == "chart":
                    chart = _load_yaml(found[key], _CHART_YAML)
                seen = set(found) | too_large
                if (
                    chart is not None
                    and {"values.yaml", "readme.md"} <= seen
                    and (_scalar(chart.get("apiVersion")) not in (None, "v1") or "req" in seen)
                ):
                    break  # everything we serve is here: leave the rest unread
    except (tarfile.TarError, EOFError, OSError):
        raise ChartError("the chart content is not a valid tar archive") from None
    if chart is None:
        if "chart" in too_large:
            raise ChartError(f"the chart's {_CHART_YAML} is larger than {MAX_FILE_BYTES} bytes")
        raise ChartError(f"the chart content has no {_CHART_YAML}")
    listed: Any = []
    if _scalar(chart.get("apiVersion")) in (None, "v1"):
        if "req" in too_large:
            too_large.add("dependencies")
        if "req" in found:
            listed = _load_yaml(found["req"], "requirements.yaml").get("dependencies")
    else:
        listed = chart.get("dependencies")
    return ChartFiles(
        found.get("values.yaml"),
        found.get("readme.md"),
        _dependencies(listed),
        frozenset(too_large - {"req"}),
    )


# -- finding and caching ------------------------------------------------------------------------


def _chart_layer(manifest: bytes) -> Digest:
    """The chart content layer of a Helm manifest: the one of the chart media type, else
    (as Harbor does) the first layer that is not the config."""
    try:
        body = json.loads(manifest)
    except ValueError:
        raise ChartError("the chart's manifest is not JSON") from None
    layers = body.get("layers") if isinstance(body, dict) else None
    config = body.get("config") if isinstance(body, dict) else None
    config_digest = config.get("digest") if isinstance(config, dict) else None
    candidates = [
        layer
        for layer in layers or []
        if isinstance(layer, dict)
        and isinstance(layer.get("digest"), str)
        and layer["digest"] != config_digest
    ]
    for wanted in (CHART_CONTENT, LEGACY_CHART_CONTENT, None):
        for layer in candidates:
            if wanted is None or layer.get("mediaType") == wanted:
                try:
                    return Digest.parse(layer["digest"])
                except DigestError:
                    raise ChartError("the chart layer's digest is invalid") from None
    raise ChartError("the chart has no content layer")


class ChartAdditions:
    """Chart additions by artifact, read once per manifest digest and kept within a byte budget.
    Concurrent requests for one chart share a single read."""

    def __init__(
        self, manifests: Manifests, blobs: Blobs, budget_bytes: int = CACHE_BUDGET_BYTES
    ) -> None:
        self._manifests = manifests
        self._blobs = blobs
        self._budget = budget_bytes
        self._used = 0
        self._cache: OrderedDict[str, ChartFiles | ChartError] = OrderedDict()
        self._reading: dict[str, asyncio.Task[ChartFiles | ChartError]] = {}

    async def files(self, repository: str, digest: str) -> ChartFiles:
        """The files of the chart ``digest`` in ``repository``. Raises :class:`ChartError`,
        or :class:`RegistryError` / :class:`PathNotFound` when content is missing (not cached)."""
        cached = self._cache.get(digest)
        if cached is None:
            task = self._reading.get(digest)
            if task is None:
                task = asyncio.create_task(self._read(repository, digest))
                self._reading[digest] = task
                task.add_done_callback(lambda _t: self._reading.pop(digest, None))
            cached = await asyncio.shield(task)
            self._remember(digest, cached)
        else:
            self._cache.move_to_end(digest)
        if isinstance(cached, ChartError):
            raise cached
        return cached

    def _remember(self, digest: str, value: ChartFiles | ChartError) -> None:
        if digest in self._cache:
            return
        cost = value.cost if isinstance(value, ChartFiles) else 512
        if cost > self._budget:
            return
        self._cache[digest] = value
        self._used += cost
        while self._used > self._budget:
            _, evicted = self._cache.popitem(last=False)
            self._used -= evicted.cost if isinstance(evicted, ChartFiles) else 512

    async def _read(self, repository: str, digest: str) -> ChartFiles | ChartError:
        """The files, or the (cacheable) reason they cannot be read. Missing content raises."""
        try:
            layer = _chart_layer(await self._manifests.content(Digest.parse(digest)))
        except ChartError as error:
            return error
        content = await self._blobs.open(repository, layer)  # BLOB_UNKNOWN if not linked here
        stream = aiter(self._blobs.stream(content))
        loop = asyncio.get_running_loop()

        async def step() -> bytes | None:
            try:
                return bytes(await anext(stream))  # a copy: chunks may be views of a map
            except StopAsyncIteration:
                return None

        def chunks() -> Iterator[bytes]:
            while (chunk := asyncio.run_coroutine_threadsafe(step(), loop).result()) is not None:
                yield chunk

        try:
            return await asyncio.to_thread(read_chart, chunks())
        except ChartError as error:
            return error
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()


# What :meth:`ChartAdditions.files` raises when content is missing from storage (not cached).
MISSING_CONTENT = (RegistryError, PathNotFound)
