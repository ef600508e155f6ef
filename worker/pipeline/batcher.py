"""Concurrent forward passes merged into one batch.

Requests call `submit(kind, *tensors)` from any thread; a single batching thread collects what
is queued (waiting up to `wait_ms` for callers already on their way, never when a request is
alone), runs one forward pass per kind for up to `batch_max` rows, and hands each caller its
rows. With wait_ms = 0 calls run directly under the lock. The lock is also what a longer
computation (the inversion's optimiser steps) takes per step, so others' passes interleave.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
from torch import Tensor

_STOP = object()
Forward = Callable[[str, tuple[Tensor, ...]], Tensor]  # kind, row-aligned inputs -> rows out


@dataclass
class _Request:
    kind: str
    data: tuple[Tensor, ...]  # each (B, ...), the same B
    future: Future[Tensor] = field(default_factory=Future)

    @property
    def rows(self) -> int:
        return len(self.data[0])


class Batcher:
    def __init__(self, forward: Forward, kinds: tuple[str, ...], batch_max: int = 16, wait_ms: float = 2.0) -> None:
        self.forward, self.kinds = forward, kinds
        self.batch_max, self.wait_s = batch_max, wait_ms / 1000
        self.lock = threading.Lock()  # one forward pass at a time: the CPU threads are shared
        self._queue: queue.Queue[object] = queue.Queue()
        self._waiting = 0  # callers inside submit: queued or being computed
        self._waiting_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if self.wait_s > 0:
            self._thread = threading.Thread(target=self._loop, name="engine-batcher", daemon=True)
            self._thread.start()

    def submit(self, kind: str, *data: Tensor) -> Tensor:
        if self._thread is None:
            with self.lock:
                return self.forward(kind, data)
        req = _Request(kind, data)
        with self._waiting_lock:
            self._waiting += 1
        try:
            self._queue.put(req)
            return req.future.result()
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            assert isinstance(first, _Request)
            pending, rows = [first], first.rows
            # Wait for company only while other callers are on their way: a lone request runs at
            # once, and requests that arrive during a forward pass form the next batch.
            deadline = time.monotonic() + self.wait_s
            while rows < self.batch_max and (self._waiting > len(pending) or not self._queue.empty()):
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                assert isinstance(item, _Request)
                pending.append(item)
                rows += item.rows
            for kind in self.kinds:
                group = [r for r in pending if r.kind == kind]
                if group:
                    self._run(kind, group)

    def _run(self, kind: str, group: list[_Request]) -> None:
        try:
            data = tuple(torch.cat(parts) for parts in zip(*(r.data for r in group), strict=True))
            with self.lock:
                out = self.forward(kind, data)
            for r, part in zip(group, out.split([r.rows for r in group]), strict=True):
                r.future.set_result(part)
        except Exception as e:  # noqa: BLE001 - every caller must hear about it
            for r in group:
                r.future.set_exception(e)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=5)
            self._thread = None
