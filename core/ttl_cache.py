"""A small thread-safe in-process cache whose entries expire: verified tokens, known tenants."""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, *, max_entries: int = 10_000) -> None:
        self._entries: dict[str, tuple[float, V]] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def get(self, key: str) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] <= time.time():
            return None
        return entry[1]

    def set(self, key: str, value: V, *, valid_until: float) -> None:
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = (valid_until, value)

    def discard(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
