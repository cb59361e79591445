"""Small in-process caches for facts that hot paths would otherwise fetch from the database.

Only facts that a local write can invalidate are cached, and every write that changes them
calls :meth:`LRUCache.discard`. Entries also expire after ``ttl`` seconds, which bounds how long
another replica's change (a deleted blob, a moved tag) can go unseen here.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["LRUCache"]

K = TypeVar("K")
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    def __init__(self, max_entries: int, ttl: float) -> None:
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        """Forget ``key``. If no such key exists, this is a no-op."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
