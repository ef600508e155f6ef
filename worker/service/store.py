"""Short-lived storage for latents, uploaded photos and job records: Redis or memory.

Keys expire with their TTL in both. Nothing is written to disk by the service itself.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Literal, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.pipeline.errors import Unavailable

Kind = Literal["latent", "face", "photo", "uses", "job", "result", "strokes", "attribute"]


def key(kind: Kind, item_id: str) -> str:
    """Store key of one item: a face's z, aligned crop or photo, the ids of the jobs that used it;
    a job's record, strokes or result; a custom attribute."""
    return f"{kind}:{item_id}"


class Store(Protocol):
    def put(self, key: str, value: bytes, ttl_s: int | None) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...
    # Start the TTL of the keys that exist again (a face in use is kept `ttl_s` after its last use).
    def touch(self, keys: list[str], ttl_s: int) -> None: ...
    def ping(self) -> bool: ...
    # Compare-and-set: write `value` only if the key holds exactly `expected` (None: is absent).
    # Job state changes go through it, so two processes cannot both move a job on.
    def swap(self, key: str, expected: bytes | None, value: bytes, ttl_s: int | None) -> bool: ...
    # A set of short strings without a TTL (the ids of active jobs), never evicted.
    def add_member(self, key: str, member: str) -> None: ...
    def remove_member(self, key: str, member: str) -> None: ...
    def members(self, key: str) -> list[str]: ...


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
        self._sets: dict[str, set[str]] = {}  # job ids only: a few bytes each, not counted
        self._lock = threading.Lock()
        self.max_bytes = max_bytes
        self.size = 0  # bytes of keys and values held

    def put(self, key: str, value: bytes, ttl_s: int | None) -> None:
        with self._lock:
            self._put(key, value, ttl_s)

    def swap(self, key: str, expected: bytes | None, value: bytes, ttl_s: int | None) -> bool:
        with self._lock:
            item = self._data.get(key)
            current = item[1] if item is not None and item[0] > time.monotonic() else None
            if current != expected:
                return False
            self._put(key, value, ttl_s)
            return True

    def _put(self, key: str, value: bytes, ttl_s: int | None) -> None:
        """Store under the lock the caller holds."""
        now = time.monotonic()
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

    def touch(self, keys: list[str], ttl_s: int) -> None:
        now = time.monotonic()
        with self._lock:
            for k in keys:
                item = self._data.get(k)
                if item is not None and item[0] > now:
                    self._data[k] = (now + ttl_s, item[1], ttl_s)

    def add_member(self, key: str, member: str) -> None:
        with self._lock:
            self._sets.setdefault(key, set()).add(member)

    def remove_member(self, key: str, member: str) -> None:
        with self._lock:
            self._sets.get(key, set()).discard(member)

    def members(self, key: str) -> list[str]:
        with self._lock:
            return list(self._sets.get(key, ()))

    def ping(self) -> bool:
        return True


class RedisStore:
    """Redis with short timeouts: a Redis that is down gives a 503 at once, never a hang.

    After a failure, calls fail fast for `cooldown_s` instead of each waiting out a timeout,
    so a frozen Redis (SIGSTOP, a full network buffer) cannot tie up every request thread.
    """

    # Compare-and-set in one step on the server (job state changes; see Store.swap).
    SWAP = """
    local current = redis.call('GET', KEYS[1])
    if ARGV[1] == 'absent' then
        if current then return 0 end
    elseif current ~= ARGV[2] then
        return 0
    end
    if ARGV[4] == '' then
        redis.call('SET', KEYS[1], ARGV[3])
    else
        redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
    end
    return 1
    """

    def __init__(self, url: str, cooldown_s: float = 1.0) -> None:
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=1.0, retry=no_retry_on_timeout()
        )
        self.cooldown_s = cooldown_s
        self._down_until = 0.0
        self._swap = self.client.register_script(self.SWAP)

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

    def touch(self, keys: list[str], ttl_s: int) -> None:
        def expire() -> None:
            with self.client.pipeline(transaction=False) as pipe:
                for k in keys:
                    pipe.expire(k, ttl_s)
                pipe.execute()

        self._call(expire)

    def swap(self, key: str, expected: bytes | None, value: bytes, ttl_s: int | None) -> bool:
        args = ["absent" if expected is None else "value", expected or b"", value, "" if ttl_s is None else ttl_s]
        return bool(self._call(self._swap, [key], args))

    def add_member(self, key: str, member: str) -> None:
        self._call(self.client.sadd, key, member)

    def remove_member(self, key: str, member: str) -> None:
        self._call(self.client.srem, key, member)

    def members(self, key: str) -> list[str]:
        return [m.decode() for m in self._call(self.client.smembers, key)]

    def ping(self) -> bool:
        try:
            return bool(self._call(self.client.ping))
        except Unavailable:
            return False


def no_retry_on_timeout() -> Retry:
    """One reconnect when a pooled socket has died (Redis restarted), no retry on a timeout:
    redis-py's default retries timeouts too, so a frozen Redis would cost several timeouts per call."""
    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


def make_store(redis_url: str | None, memory_max_bytes: int = 256 * 1024 * 1024) -> Store:
    return RedisStore(redis_url) if redis_url else MemoryStore(memory_max_bytes)
