"""The Celery app, configured from the one Settings object.

Late acks + reject-on-worker-lost: a job's message stays in Redis until its task has
finished, so a worker killed mid-job does not lose it; another worker (or the same one,
restarted) runs it again. The prefetch of 1 keeps queued jobs in Redis, not in a worker.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from worker.core.settings import CoreSettings, get_core_settings

QUEUE = "edits"


def make_celery(settings: CoreSettings) -> Celery:
    url = settings.redis_url or "redis://localhost:6379/0"
    app = Celery("faceedit", broker=url, backend=url, include=["worker.tasks"])
    app.conf.update(
        task_queues=[Queue(QUEUE)],
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_acks_on_failure_or_timeout=False,  # a task that raised (store down) is handed out again
        # The job code stops itself at job_time_limit_s with a clear message; these are backstops.
        task_soft_time_limit=settings.job_time_limit_s + 10,
        task_time_limit=settings.job_time_limit_s + 20,
        result_expires=settings.result_ttl_s,
        task_ignore_result=True,  # results live in our own store under result:<id>
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        # A message not acked within this time goes back to the queue (a killed worker's job).
        broker_transport_options={
            "visibility_timeout": settings.job_visibility_timeout_s or settings.job_time_limit_s + 30
        },
        task_serializer="json",
        accept_content=["json"],
    )
    return app


celery_app = make_celery(get_core_settings())
