"""Where jobs run: the JobRunner the API is given when it is assembled, and the in-process pool.

The Celery runner (worker.celery_runner) is the other implementation; the core never
imports it, the API chooses one of the two by injection.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from worker.core.engine import Engine
from worker.core.errors import QueueFull
from worker.core.jobs import run_optimized_edit
from worker.core.settings import CoreSettings
from worker.core.store import Store


class JobRunner(Protocol):
    def submit(self, job_id: str) -> None: ...
    def requeue(self, job_id: str) -> None: ...  # an orphaned job, run again past the queue's cap
    def reachable(self) -> bool: ...
    def close(self) -> None: ...


class LocalRunner:
    """The embedded default: the same task code on a small thread pool inside the API."""

    def __init__(self, engine: Engine, store: Store, settings: CoreSettings) -> None:
        self.engine, self.store, self.settings = engine, store, settings
        self.pool = ThreadPoolExecutor(settings.local_workers, thread_name_prefix="job")
        self._pending = 0
        self._lock = threading.Lock()

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

    def reachable(self) -> bool:
        return True

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
