"""The Celery app's configuration, from the one Settings object (`make_celery`); the app the
workers run is `worker.celery_app`, built only there, never by an API that runs embedded.

Late acks + reject-on-worker-lost: a job's message stays in Redis until its task has
finished, so a worker killed mid-job does not lose it; another worker (or the same one,
restarted) runs it again. The prefetch of 1 keeps queued jobs in Redis, not in a worker.

The broker is kombu's Redis transport with one fix (`RedisTransport`), so that a worker
outlives a Redis restart at any concurrency; see `_DetachedSafeChannel`.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery
from kombu import Queue
from kombu.transport import redis as kombu_redis

from worker.service.settings import CoreSettings

QUEUE = "edits"


class _DetachedSafeChannel(kombu_redis.Channel):
    """kombu's Redis channel, reporting a lost connection as a connection error, not a crash.

    What happens in kombu 5.7 / celery 5.7 when Redis goes away while a prefork worker holds
    an unacknowledged job and has a free pool slot (so it is blocked in BRPOP, `_in_poll`):
    the consumer's `on_connection_error_after_connected` first calls `Connection.collect()`,
    which closes the channel; `Channel.close()` reads the pending BRPOP reply first, that read
    raises ConnectionError, and close() returns before marking the channel closed; collect()
    then detaches the transport (`transport.client = None`). The consumer next calls
    `connection.close()`, which closes the same channel again: this time it gets as far as
    restoring the unacknowledged message, needs a new connection pool, and builds its
    parameters from `self.connection.client.hostname`, i.e. from None. That AttributeError is
    not a connection error, escapes `ignore_errors`, and ends the worker ("Unrecoverable
    error"). At --concurrency=1 (or --pool=solo) the only slot is busy, no BRPOP is pending, the
    first close completes, and the worker reconnects, which is why only the default died.

    A channel whose transport has been detached has no connection: saying so with redis's
    ConnectionError lets kombu's and celery's cleanup ignore it as they intend, and the
    unacknowledged message stays in Redis's unacked set, where the visibility timeout (or the
    job sweeper, sooner) brings it back. The late ack of the job that was running goes through
    the same path and is logged as "Couldn't ack" instead of raising.
    """

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection was closed (Redis went away)")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with the channel above; chosen by `broker_transport`."""

    Channel = _DetachedSafeChannel


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
        # Keep trying for ever: a worker that gives up after Celery's default 100 attempts would
        # need a supervisor to come back after a long Redis outage.
        broker_connection_max_retries=None,
        # A message not acked within this time goes back to the queue (a killed worker's job).
        broker_transport_options={
            "visibility_timeout": settings.job_visibility_timeout_s or settings.job_time_limit_s + 30
        },
        task_serializer="json",
        accept_content=["json"],
    )
    if url.startswith("redis://"):
        # An explicit transport class wins over the URL's scheme (kombu.Connection); rediss://
        # keeps kombu's own, whose TLS checks key on the scheme's name.
        app.conf.broker_transport = f"{__name__}:RedisTransport"
    return app
