"""Where jobs run: the JobRunner the API is given when it is assembled, and the in-process pool.

The Celery runner (worker.celery_runner) is the other implementation; the core never
imports it, the API chooses one of the two by injection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from worker.core.engine import Engine
from worker.core.errors import QueueFull
from worker.core.jobs import read_job, run_optimized_edit
from worker.core.settings import CoreSettings
from worker.core.store import Store


class JobRunner(Protocol):
    def submit(self, job_id: str) -> None: ...
    def requeue(self, job_id: str) -> None: ...  # an orphaned job, run again past the queue's cap
    def reachable(self) -> bool: ...
    def depth(self) -> int | None: ...  # jobs waiting, None when it cannot be asked
    def close(self) -> None: ...


class LocalRunner:
    """The embedded default: the same task code on a small thread pool inside the API."""

    def __init__(self, engine: Engine, store: Store, settings: CoreSettings) -> None:
        self.engine, self.store, self.settings = engine, store, settings
        self.pool = ThreadPoolExecutor(settings.local_workers, thread_name_prefix="job")
        self._pending = 0
        self._lock = threading.Lock()
        self.on_done: Callable[[float, str], None] | None = None  # (seconds since submitted, final status)

    def submit(self, job_id: str) -> None:
        with self._lock:
            if self._pending >= self.settings.max_queue:
                raise QueueFull(
                    f"{self._pending} jobs are waiting; the limit is {self.settings.max_queue}. Try again later."
                )
            self._pending += 1
        self.pool.submit(self._run, job_id)

    def requeue(self, job_id: str) -> None:
        with self._lock:
            self._pending += 1
        self.pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        try:
            run_optimized_edit(job_id, self.store, self.engine, self.settings)
        finally:
            with self._lock:
                self._pending -= 1
        job = read_job(self.store, job_id) if self.on_done else None
        if self.on_done and job is not None and job.status in ("succeeded", "failed"):
            self.on_done(time.time() - job.created_at, job.status)

    def depth(self) -> int | None:
        """Jobs waiting or running in the pool."""
        return self._pending

    def reachable(self) -> bool:
        return True

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
