"""Real pieces for queue tests: a redis-server on a free port and Celery worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.serve import free_port

ROOT = Path(__file__).resolve().parents[2]


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=False, capture_output=True)
        path = shutil.which("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed and could not be installed (apt-get install redis-server)")
    return path


class RedisServer:
    def __init__(self, port: int, workdir: Path, maxmemory: str = "64mb") -> None:
        self.port, self.workdir, self.maxmemory = port, workdir, maxmemory
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # as in the compose deployment: appendonly, so queued jobs survive a restart; bounded
        # memory that evicts only keys with a TTL (latents, photos, results), never the queue
        self.proc = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--maxmemory",
                self.maxmemory,
                "--maxmemory-policy",
                "volatile-lru",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill: no shutdown, what the append-only file had is what comes back."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


class Workers:
    """Starts Celery worker processes with the service's settings in their environment."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env, self.logdir, self.procs = env, logdir, []  # type: ignore[var-annotated]

    def start(self) -> subprocess.Popen[bytes]:
        """A lean worker: one process (solo pool), no gossip: quick to start and to kill whole."""
        return self._start(["--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat"])

    def start_as_readme(self, concurrency: int | None = None) -> subprocess.Popen[bytes]:
        """A worker started as `make worker` starts it: Celery's prefork pool at its default
        concurrency (one child per CPU), gossip, mingle and heartbeats on; or --concurrency=N."""
        return self._start([] if concurrency is None else [f"--concurrency={concurrency}"])

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.logdir / f"worker-{self.procs.index(proc)}.log").read_text(errors="replace")

    def _start(self, options: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        command = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "edits"]
        command.append("--loglevel=INFO")
        proc = subprocess.Popen(
            command + options, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                # the whole process group: a prefork worker's pool children die with it
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


@pytest.fixture
def worker_env(redis_server: RedisServer, tiny_checkpoint: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FACEEDIT_REDIS_URL": redis_server.url,
        "FACEEDIT_CHECKPOINT": str(tiny_checkpoint),
        "FACEEDIT_JOB_ORPHAN_AFTER_S": "3",
        "FACEEDIT_JOB_MAX_RETRIES": "1",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def workers(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    w = Workers(worker_env, tmp_path)
    yield w
    w.stop_all()
