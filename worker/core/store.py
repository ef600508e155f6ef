"""Short-lived storage for latents, uploaded photos and job records: Redis or memory.

Keys expire with their TTL in both. Nothing is written to disk by the service itself.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Literal, Protocol

import redis

from worker.core.errors import Unavailable

Kind = Literal["latent", "face", "photo", "job", "result", "strokes", "attribute"]


def key(kind: Kind, item_id: str) -> str:
    """Store key of one item: a face's z, aligned crop or photo; a job's record, strokes or result;
    a custom attribute."""
    return f"{kind}:{item_id}"


class Store(Protocol):
    def put(self, key: str, value: bytes, ttl_s: int | None) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...
    def ping(self) -> bool: ...


class MemoryStore:
    """The embedded default: a dict with expiry, capped in bytes, thread-safe, least recently
    used first out.

    A read is a use: it moves the item to the young end and starts its TTL again, so the face
    a user is editing is the last thing evicted however many others upload after it. Over the
    cap, expired items go first, then the least recently used items that have a TTL; items
    without one (active job records) are never evicted, as Redis's volatile-lru policy does.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self._data: dict[str, tuple[float, bytes, int | None]] = {}  # key -> (expiry, value, ttl); use order
        self._lock = threading.Lock()
        self.max_bytes = max_bytes
        self.size = 0  # bytes of keys and values held

    def put(self, key: str, value: bytes, ttl_s: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            self._pop(key)  # re-insert at the end: dict order is use order
            self._data[key] = (math.inf if ttl_s is None else now + ttl_s, value, ttl_s)
            self.size += len(key) + len(value)
            if self.size > self.max_bytes:
                for k in [k for k, (expiry, _, _) in self._data.items() if expiry <= now]:
                    self._pop(k)  # expired first
                for k in [k for k, (expiry, _, _) in self._data.items() if expiry < math.inf]:
                    if self.size <= self.max_bytes:
                        break
                    self._pop(k)

    def _pop(self, key: str) -> None:
        item = self._data.pop(key, None)
        if item is not None:
            self.size -= len(key) + len(item[1])

    def get(self, key: str) -> bytes | None:
        now = time.monotonic()
        with self._lock:
            item = self._data.pop(key, None)
            if item is None or item[0] <= now:
                if item is not None:
                    self.size -= len(key) + len(item[1])
                return None
            expiry, value, ttl = item
            self._data[key] = (expiry if ttl is None else now + ttl, value, ttl)  # used: young again
            return value

    def delete(self, key: str) -> None:
        with self._lock:
            self._pop(key)

    def ping(self) -> bool:
        return True


class RedisStore:
    """Redis with short timeouts: a Redis that is down gives a 503 at once, never a hang.

    After a failure, calls fail fast for `cooldown_s` instead of each waiting out a timeout,
    so a frozen Redis (SIGSTOP, a full network buffer) cannot tie up every request thread.
    """

    def __init__(self, url: str, cooldown_s: float = 1.0) -> None:
        self.client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0, retry_on_timeout=False)
        self.cooldown_s = cooldown_s
        self._down_until = 0.0

    def _call(self, fn, *args):  # type: ignore[no-untyped-def]
        if time.monotonic() < self._down_until:
            raise Unavailable("the job store (Redis) is unreachable; try again shortly")
        try:
            return fn(*args)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            self._down_until = time.monotonic() + self.cooldown_s
            raise Unavailable("the job store (Redis) is unreachable; try again shortly") from e
        except redis.exceptions.OutOfMemoryError as e:  # full of keys it may not evict
            raise Unavailable("the job store (Redis) is full; try again shortly") from e

    def put(self, key: str, value: bytes, ttl_s: int | None) -> None:
        self._call(self.client.set, key, value, ttl_s)  # ttl_s None: kept, and never evicted

    def get(self, key: str) -> bytes | None:
        return self._call(self.client.get, key)  # type: ignore[no-any-return]

    def delete(self, key: str) -> None:
        self._call(self.client.delete, key)

    def ping(self) -> bool:
        try:
            return bool(self._call(self.client.ping))
        except Unavailable:
            return False


def make_store(redis_url: str | None, memory_max_bytes: int = 256 * 1024 * 1024) -> Store:
    return RedisStore(redis_url) if redis_url else MemoryStore(memory_max_bytes)
