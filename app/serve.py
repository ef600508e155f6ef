"""Run the real service in a subprocess on a free loopback port (tests and benchmarks use it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    env: dict[str, str], ready_headers: dict[str, str] | None = None, root: Path = ROOT
) -> tuple[subprocess.Popen[bytes], str]:
    """uvicorn serving the app of the checkout at `root` (this one by default) on a free loopback
    port, returned once /ready answers 200."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--log-level", "warning"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), **env},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # generous: importing torch on a slow machine takes a while
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode}")
        try:
            if httpx.get(url + "/ready", headers=ready_headers, timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the service did not start within 180 s")
