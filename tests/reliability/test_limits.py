"""Limits that hold before a body is read, on the real server: a key-less upload is refused
unread, an oversize chunked upload gets 413, a stalled one 408, 401 comes before 422, and
connections that never finish their request head are closed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.serve import start_server

KEY = "s3cret"
HEAD_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def keyed_server(tiny_checkpoint: Path) -> Iterator[str]:
    proc, url = start_server(
        {
            "FACEEDIT_CHECKPOINT": str(tiny_checkpoint),
            "FACEEDIT_API_KEY": KEY,
            "FACEEDIT_MAX_UPLOAD_BYTES": "1000000",
            "FACEEDIT_BODY_TIMEOUT_S": "2",
            "FACEEDIT_HEAD_TIMEOUT_S": str(HEAD_TIMEOUT_S),
        },
        ready_headers={"X-API-Key": KEY},
    )
    yield url
    proc.terminate()
    proc.wait(10)


def _raw(url: str, head: str, body: bytes, read_timeout: float = 60) -> str:
    """Send a request head and part of a body, then read the answer without sending the rest."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            chunk = s.recv(65536)  # head and body may come in separate packets
            if not chunk:
                break
            answer += chunk
        return answer.decode(errors="replace")


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_a_keyless_upload_is_refused_before_its_body_is_read(keyed_server: str) -> None:
    head = "POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    head += "Content-Length: 900000\r\n"
    answer = _raw(keyed_server, head, b"--b\r\n" + b"x" * 1000)  # 899 KB never sent
    assert answer.startswith("HTTP/1.1 401") and "X-API-Key" in answer


def test_401_comes_before_validation(keyed_server: str) -> None:
    r = httpx.post(
        keyed_server + "/edits/optimized", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 401
    open_routes = [httpx.get(keyed_server + p).status_code for p in ("/health", "/", "/openapi.json")]
    assert open_routes == [200, 200, 200]
    assert httpx.get(keyed_server + "/attributes", headers={"X-API-Key": KEY}).status_code == 200


def test_oversize_chunked_upload_is_413(keyed_server: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(200):  # 3.2 MB, no Content-Length: only counting the stream can stop it
            yield b"\0" * 16_384

    r = httpx.post(
        keyed_server + "/encode",
        content=chunks(),
        headers={"X-API-Key": KEY, "content-type": "multipart/form-data; boundary=b"},
        timeout=60,
    )
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_a_stalled_upload_gets_408(keyed_server: str) -> None:
    head = f"POST /encode HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
    head += "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n"
    answer = _raw(keyed_server, head, b"--b\r\n")  # then silence; the server gives up after 2 s
    assert answer.startswith("HTTP/1.1 408")


def test_half_sent_request_heads_are_closed_by_the_server(keyed_server: str) -> None:
    host, port = keyed_server.removeprefix("http://").split(":")
    conns = []
    t0 = time.monotonic()
    for i in range(100):  # as a slowloris client: half a head, or nothing at all, then silence
        s = socket.create_connection((host, int(port)), timeout=60)
        if i % 4:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: 1\r\n" * (i % 3))
        conns.append(s)
    answers = []
    for s in conns:  # each blocks until the server answers and closes (or the 60 s socket timeout)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        answers.append(data)
        s.close()
    took = time.monotonic() - t0
    assert all(a == b"" or a.startswith(b"HTTP/1.1 408") for a in answers), {a[:40] for a in answers}
    assert sum(a.startswith(b"HTTP/1.1 408") for a in answers) == 100
    assert HEAD_TIMEOUT_S * 0.9 <= took < 30, f"closed after {took:.1f} s"  # by the head timeout, not at once
    assert httpx.get(keyed_server + "/health").status_code == 200  # whole requests are still served
