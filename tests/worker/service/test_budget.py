"""Photo memory is bounded by the bytes in flight; the face cache changes speed, never answers."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worker.pipeline.engine import Engine
from worker.pipeline.errors import Busy
from worker.service.budget import COPIES, PhotoBudget, photo_cost
from worker.service.runner import LocalRunner
from worker.service.service import Service
from worker.service.settings import CoreSettings
from worker.service.store import MemoryStore

MiB = 2**20


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 120, 150)).save(buf, "PNG")  # tiny file, big decode
    return buf.getvalue()


def test_the_cost_is_read_from_the_header_before_decoding() -> None:
    small, big = photo_cost(_png(100, 100), 16_000_000), photo_cost(_png(6000, 6000), 16_000_000)
    assert small == 100 * 100 * 3 * (1 + COPIES)
    assert big == 6000 * 6000 * 3 + COPIES * 3 * 16_000_000  # decoded at full size, worked on scaled down
    assert photo_cost(b"not an image", 16_000_000) == len(b"not an image")


def test_reservations_that_do_not_fit_wait_their_turn_then_run() -> None:
    budget = PhotoBudget(100 * MiB, wait_s=60)
    first_in, release, order = threading.Event(), threading.Event(), []

    def hold() -> None:
        with budget.reserve(70 * MiB):
            order.append("first")
            first_in.set()
            release.wait(60)

    def second() -> None:
        with budget.reserve(70 * MiB):
            order.append("second")

    a = threading.Thread(target=hold)
    a.start()
    assert first_in.wait(60)
    b = threading.Thread(target=second)
    b.start()
    deadline = time.monotonic() + 60
    while not budget._queue and time.monotonic() < deadline:  # the second is waiting, not running
        time.sleep(0.01)
    assert order == ["first"] and budget.in_use == 70 * MiB
    release.set()
    a.join(60)
    b.join(60)
    assert order == ["first", "second"] and budget.in_use == 0


def test_past_the_wait_the_request_is_refused_with_retry_after_and_a_huge_photo_runs_alone() -> None:
    budget = PhotoBudget(100 * MiB, wait_s=0.2)
    with budget.reserve(60 * MiB), pytest.raises(Busy) as refused, budget.reserve(60 * MiB):
        pass
    assert refused.value.status_code == 503 and refused.value.detail["retry_after_s"] > 0
    with budget.reserve(10_000 * MiB):  # larger than the budget: alone, not never
        assert budget.in_use == budget.max_bytes
    assert budget.in_use == 0


def test_an_edit_is_the_same_from_the_cache_as_decoded_from_the_store(tiny_checkpoint: Path, photos: Path) -> None:
    engine = Engine.from_checkpoint(str(tiny_checkpoint), batch_wait_ms=0)
    upload = (photos / "messi5.jpg").read_bytes()
    answers = []
    for cache_bytes in (256 * MiB, 0):  # 0: nothing is kept, every edit decodes the stored photo
        settings = CoreSettings(checkpoint=tiny_checkpoint, face_cache_bytes=cache_bytes, refine_steps=0)
        store = MemoryStore()
        runner = LocalRunner(lambda job_id: None, store, settings.max_queue, 1)
        service = Service.assemble(engine, store, runner, settings)
        latent_id = service.faces.encode(upload).latent_id
        assert (service.faces.cache.size > 0) == (cache_bytes > 0)
        answers.append(service.editor.edit([("Smiling", 2.0)], latent_id=latent_id).data)
        service.runner.close()
    a, b = (np.asarray(Image.open(io.BytesIO(x))).astype(int) for x in answers)
    assert a.shape == b.shape and np.abs(a - b).max() == 0
