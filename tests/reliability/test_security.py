"""Security properties: bounded uploads kept in memory, unguessable ids, nothing listable,
expiry, and no unpickling anywhere."""

from __future__ import annotations

import io
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from worker.pipeline.encoded import new_id
from worker.service.store import MemoryStore

ROOT = Path(__file__).resolve().parents[2]


def test_uploads_are_never_spooled_to_disk(make_client: Any, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object) -> None:
        raise AssertionError("an upload was about to be written to a temporary file on disk")

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", refuse)
    client = make_client()
    big = io.BytesIO()
    noise = (np.random.default_rng(0).random((1200, 1200, 3)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(big, "PNG")  # ~4 MB: well past the default 1 MB spool size
    assert big.tell() > 3_000_000
    r = client.post("/encode", files={"file": ("big.png", big.getvalue())})
    assert r.status_code == 422 and "no face" in r.json()["detail"]  # decoded in memory, then refused


def test_ids_are_unguessable() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)  # 128 random bits, URL-safe


def test_nothing_is_listable(client: Any) -> None:
    for url in ("/jobs", "/jobs/", "/latents", "/results"):
        assert client.get(url).status_code in (404, 405), url


def test_memory_store_expires() -> None:
    store = MemoryStore()
    store.put("photo:x", b"bytes", ttl_s=1)
    assert store.get("photo:x") == b"bytes"
    time.sleep(1.05)
    assert store.get("photo:x") is None


def test_memory_store_is_bounded_in_bytes() -> None:
    store = MemoryStore(max_bytes=1_000_000)
    for i in range(250):  # 250 uploads of 9.4 KB... and a few of 400 KB
        store.put(f"photo:{i}", b"x" * (400_000 if i % 50 == 0 else 9_400), ttl_s=3600)
        assert store.size <= 1_000_000
    assert store.get("photo:1") is None and store.get("photo:249") == b"x" * 9_400  # oldest out first
    store.delete("photo:249")
    store.put("photo:big", b"y" * 2_000_000, ttl_s=3600)  # larger than the cap: not kept at all
    assert store.get("photo:big") is None and store.size == 0


def test_memory_store_evicts_the_least_recently_used_face() -> None:
    """A face being edited survives any number of other uploads: each read makes it young again
    and restarts its TTL (issue: the oldest inserted was evicted however often it was read)."""
    store = MemoryStore(max_bytes=100_000)
    store.put("face:mine", b"m" * 9_000, ttl_s=2)
    for i in range(200):  # 1.8 MB of other users' faces through a 100 KB store
        store.put(f"face:{i}", b"x" * 9_000, ttl_s=3600)
        assert store.get("face:mine") == b"m" * 9_000  # the user edits after every upload
        assert store.size <= 100_000
    assert store.get("face:0") is None  # what nobody read went instead
    time.sleep(1.2)
    assert store.get("face:mine") is not None  # read 1.2 s ago: its 2 s TTL started again
    time.sleep(1.2)
    assert store.get("face:mine") is not None
    time.sleep(2.1)
    assert store.get("face:mine") is None  # unread for longer than its TTL: gone


def test_no_code_path_unpickles() -> None:
    # torch.load only as a plain tensor reader (weights_only=True: the pretrained features' state dict)
    pattern = re.compile(
        r"torch\.load\((?![^\n]*weights_only=True)|pickle\.loads?\(|import pickle|allow_pickle=True|weights_only=False"
    )
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("models", "training", "app", "worker")
        for p in (ROOT / folder).rglob("*.py")
        if pattern.search(p.read_text())
    ]
    assert offenders == []
