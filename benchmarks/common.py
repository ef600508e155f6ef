"""Shared by the benchmarks: start the real service on loopback, drive it with concurrent clients."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from app.serve import ROOT, free_port, start_server

__all__ = ["PHOTOS", "ROOT", "Request", "drive", "free_port", "rss_mb", "start_server"]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
Request = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(
    url: str,
    request: Request,
    clients: int,
    total: int | None = None,
    seconds: float | None = None,
    pid: int | None = None,
) -> dict[str, Any]:
    """Run `clients` concurrent loops of `request` for `total` requests or `seconds`; latency figures."""
    latencies: list[float] = []
    errors = 0
    memory: list[float] = []
    issued = 0
    stop_at = time.perf_counter() + seconds if seconds else float("inf")

    def more() -> bool:
        nonlocal issued
        issued += 1
        return (total is None or issued <= total) and time.perf_counter() < stop_at

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while more():
            t = time.perf_counter()
            try:
                r = await request(http)
                errors += r.status_code != 200
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - t)

    async def sample_memory() -> None:
        while pid is not None:
            memory.append(rss_mb(pid))
            await asyncio.sleep(1)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=clients + 4)) as http:
        await request(http)  # warm-up
        sampler = asyncio.create_task(sample_memory())
        t0, cpu0 = time.perf_counter(), cpu_s(pid) if pid is not None else 0.0
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
        cpu = cpu_s(pid) - cpu0 if pid is not None else float("nan")
        sampler.cancel()
    q = statistics.quantiles(latencies, n=100)
    out: dict[str, Any] = {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * q[94],
        "p99_ms": 1000 * q[98],
        "errors": errors,
        "server_cpu_ms_per_request": 1000 * cpu / max(1, len(latencies)),
    }
    if memory:
        out |= {"rss_start_mb": memory[0], "rss_end_mb": memory[-1], "rss_max_mb": max(memory)}
        minutes = [memory[i : i + 60] for i in range(0, len(memory), 60)]  # one sample a second
        out["rss_by_minute_mb"] = [[m[0], max(m), m[-1]] for m in minutes]
    return out
