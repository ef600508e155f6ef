"""Where jobs run: the JobRunner the API is given when it is assembled, and the in-process pool.

The Celery runner (`worker.service.celery_runner`) is the other implementation; the API
chooses one of the two when it is assembled and injects it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from worker.pipeline.errors import QueueFull
from worker.service.jobs import read_job
from worker.service.store import Store


class JobRunner(Protocol):
    def submit(self, job_id: str) -> None: ...
    def requeue(self, job_id: str) -> None: ...  # an orphaned job, run again past the queue's cap
    # A job whose record says cancelled: dropped if still waiting (best effort: the record decides).
    def cancel(self, job_id: str) -> None: ...
    def reachable(self) -> bool: ...
    def depth(self) -> int | None: ...  # jobs waiting, None when it cannot be asked
    def close(self) -> None: ...


class LocalRunner:
    """The embedded default: the same task code (`run`, given a job id) on a small thread pool
    inside the API, at most `max_queue` jobs waiting or running."""

    def __init__(self, run: Callable[[str], None], store: Store, max_queue: int, workers: int) -> None:
        self.run, self.store, self.max_queue = run, store, max_queue
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="job")
        self._pending = 0
        self._waiting: dict[str, Future[None]] = {}  # submitted, not yet started
        self._lock = threading.Lock()
        self.on_done: Callable[[float, str], None] | None = None  # (seconds since submitted, final status)

    def submit(self, job_id: str) -> None:
        with self._lock:
            if self._pending >= self.max_queue:
                raise QueueFull(f"{self._pending} jobs are waiting; the limit is {self.max_queue}. Try again later.")
            self._pending += 1
        self._submit(job_id)

    def requeue(self, job_id: str) -> None:
        with self._lock:
            self._pending += 1
        self._submit(job_id)

    def _submit(self, job_id: str) -> None:
        with self._lock:
            self._waiting[job_id] = self.pool.submit(self._run, job_id)

    def cancel(self, job_id: str) -> None:
        """Take a job that has not started out of the pool (a started one stops itself)."""
        with self._lock:
            future = self._waiting.pop(job_id, None)
            if future is not None and future.cancel():
                self._pending -= 1

    def _run(self, job_id: str) -> None:
        with self._lock:
            self._waiting.pop(job_id, None)
        try:
            self.run(job_id)
        finally:
            with self._lock:
                self._pending -= 1
        job = read_job(self.store, job_id) if self.on_done else None
        if self.on_done and job is not None and job.status in ("succeeded", "failed", "cancelled"):
            self.on_done(time.time() - job.created_at, job.status)

    def depth(self) -> int | None:
        """Jobs waiting or running in the pool."""
        return self._pending

    def reachable(self) -> bool:
        return True

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
