"""Flower, the optional dashboard: refuses to start open, and behind basic auth sees the real
worker on the real Redis."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.serve import free_port
from tests.worker.conftest import ROOT, Workers

pytestmark = pytest.mark.redis


def _get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_flower_needs_credentials(worker_env: dict[str, str]) -> None:
    for value in ("", "admin", "admin:", ":secret"):
        env = {**worker_env, "FLOWER_BASIC_AUTH": value}
        command = [sys.executable, "-m", "worker.flower"]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 2 and "FLOWER_BASIC_AUTH" in done.stderr


def test_flower_behind_basic_auth_sees_the_worker(worker_env: dict[str, str], tmp_path: Path) -> None:
    workers = Workers(worker_env, tmp_path)
    workers.start_as_readme(concurrency=1)
    port = free_port()
    env = {**worker_env, "FLOWER_BASIC_AUTH": "ops:s3cret"}
    log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115 - closed below
    flower = subprocess.Popen(
        [sys.executable, "-m", "worker.flower", f"--port={port}", "--address=127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        workers_seen: dict[str, object] = {}
        while time.monotonic() < deadline and not workers_seen:
            assert flower.poll() is None, (tmp_path / "flower.log").read_text()
            try:
                status, body = _get(url + "/api/workers?refresh=1", "ops:s3cret")
                if status == 200:
                    workers_seen = json.loads(body)
            except (urllib.error.URLError, ConnectionError):
                pass
            if not workers_seen:
                time.sleep(1)
        assert workers_seen, "Flower never listed the worker"
        assert all(name.startswith("celery@") for name in workers_seen)
        assert _get(url + "/api/workers")[0] == 401
        assert _get(url + "/api/workers", "ops:wrong")[0] == 401
        assert b"s3cret" not in Path(f"/proc/{flower.pid}/cmdline").read_bytes()
    finally:
        flower.terminate()
        flower.wait(30)
        log.close()
        workers.stop_all()


def test_compose_has_flower_behind_its_profile_and_loopback() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    flower = compose["services"]["flower"]
    assert flower["profiles"] == ["flower"] and flower["build"]["target"] == "flower"
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "${FLOWER_BASIC_AUTH:-}"
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])
    assert "FROM cpu-base AS flower" in (ROOT / "Dockerfile").read_text()
    compose_bin = shutil.which("docker-compose")
    if compose_bin is None:
        pytest.skip("docker-compose is not installed: the file is checked, not validated by compose")
    env = {**os.environ, "FLOWER_BASIC_AUTH": "ops:s3cret"}
    done = subprocess.run([compose_bin, "--profile", "flower", "config", "-q"], cwd=ROOT, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
