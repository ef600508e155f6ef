"""ASGI middleware that answers before a body is read: wrong API key, a client over its share,
too large, too slow.

They run outside FastAPI's routing, so a request without the key is refused before its
upload is read (no memory held for strangers) and before any validation (401, not 422), and a
client over its share is refused before its upload is read or any work is done (429).
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Open with an API key set: liveness, and what carries no user data (the page and the API's docs).
OPEN_PATHS = ("/health", "/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
OPEN_PREFIXES = ("/static/",)


async def answer(send: Send, status: int, detail: str, retry_after_s: int | None = None) -> None:
    content: dict[str, object] = {"detail": detail}
    headers = [(b"content-type", b"application/json")]
    if retry_after_s is not None:
        content["retry_after_s"] = retry_after_s
        headers.append((b"retry-after", str(retry_after_s).encode()))
    body = json.dumps(content).encode()
    headers.append((b"content-length", str(len(body)).encode()))
    if status in (408, 413, 429):
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ApiKey:
    """401 for every path but OPEN_PATHS unless X-API-Key matches; nothing is read first."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-api-key", b"")
        if not secrets.compare_digest(given, self.key):
            await answer(send, 401, "missing or wrong X-API-Key")
            return
        await self.app(scope, receive, send)


# What a request costs a client's bucket, in slider moves (an edit of a stored face as the page's
# slider asks for it, a tile: ~12 ms of CPU): about what it takes from the others. An upload runs
# detection and the refined inversion (~0.5 s in one go: priced above its CPU time, since every
# slider move it overlaps is slowed; benchmarks/fairness.py); a custom attribute encodes up to 24
# photos (capped at the bucket's size, so it can always pass); an optimised edit is ~2 s of a
# worker's CPU (the queue has its own bound, 429 too). Not listed: free (health, readiness, metrics,
# the page, the docs, and deletions: a person may always delete their photo and stop their jobs).
ROUTE_COSTS: dict[tuple[str, str], tuple[str, float]] = {
    ("POST", "/encode"): ("upload", 60.0),
    ("POST", "/attributes/custom"): ("custom", 1000.0),
    ("POST", "/edits/optimized"): ("job", 30.0),
    ("GET", "/interpolate"): ("morph", 3.0),
    ("GET", "/generate"): ("generate", 3.0),
    ("GET", "/attributes"): ("read", 0.5),
}
SLIDER, UPLOAD = ("edit", 1.0), ("upload", 60.0)
JOB_READ = ("read", 0.2)  # /jobs/{id}, /jobs/{id}/result: the page polls 3 times a second


def route_cost(method: str, path: str, content_type: bytes) -> tuple[str, float] | None:
    """(route class, tokens) of a request; None for the free ones."""
    if method == "POST" and path == "/edit":
        return UPLOAD if content_type.startswith(b"multipart/") else SLIDER
    if method == "GET" and path.startswith("/jobs/"):
        return JOB_READ
    return ROUTE_COSTS.get((method, path))


class TokenBuckets:
    """One token bucket per client: `burst` tokens at most, refilled at `rate` tokens a second. A
    request takes its cost, on credit if its tokens will be there within `max_delay` s (it waits
    for them), or is refused. The least recently seen clients past `max_clients` are forgotten
    (they come back with a full bucket, as an idle client would have)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        max_clients: int,
        max_delay: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_clients, self.max_delay = rate, burst, max_clients, max_delay
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)

    def take(self, client: str, cost: float) -> float:
        """Seconds until the client has `cost` tokens: up to `max_delay`, they are taken (the
        request waits that long, then runs); past it, nothing is taken (the request is refused)."""
        cost = min(cost, self.burst)
        now = self.clock()
        tokens, then = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = max(0.0, (cost - tokens) / self.rate)
        if wait <= self.max_delay:
            tokens -= cost  # below 0 on credit: the refill during the wait pays it back
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


class FairShare:
    """Each client's share: a token bucket per API key (when the service has one, its holders share
    it) or per client address, each request weighted by its route's cost (`route_cost`), so one
    client that floods the expensive routes cannot take the CPU from everyone else's sliders. A
    request whose tokens come within the buckets' `max_delay` waits for them (a fast slider drag is
    slowed, not refused); a later one is refused with 429 and Retry-After, after the same delay,
    so that a client ignoring Retry-After sends at most one request per connection and delay, and
    its refusals cost the service next to nothing. Runs on the event loop: no lock; per process."""

    def __init__(
        self, app: ASGIApp, buckets: TokenBuckets, by_key: bool, refused: Callable[[str], None] | None = None
    ) -> None:
        self.app, self.buckets, self.by_key, self.refused = app, buckets, by_key, refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        cost = route_cost(scope.get("method", ""), scope.get("path", ""), headers.get(b"content-type", b""))
        if cost is None:
            await self.app(scope, receive, send)
            return
        key = headers.get(b"x-api-key") if self.by_key else None
        client = "key:" + key.decode("latin-1") if key else "addr:" + (scope.get("client") or ("?", 0))[0]
        wait = self.buckets.take(client, cost[1])
        delay = self.buckets.max_delay
        if wait > delay:
            if self.refused is not None:
                self.refused(cost[0])
            await asyncio.sleep(delay)  # a sleeping coroutine: nothing read, next to nothing held
            retry = max(1, math.ceil(wait - delay))
            await answer(send, 429, f"this client is over its share of the service; try again in {retry} s", retry)
            return
        if wait > 0:
            await asyncio.sleep(wait)
        await self.app(scope, receive, send)


class BodyLimits:
    """413 for a body over `limit` bytes (by its Content-Length, or as it streams in, chunked or
    not) and 408 when a client sends nothing for `timeout_s` mid-body: the app is told the
    client left, and this middleware answers in its place."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float) -> None:
        self.app, self.limit, self.timeout_s = app, limit, timeout_s
        self.too_large = (413, f"the upload is larger than the limit of {limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await answer(send, *self.too_large)
            return
        received, started, body_done = 0, False, False
        refusal: tuple[int, str] | None = None

        async def limited_receive() -> Message:
            nonlocal received, refusal, body_done
            if refusal is not None:
                return {"type": "http.disconnect"}
            if body_done:  # after the body, receive() waits for a disconnect: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                refusal = (408, f"the upload stalled: nothing arrived for {self.timeout_s:g} s")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.limit:
                    refusal = self.too_large
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None and not started:
                return  # the app's answer to a "disconnected" client is replaced by ours
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if refusal is None:
                raise
        if refusal is not None and not started:
            await answer(send, *refusal)
