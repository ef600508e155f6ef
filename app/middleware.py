"""ASGI middleware that answers before a body is read: wrong API key, too large, too slow.

Both run outside FastAPI's routing, so a request without the key is refused before its
upload is read (no memory held for strangers) and before any validation (401, not 422).
"""

from __future__ import annotations

import asyncio
import json
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Open with an API key set: liveness, and what carries no user data (the page and the API's docs).
OPEN_PATHS = ("/health", "/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
OPEN_PREFIXES = ("/static/",)


async def answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (408, 413):
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
