"""The JobRunner that sends job ids to the Celery queue over Redis (the API injects it)."""

from __future__ import annotations

import logging
import threading

import redis
from redis.exceptions import LockError

from worker.pipeline.errors import QueueFull, Unavailable
from worker.service.celery_config import QUEUE, make_celery
from worker.service.settings import CoreSettings
from worker.service.store import no_retry_on_timeout

SUBMIT_LOCK = "edits:submit-lock"
log = logging.getLogger(__name__)


class CeleryRunner:
    """Sends the job id to the Celery queue; refuses with 429 when the queue is full."""

    def __init__(self, settings: CoreSettings) -> None:
        assert settings.redis_url
        self.settings, self.queue = settings, QUEUE
        self.celery = make_celery(settings)
        # Short timeouts, no retry of a timeout: /ready must answer within a second on a frozen Redis.
        self.redis = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=0.4, socket_timeout=0.4, retry=no_retry_on_timeout()
        )

    def submit(self, job_id: str) -> None:
        """Count and send under one Redis lock, so that concurrent submits (threads, API replicas)
        cannot all see room for one more and pass the cap together. The lock expires by itself
        (a submitter that dies holding it blocks the others for at most 5 s)."""
        try:
            with self.redis.lock(SUBMIT_LOCK, timeout=5, sleep=0.01, blocking_timeout=3):
                waiting = int(self.redis.llen(self.queue))
                if waiting >= self.settings.max_queue:
                    raise QueueFull(
                        f"{waiting} jobs are waiting; the limit is {self.settings.max_queue}. Try again later."
                    )
                # Returns once the message is in the list (kombu's Redis transport pushes synchronously).
                self._send(job_id)
        except LockError as e:  # not acquired within 3 s: Redis is too slow to answer
            raise Unavailable("the job queue (Redis) is busy; try again shortly") from e
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            raise Unavailable("the job queue (Redis) is unreachable; try again shortly") from e

    def requeue(self, job_id: str) -> None:
        try:
            self._send(job_id)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            raise Unavailable("the job queue (Redis) is unreachable; try again shortly") from e

    def _send(self, job_id: str) -> None:
        # The task's id is the job's: a cancellation revokes it by that id.
        self.celery.send_task("faceedit.optimized_edit", args=[job_id], task_id=job_id, queue=self.queue, retry=False)

    def cancel(self, job_id: str) -> None:
        """Revoke the task (workers drop its message when it arrives), from a thread of its own: a
        broadcast may wait on a slow Redis, and the job's record, already cancelled, is what the
        worker obeys (it never starts a job that is not queued; a running one reads its record at
        every step)."""

        def revoke() -> None:
            try:
                self.celery.control.revoke(job_id)
            except Exception as e:  # noqa: BLE001 - best effort: the record has already decided
                log.warning("job %s: revoke not sent (%s); its record stops it", job_id, e)

        threading.Thread(target=revoke, name=f"revoke-{job_id}", daemon=True).start()

    def depth(self) -> int | None:
        """Jobs waiting in the Redis queue (those a worker holds are not counted); None if unreachable."""
        try:
            return int(self.redis.llen(self.queue))
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return None

    def reachable(self) -> bool:
        try:
            return bool(self.redis.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def close(self) -> None:
        self.redis.close()
