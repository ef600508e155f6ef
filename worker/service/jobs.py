"""The job queue's protocol: records, state changes, heartbeats and orphan recovery.

What a job computes is not here: the optimised edit (`worker.service.optimized`) hands its work
to `run_job`, which runs it on whichever runner took the message (Celery or the local pool).

A job is a JSON record in the store (`job:<id>`), created by the API before it is queued;
the task reads its inputs by key, writes progress into the record, and puts the result
image under `result:<id>`. Tasks get ids and keys, never image bytes. The ids of queued and
running jobs are kept in the set `jobs:active`, so they can be swept without listing keys.

The record, not the worker that happens to run the job, says where the job is:
- a worker starts only a *queued* job, and moves it to "running" with a compare-and-set, so
  two deliveries of one message (a redelivery, a requeue) cannot both start it; a message
  for a running job is dropped as a duplicate, whatever its heartbeat says;
- a running job refreshes `heartbeat_at` every HEARTBEAT_S from a thread of its own, whatever
  the job is doing, even when the store is briefly unreachable (the computation goes on; the
  beat resumes);
- one owner, the `JobSweeper` (run by the API, see there), turns a running job whose record
  has not changed for `job_orphan_after_s` *while the store answered* back into "queued" and
  queues it again, and fails it with a reason once it has started `job_max_retries + 1` times
  or has run past its time limit. Time while the store is unreachable does not count, so after
  an outage a live worker has the whole window to beat again before its job is given away;
- the task itself fails a job at its time limit, and refuses to start one whose attempts
  are used up, so a job that kills its worker every time ends as "failed", not in a loop;
- anyone may end a job (`end_job`: cancelled by its owner, failed because its photo was deleted):
  a compare-and-set on the record, its result and strokes removed. The attempt that runs it writes
  only while the record is still its own (running, its attempt, its worker): its heartbeat and its
  last write are compare-and-sets too, and the work reads the record at every step
  (`Running.progress`), so it stops within a step of the change and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from pydantic import BaseModel

from worker.pipeline.errors import Unavailable
from worker.service.settings import CoreSettings
from worker.service.store import Store, key

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
HEARTBEAT_S = 0.25  # a running job writes its progress and heartbeat this often (_Heartbeat)
TIME_LIMIT_ERROR = "the job ran past its time limit"
CANCELLED_ERROR = "cancelled at its owner's request"
ACTIVE = "jobs:active"  # set of the ids of queued and running jobs
T = TypeVar("T")
log = logging.getLogger(__name__)


class OptimizedEditParams(BaseModel):
    """What an optimised-edit job does (checked by the API before it is queued); the job's
    payload in its record. The edit itself is `worker.service.optimized`."""

    latent_id: str  # the face to edit: its z, with `edits` applied, is the start z0
    target_id: str | None = None  # the face whose aligned crop is the pixel target (default: the face)
    edits: list[tuple[str, float]] = []  # (built-in attribute, strength)
    steps: int
    lr: float
    lambda1: float  # weight of ||z - z0||^2
    lambda2: float  # weight of the discriminator's realism term


class JobRecord(BaseModel):
    id: str
    status: Status = "queued"
    progress: float = 0.0
    step: int = 0
    steps: int
    error: str | None = None
    attempts: int = 0
    created_at: float
    updated_at: float
    started_at: float | None = None  # of the current attempt
    heartbeat_at: float | None = None
    worker: str | None = None  # host:pid:thread running the current attempt
    params: OptimizedEditParams


class JobTimeout(Exception):
    pass


class JobStopped(Exception):
    """The record is no longer this attempt's (cancelled, failed by another process, queued again):
    the work stops and writes nothing more."""


def read_job(store: Store, job_id: str) -> JobRecord | None:
    raw = store.get(key("job", job_id))
    return None if raw is None else JobRecord.model_validate_json(raw)


def _read_raw(store: Store, job_id: str) -> tuple[JobRecord, bytes] | None:
    """The record and its stored bytes: what a compare-and-set must find unchanged."""
    raw = store.get(key("job", job_id))
    return None if raw is None else (JobRecord.model_validate_json(raw), raw)


def _active(job: JobRecord) -> bool:
    return job.status in ("queued", "running")


def _mine(current: JobRecord, job: JobRecord) -> bool:
    """The stored record still belongs to the attempt `job` is: running, that attempt, that worker."""
    return current.status == "running" and (current.attempts, current.worker) == (job.attempts, job.worker)


def _encode(job: JobRecord) -> bytes:
    job.updated_at = time.time()
    return job.model_dump_json().encode()


def write_job(store: Store, job: JobRecord, ttl_s: int) -> None:
    """Store the record; a queued or running job's has no TTL, so a full store cannot evict it."""
    if _active(job):
        store.add_member(ACTIVE, job.id)  # first, so a job is never active without being swept
        store.put(key("job", job.id), _encode(job), None)
    else:
        store.put(key("job", job.id), _encode(job), ttl_s)
        store.remove_member(ACTIVE, job.id)


def _swap_job(store: Store, job: JobRecord, expected: bytes, ttl_s: int) -> bool:
    """Write the record only if it still holds `expected`: one process wins each state change."""
    if _active(job):
        store.add_member(ACTIVE, job.id)
    if not store.swap(key("job", job.id), expected, _encode(job), None if _active(job) else ttl_s):
        return False
    if not _active(job):
        store.remove_member(ACTIVE, job.id)
    return True


def fail(store: Store, job: JobRecord, error: str, ttl_s: int) -> JobRecord:
    job.status, job.error = "failed", error
    write_job(store, job, ttl_s)
    return job


def end_job(
    store: Store, job_id: str, status: Status, error: str, ttl_s: int, forget: str | None = None
) -> JobRecord | None:
    """End a job whatever it is doing (None: no such job): `status` with `error` as its reason, its
    progress, result and strokes removed, and with `forget`, that latent id taken out of its record.
    A compare-and-set, tried again when a heartbeat wrote in between; the attempt running it sees
    the change at its next step and stops."""
    for _ in range(100):
        got = _read_raw(store, job_id)
        if got is None:
            return None
        job, raw = got
        job.status, job.error, job.step, job.progress = status, error, 0, 0.0
        p = job.params
        if forget is not None:
            p.latent_id = "" if p.latent_id == forget else p.latent_id
            p.target_id = None if p.target_id == forget else p.target_id
        if _swap_job(store, job, raw, ttl_s):
            break
    else:
        raise Unavailable("the job's record changes too often to be ended; try again shortly")
    store.delete(key("result", job_id))
    store.delete(key("strokes", job_id))
    return job


def attempts_used_up(job: JobRecord, settings: CoreSettings) -> str | None:
    """Why the job may not start again, or None: it starts at most job_max_retries + 1 times."""
    if job.attempts >= settings.job_max_retries + 1:
        return (
            f"the job was started {job.attempts} times and its worker stopped each time "
            f"(limit {settings.job_max_retries + 1}); giving up"
        )
    return None


class JobSweeper:
    """The one owner of orphan recovery: a thread in the API process that looks at every active
    job each `interval_s` and queues again those whose worker has stopped.

    Why the API and not Celery beat: the API is always deployed (beat would be one more process
    to run exactly once, and `worker -B` on several workers would make several owners), it
    already holds the store, the runner and the settings, and in embedded mode there is no
    Celery at all. Several API replicas are safe: each state change is a compare-and-set on the
    record, so only one of them moves a job, and a worker starts only a queued job.

    A job counts as orphaned when its record has not changed for `job_orphan_after_s` of this
    sweeper's own observation with the store answering. Any store error restarts every clock:
    while Redis is unreachable no worker can beat either, so that time says nothing about them.
    Comparing the record's `heartbeat_at` with the clock instead would give away, right after a
    long outage, a job whose live worker has not yet had the chance to write.
    """

    def __init__(
        self,
        store: Store,
        settings: CoreSettings,
        requeue: Callable[[str], None],
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.settings, self.requeue, self.clock = store, settings, requeue, clock
        self.interval_s = interval_s or min(2.0, max(0.2, settings.job_orphan_after_s / 4))
        self._seen: dict[str, tuple[bytes, float]] = {}  # job id -> (record, when first seen as such)
        self._unsent: set[str] = set()  # queued again, but the message could not be sent yet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> list[str]:
        """One pass over the active jobs; returns the ids queued again."""
        requeued: list[str] = []
        try:
            ids = self.store.members(ACTIVE)
            for job_id in ids:
                self._check(job_id, requeued)
        except Unavailable:
            self._seen.clear()  # an outage: nobody's heartbeat could land; start watching afresh
            return requeued
        for gone in self._seen.keys() - set(ids):
            del self._seen[gone]
        return requeued

    def _check(self, job_id: str, requeued: list[str]) -> None:
        got = _read_raw(self.store, job_id)
        if got is None or not _active(got[0]):  # expired, deleted or ended: not active any more
            self.store.remove_member(ACTIVE, job_id)
            self._seen.pop(job_id, None)
            return
        job, raw = got
        if job.status == "queued":
            self._seen.pop(job_id, None)
            if job_id in self._unsent:
                self._send(job_id)
            return
        now = self.clock()
        seen = self._seen.get(job_id)
        if seen is None or seen[0] != raw:
            self._seen[job_id] = (raw, now)  # it changed since the last look: its worker is alive
            return
        if now - seen[1] < self.settings.job_orphan_after_s:
            return
        ttl = self.settings.result_ttl_s
        if job.started_at is not None and time.time() - job.started_at > self.settings.job_time_limit_s:
            job.status, job.error = "failed", TIME_LIMIT_ERROR  # killed by Celery's hard limit
        elif reason := attempts_used_up(job, self.settings):
            job.status, job.error = "failed", reason
        else:
            job.status, job.error = "queued", None
        if not _swap_job(self.store, job, raw, ttl):
            return  # its worker wrote just now: alive after all; the next pass sees the new record
        self._seen.pop(job_id, None)
        if job.status == "queued":
            log.warning("job %s: no heartbeat for %.0f s (worker %s); queued again", job_id, now - seen[1], job.worker)
            requeued.append(job_id)
            self._send(job_id)

    def _send(self, job_id: str) -> None:
        try:
            self.requeue(job_id)
            self._unsent.discard(job_id)
        except Unavailable:
            self._unsent.add(job_id)  # the record says queued; the message follows on a later pass

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="job-sweeper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - a bug in one pass must not end recovery for good
                log.exception("job sweep failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


class Running:
    """What a job's work gets from the protocol: its record (inputs in `job.params`), its deadline,
    a progress report that stops the work at the deadline or once the record is no longer this
    attempt's (cancelled: read at every step), and store calls retried through blips."""

    def __init__(self, job: JobRecord, deadline: float, store: Store) -> None:
        self.job, self.deadline, self.store = job, deadline, store

    def progress(self, step: int, total: int) -> None:
        if time.monotonic() > self.deadline:
            raise JobTimeout
        self.check()
        # plain attribute writes: the heartbeat thread reads them as they are (no lock to wait on
        # while it is stuck writing to a frozen store)
        self.job.step, self.job.progress = step, step / total

    def check(self) -> None:
        """JobStopped once the record is no longer this attempt's; a store blip is not a reason to
        stop (the next step asks again). One small read: well under a step's time."""
        try:
            current = read_job(self.store, self.job.id)
        except Unavailable:
            return
        if current is None or not _mine(current, self.job):
            raise JobStopped

    def persist(self, op: Callable[[], T]) -> T:
        """`op` retried through store blips until the deadline. The heartbeat goes on meanwhile, so
        an outage at the start of a job must not end it (its worker is alive; nobody else may start it)."""
        return _persist(op, self.deadline)


def run_job(job_id: str, store: Store, settings: CoreSettings, work: Callable[[Running], bytes]) -> None:
    """Run one delivery of a job: start it if it is queued and may start (a compare-and-set, so one
    delivery wins), beat while `work` computes, put what it returns under `result:<id>`, and end
    the record as succeeded or failed (with the reason: the time limit, or the work's error)."""
    ttl_s = settings.result_ttl_s
    # Through a store blip: the message has been taken; giving up here would leave a queued job
    # that nobody runs.
    got = _persist(lambda: _read_raw(store, job_id), time.monotonic() + settings.job_time_limit_s)
    if got is None:
        return  # expired
    job, raw = got
    if job.status != "queued":
        return  # ended, or running: a duplicate delivery (if its worker is gone, the sweeper queues it again)
    if reason := attempts_used_up(job, settings):
        job.status, job.error = "failed", reason
        _swap_job(store, job, raw, ttl_s)
        return
    job.attempts += 1
    now = time.time()
    job.status, job.step, job.progress, job.started_at, job.heartbeat_at = "running", 0, 0.0, now, now
    job.worker = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    if not _persist(lambda: _swap_job(store, job, raw, ttl_s), time.monotonic() + settings.job_time_limit_s):
        mine = read_job(store, job_id)  # a swap whose answer was lost in a blip may have landed
        if mine is None or (mine.worker, mine.attempts, mine.started_at) != (job.worker, job.attempts, now):
            return  # another delivery of the job started it first
    running = Running(job, time.monotonic() + settings.job_time_limit_s, store)
    heartbeat = _Heartbeat(store, job, ttl_s)
    stored_result = False
    try:
        result = work(running)
        running.check()  # ended meanwhile: the result is not stored at all
        running.persist(lambda: store.put(key("result", job_id), result, ttl_s))
        stored_result = True
        status: tuple[Status, str | None] = ("succeeded", None)
        job.progress, job.step = 1.0, job.steps
    except JobStopped:
        log.info("job %s: stopped at step %d of %d, its record changed (cancelled)", job_id, job.step, job.steps)
        return
    except JobTimeout:
        status = ("failed", TIME_LIMIT_ERROR)
    except Unavailable:
        raise  # the store is down past every retry: no heartbeat, so the sweeper queues it again
    except Exception as e:  # noqa: BLE001 - the job record says what went wrong
        status = ("failed", f"{type(e).__name__}: {e}")
    finally:
        heartbeat.stop()  # before the last write, so that no beat can land after it and undo it
    attempt = (job.attempts, job.worker)
    job.status, job.error = status
    if not _persist(lambda: _finish(store, job, attempt, ttl_s), running.deadline + 60) and stored_result:
        # ended by someone else between the last step and this write: the result must not outlive it
        _persist(lambda: store.delete(key("result", job_id)), running.deadline + 60)


def _finish(store: Store, job: JobRecord, attempt: tuple[int, str | None], ttl_s: int) -> bool:
    """Write the ended record if the stored one is still this attempt's running record; False when
    someone else ended the job (or queued it again) first. A write whose answer was lost in a blip
    and is tried again finds its own ended record: that counts as written."""
    while True:
        got = _read_raw(store, job.id)
        if got is None:
            return False
        current, raw = got
        if (current.attempts, current.worker) == attempt and current.status == job.status:
            return True
        if not (current.status == "running" and (current.attempts, current.worker) == attempt):
            return False
        if _swap_job(store, job, raw, ttl_s):
            return True


class _Heartbeat:
    """Writes a running job's record (step, progress, `heartbeat_at`) every HEARTBEAT_S from a
    thread of its own: the job is heard whatever it is doing (loading the photo, the first slow
    optimiser step, encoding a big result), and through a store blip a failed write is simply
    tried again on the next beat. Silence therefore means the process is gone or stalled.
    Each beat is a compare-and-set on a record that is still this attempt's: a beat never undoes
    a cancellation; once the record is another's, the beats stop."""

    def __init__(self, store: Store, job: JobRecord, ttl_s: int) -> None:
        self.store, self.job, self.ttl_s = store, job, ttl_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.job.heartbeat_at = time.time()
            with contextlib.suppress(Unavailable):  # the store blinked: keep computing, beat again next time
                got = _read_raw(self.store, self.job.id)
                if got is None or not _mine(got[0], self.job):
                    return  # ended or queued again by someone else: the work sees it at its next step
                _swap_job(self.store, self.job, got[1], self.ttl_s)  # lost to a write in between: next beat

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


PERSIST_RETRY_MAX_S = 1.0  # well inside any orphan window: once Redis is back, the worker is heard at once


def _persist(op: Callable[[], T], deadline: float) -> T:
    """Retry a store operation through a blip (Redis restarting), until the deadline."""
    delay = 0.2
    while True:
        try:
            return op()
        except Unavailable:
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, PERSIST_RETRY_MAX_S)
