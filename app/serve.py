"""How the service is served: uvicorn with an HTTP protocol that times out request heads, and
`start_server`, the real service in a subprocess on a free loopback port (tests, benchmarks).

uvicorn arms no timer until a connection has sent a whole request head (its keep-alive timeout
starts after a response), so a client that connects and sends half a head holds a socket and
a file descriptor for ever; a few hundred of them exhaust the process. `HeadTimeoutProtocol`
gives every head `FACEEDIT_HEAD_TIMEOUT_S`, counted from the connection (or, on a kept-alive
connection, from the head's first byte), then answers 408 and closes. Serve with it:

    uvicorn --factory app.main:create_app --http app.serve:HeadTimeoutProtocol
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
APP_FACTORY = "app.main:create_app"  # `uvicorn --factory`: the app is built when served, not imported
HTTP_PROTOCOL = "app.serve:HeadTimeoutProtocol"
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 24\r\nconnection: close\r\n\r\nthe request head stalled"
)


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for each request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout_s = get_settings().head_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is a stalled head too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # not re-armed by the first byte: the deadline counts from the connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()  # the body has its own limit (BodyLimits: FACEEDIT_BODY_TIMEOUT_S)
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # never in the middle of another answer
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str, headers: dict[str, str] | None) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=1) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_server(
    env: dict[str, str],
    ready_headers: dict[str, str] | None = None,
    root: Path = ROOT,
    python: str = sys.executable,
    factory: bool = True,
) -> tuple[subprocess.Popen[bytes], str]:
    """uvicorn serving the app of the checkout at `root` (this one by default) on a free loopback
    port, with the head timeout, returned once /ready answers 200. Another checkout (a benchmark's
    baseline) is served as uvicorn serves it by default: it may not have HeadTimeoutProtocol.
    `python` is the interpreter (another virtual environment's, to try another Python); with
    `factory` False, this checkout is served by FastAPI's convention, `uvicorn app.main:app`."""
    port = free_port()
    command = [python, "-m", "uvicorn", "--port", str(port), "--log-level", "warning"]
    if root == ROOT and factory:
        command += ["--factory", APP_FACTORY, "--http", HTTP_PROTOCOL]
    else:
        command += ["app.main:app"]
    proc = subprocess.Popen(command, cwd=root, env={**os.environ, "PYTHONPATH": str(root), **env})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # generous: importing torch on a slow machine takes a while
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode}")
        if _ready(url + "/ready", ready_headers):
            return proc, url
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the service did not start within 180 s")
