"""Where the API sends jobs: Celery workers over Redis, or a thread pool in-process."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import redis

from app.services.engine import Engine
from app.services.errors import QueueFull, Unavailable
from app.services.store import Store
from app.settings import Settings
from worker.celery_app import QUEUE, make_celery
from worker.jobs import run_optimized_edit


class JobRunner(Protocol):
    def submit(self, job_id: str) -> None: ...
    def reachable(self) -> bool: ...
    def close(self) -> None: ...


class LocalRunner:
    """The embedded default: the same task code on a small thread pool inside the API."""

    def __init__(self, engine: Engine, store: Store, settings: Settings) -> None:
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

    def _run(self, job_id: str) -> None:
        try:
            run_optimized_edit(job_id, self.store, self.engine, self.settings.result_ttl_s)
        finally:
            with self._lock:
                self._pending -= 1

    def reachable(self) -> bool:
        return True

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class CeleryRunner:
    """Sends the job id to the Celery queue; refuses with 429 when the queue is full."""

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url
        self.settings, self.queue = settings, QUEUE
        self.celery = make_celery(settings)
        self.redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0)

    def submit(self, job_id: str) -> None:
        try:
            waiting = int(self.redis.llen(self.queue))
            if waiting >= self.settings.max_queue:
                raise QueueFull(f"{waiting} jobs are waiting; the limit is {self.settings.max_queue}. Try again later.")
            self.celery.send_task("faceedit.optimized_edit", args=[job_id], queue=self.queue, retry=False)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            raise Unavailable("the job queue (Redis) is unreachable; try again shortly") from e

    def reachable(self) -> bool:
        try:
            return bool(self.redis.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def close(self) -> None:
        self.redis.close()
