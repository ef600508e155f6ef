"""A bad day, bounded: the README's own processes under mixed traffic while Redis, the worker and
the API are killed and restarted at random moments, and Redis is frozen once.

Started here, on loopback only: redis-server as the compose file runs it (append-only, everysec,
volatile-lru), the API as `make serve` runs it (uvicorn --factory, HeadTimeoutProtocol) with
FACEEDIT_REDIS_URL, and one worker as `make worker` runs it (Celery's prefork pool at its default
concurrency). `--clients` clients, each from its own loopback address, encode a photo, drag sliders,
queue optimised edits and poll them, cancel some, and delete their photo now and then, at a bounded
pace, for `--minutes`. Meanwhile, one fault every `--fault-every` seconds or so (seeded): Redis
SIGKILLed and restarted, the worker's whole process group SIGKILLed and restarted, one of its pool
children SIGKILLed (Celery replaces it), the API SIGKILLed and restarted, and once Redis SIGSTOPped
for `--freeze-s`, then SIGCONTed. After each fault ends, a probe measures how long until the
service works again (Redis and API faults: /ready and a stored write; worker faults: a probe job).
At the end the traffic stops, every job is followed until it ends or `--drain-s` runs out.

Printed: jobs accepted, succeeded, failed (by reason), cancelled, lost (accepted, then unknown
before it ended) and stuck (neither ended nor lost after the drain); answers by status, 5xx other
than 503 with their routes; the longest recovery after each kind of fault; the API's and the
worker's RSS (the worker's pool children load the model at their first job) and Redis's memory at
the end against the start, and the API process's peak RSS (with `--memory-limit`, its limit).

    python -m benchmarks.chaos [--minutes 10] [--clients 4] [--fault-every 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from benchmarks.common import PHOTOS, ROOT, free_port, rss_mb
from benchmarks.memory import high_water_mb

FAULTS = ("redis-kill", "worker-kill", "child-kill", "api-kill")
ENDED = ("succeeded", "failed", "cancelled")


class Processes:
    """Redis, the API and the worker, started as the README starts them, killed and restarted on demand."""

    def __init__(self, workdir: Path, checkpoint: str, memory_limit: int | None = None) -> None:
        self.workdir = workdir
        self.redis_port, self.api_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FACEEDIT_REDIS_URL": self.redis_url,
            "FACEEDIT_CHECKPOINT": checkpoint,
            **({"FACEEDIT_MEMORY_LIMIT_BYTES": str(memory_limit)} if memory_limit else {}),
        }
        self.redis: subprocess.Popen[bytes] | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.starts: collections.Counter[str] = collections.Counter()

    def _log(self, name: str) -> Any:
        self.starts[name] += 1
        return open(self.workdir / f"{name}-{self.starts[name]}.log", "wb")  # noqa: SIM115 - the process holds it

    def start_redis(self) -> None:
        command = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        command += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        command += ["--maxmemory", "1gb", "--maxmemory-policy", "volatile-lru"]
        self.redis = subprocess.Popen(command, stdout=self._log("redis"), stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.redis_url, socket_timeout=1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def start_api(self) -> None:
        command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
        command += ["--http", "app.serve:HeadTimeoutProtocol", "--host", "127.0.0.1", "--port", str(self.api_port)]
        command += ["--log-level", "warning"]
        self.api = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=self._log("api"), stderr=subprocess.STDOUT)

    def start_worker(self) -> None:
        command = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "edits"]
        log = self._log("worker")
        self.worker = subprocess.Popen(
            [*command, "--loglevel=INFO"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, name: str) -> None:
        proc = getattr(self, name)
        if proc is None:
            return
        if name == "worker":
            os.killpg(proc.pid, signal.SIGKILL)  # the main process and its pool children
        else:
            proc.kill()
        proc.wait(30)
        setattr(self, name, None)

    def worker_children(self) -> list[int]:
        if self.worker is None:
            return []
        try:
            text = Path(f"/proc/{self.worker.pid}/task/{self.worker.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def rss(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.api is not None:
            out["api_mb"] = round(rss_mb(self.api.pid))
            out["api_peak_mb"] = round(high_water_mb(self.api.pid))  # this API process's, since it started
        if self.worker is not None:
            pids = [self.worker.pid, *self.worker_children()]
            out["worker_mb"] = round(sum(rss_mb(p) for p in pids if Path(f"/proc/{p}").exists()))
        try:
            info = redis.Redis.from_url(self.redis_url, socket_timeout=2).info("memory")
            out["redis_used_mb"] = round(info["used_memory"] / 2**20, 1)
            out["redis_rss_mb"] = round(info["used_memory_rss"] / 2**20, 1)
        except redis.RedisError:
            pass
        return out

    def stop(self) -> None:
        for name in ("api", "worker", "redis"):
            proc = getattr(self, name)
            if proc is not None and proc.poll() is None:
                if name == "redis" and proc.pid:
                    os.kill(proc.pid, signal.SIGCONT)
                self.kill(name)


@dataclass
class Job:
    id: str
    accepted_at: float
    cancel_asked: bool = False
    photo_deleted: bool = False
    status: str = "queued"
    error: str | None = None
    lost: bool = False


@dataclass
class Tally:
    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)  # 5xx other than 503
    unreachable: int = 0  # connection refused or reset: the API was down
    jobs: dict[str, Job] = field(default_factory=dict)

    def note(self, route: str, r: httpx.Response) -> None:
        self.answers[f"{r.status_code}"] += 1
        if r.status_code >= 500 and r.status_code != 503:
            self.server_errors.append(f"{route} {r.status_code} {r.text[:160]}")


async def call(
    http: httpx.AsyncClient, tally: Tally, route: str, method: str, path: str, **kw: Any
) -> httpx.Response | None:
    try:
        r = await http.request(method, path, **kw)
    except httpx.HTTPError:
        tally.unreachable += 1
        return None
    tally.note(route, r)
    if r.status_code in (429, 503):
        await asyncio.sleep(min(5.0, float(r.headers.get("retry-after", 1))))
    return r


async def follow(http: httpx.AsyncClient, tally: Tally, job: Job) -> None:
    r = await call(http, tally, "/jobs/{id}", "GET", f"/jobs/{job.id}")
    if r is None or r.status_code in (429, 503):
        return
    if r.status_code == 404:
        job.lost = True
        return
    body = r.json()
    job.status, job.error = body["status"], body.get("error")


async def user(url: str, address: str, photo: bytes, tally: Tally, stop_at: float, rng: random.Random) -> None:
    """One person's session, again and again: upload, drag, refine, sometimes cancel or delete."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30) as http:
        latent: str | None = None
        mine: list[Job] = []
        while time.monotonic() < stop_at:
            await asyncio.sleep(rng.uniform(0.2, 0.6))
            for job in [j for j in mine if j.status not in ENDED and not j.lost]:
                await follow(http, tally, job)
            if latent is None:
                r = await call(http, tally, "/encode", "POST", "/encode", files={"file": ("p.png", photo)})
                latent = r.json()["latent_id"] if r is not None and r.status_code == 200 else None
                continue
            roll = rng.random()
            if roll < 0.65:
                params = {"latent_id": latent, "attribute": "Smiling", "strength": rng.uniform(-2, 2), "tile": "true"}
                r = await call(http, tally, "/edit", "POST", "/edit", params=params)
                if r is not None and r.status_code == 404:
                    latent = None  # lost with Redis's last second, or expired: upload again
            elif roll < 0.8:
                body = {"latent_id": latent, "steps": rng.choice([20, 50, 100]), "lr": 0.05}
                r = await call(http, tally, "/edits/optimized", "POST", "/edits/optimized", json=body)
                if r is not None and r.status_code == 202:
                    job = Job(r.json()["job_id"], time.monotonic())
                    tally.jobs[job.id] = job
                    mine.append(job)
                elif r is not None and r.status_code == 404:
                    latent = None
            elif roll < 0.9:
                active = [j for j in mine if j.status not in ENDED and not j.lost]
                if active:
                    job = rng.choice(active)
                    r = await call(http, tally, "DELETE /jobs/{id}", "DELETE", f"/jobs/{job.id}")
                    if r is not None and r.status_code == 200:
                        job.cancel_asked = True
            elif roll < 0.94:
                r = await call(http, tally, "DELETE /latents/{id}", "DELETE", f"/latents/{latent}")
                if r is not None and r.status_code in (204, 404):
                    for job in mine:
                        job.photo_deleted = True
                    latent = None


async def works(url: str, kind: str, probe: dict[str, str], deadline_s: float) -> float | None:
    """Seconds until the service works again after a fault (None: not within the deadline)."""
    t0 = time.monotonic()
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.250")
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=10) as http:
        while time.monotonic() - t0 < deadline_s:
            try:
                if kind.startswith(("redis", "api")):
                    ok = (await http.get("/ready")).status_code == 200
                    ok = ok and (await http.get("/generate", params={"n": 1, "format": "json"})).status_code == 200
                else:
                    ok = await probe_job(http, probe, t0 + deadline_s)
                if ok:
                    return round(time.monotonic() - t0, 1)
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)
    return None


async def probe_job(http: httpx.AsyncClient, probe: dict[str, str], deadline: float) -> bool:
    """A short optimised edit queued and followed to its end: the worker side works."""
    r = await http.post("/edits/optimized", json={"latent_id": probe["latent"], "steps": 5})
    if r.status_code == 404:  # the probe's face went with Redis's last second: encode it again
        r = await http.post("/encode", files={"file": ("p.png", probe_photo())})
        if r.status_code == 200:
            probe["latent"] = r.json()["latent_id"]
        return False
    if r.status_code != 202:
        return False
    job_id = r.json()["job_id"]
    while time.monotonic() < deadline:
        s = await http.get(f"/jobs/{job_id}")
        if s.status_code == 200 and s.json()["status"] in ENDED:
            return bool(s.json()["status"] == "succeeded")
        await asyncio.sleep(0.25)
    return False


def probe_photo() -> bytes:
    return (PHOTOS / "astronaut.png").read_bytes()


async def wait_ready(url: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get("/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the API did not become ready")


async def chaos(procs: Processes, args: argparse.Namespace, stop_at: float, rng: random.Random) -> dict[str, Any]:
    """Faults one after another until shortly before the end; each one's recovery measured."""
    recovery: dict[str, list[float | None]] = collections.defaultdict(list)
    probe = {"latent": ""}
    async with httpx.AsyncClient(base_url=procs.url, timeout=30) as http:
        probe["latent"] = (await http.post("/encode", files={"file": ("p.png", probe_photo())})).json()["latent_id"]
    kinds = [*FAULTS, "redis-freeze"]
    rng.shuffle(kinds)
    n = 0
    while True:
        await asyncio.sleep(args.fault_every * rng.uniform(0.6, 1.4))
        if time.monotonic() > stop_at - 45:
            break
        kind = kinds[n] if n < len(kinds) else rng.choice(FAULTS)  # each kind once, then at random
        n += 1
        print(f"[{time.strftime('%H:%M:%S')}] fault: {kind}", flush=True)
        if kind == "redis-kill":
            procs.kill("redis")
            await asyncio.sleep(rng.uniform(1, 5))
            procs.start_redis()
        elif kind == "redis-freeze":
            assert procs.redis is not None
            os.kill(procs.redis.pid, signal.SIGSTOP)
            await asyncio.sleep(args.freeze_s)
            os.kill(procs.redis.pid, signal.SIGCONT)
        elif kind == "worker-kill":
            procs.kill("worker")
            await asyncio.sleep(rng.uniform(1, 3))
            procs.start_worker()
        elif kind == "child-kill":
            children = procs.worker_children()
            if children:
                os.kill(rng.choice(children), signal.SIGKILL)
        elif kind == "api-kill":
            procs.kill("api")
            await asyncio.sleep(rng.uniform(1, 3))
            procs.start_api()
        took = await works(procs.url, kind, probe, 300)
        recovery[kind].append(took)
        print(f"[{time.strftime('%H:%M:%S')}] {kind}: working again after {took} s", flush=True)
    return {k: {"faults": len(v), "longest_recovery_s": max((t for t in v if t is not None), default=None),
                "not_recovered": sum(t is None for t in v)} for k, v in recovery.items()}  # fmt: skip


async def drain(url: str, tally: Tally, drain_s: float) -> None:
    """Follow every job that has not ended until it does, or the drain time is up."""
    deadline = time.monotonic() + drain_s
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while time.monotonic() < deadline:
            open_jobs = [j for j in tally.jobs.values() if j.status not in ENDED and not j.lost]
            if not open_jobs:
                return
            for job in open_jobs:
                await follow(http, tally, job)
            await asyncio.sleep(1)


def summary(tally: Tally) -> dict[str, Any]:
    jobs = list(tally.jobs.values())
    reasons = collections.Counter((j.error or "")[:70] for j in jobs if j.status == "failed" and not j.lost)
    return {
        "accepted": len(jobs),
        "succeeded": sum(j.status == "succeeded" and not j.lost for j in jobs),
        "failed": sum(j.status == "failed" and not j.lost for j in jobs),
        "failed_reasons": dict(reasons),
        "failed_after_their_photo_was_deleted": sum(j.status == "failed" and j.photo_deleted for j in jobs),
        "cancelled": sum(j.status == "cancelled" and not j.lost for j in jobs),
        "cancel_asked": sum(j.cancel_asked for j in jobs),
        "lost": sum(j.lost for j in jobs),
        "stuck": sum(j.status not in ENDED and not j.lost for j in jobs),
    }


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    procs = Processes(workdir, args.checkpoint, args.memory_limit)
    photo = probe_photo()
    try:
        procs.start_redis()
        procs.start_api()
        procs.start_worker()
        await wait_ready(procs.url)
        await asyncio.sleep(10)  # the worker's pool up and its model loaded
        start_resources = procs.rss()
        t0 = time.monotonic()
        stop_at = t0 + 60 * args.minutes
        tally = Tally()
        users = [
            user(procs.url, f"127.0.0.{10 + i}", photo, tally, stop_at, random.Random(args.seed * 100 + i))
            for i in range(args.clients)
        ]
        faults, *_ = await asyncio.gather(chaos(procs, args, stop_at, rng), *users)
        await wait_ready(procs.url)  # every process is up again by now: the jobs can end
        await drain(procs.url, tally, args.drain_s)
        return {
            "minutes": args.minutes,
            "clients": args.clients,
            "api_memory_limit_bytes": args.memory_limit,
            "jobs": summary(tally),
            "answers": dict(sorted(tally.answers.items())),
            "server_errors_not_503": len(tally.server_errors),
            "server_errors_examples": tally.server_errors[:10],
            "unreachable_while_the_api_was_down": tally.unreachable,
            "faults": faults,
            "resources_start": start_resources,
            "resources_end": procs.rss(),
            "logs": str(workdir),
        }
    finally:
        procs.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "celeba64"))
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--fault-every", type=float, default=40, help="seconds between faults, on average")
    p.add_argument("--freeze-s", type=float, default=8, help="how long Redis stays SIGSTOPped, once")
    p.add_argument("--drain-s", type=float, default=240, help="after the traffic, how long to follow open jobs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-limit", type=int, help="FACEEDIT_MEMORY_LIMIT_BYTES for the API")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    report = asyncio.run(soak(args))
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
