"""One memory limit, and the caps derived from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from worker.service.memory import MARGIN, cgroup_limit, plan_memory, rss_bytes
from worker.service.settings import CoreSettings

GiB, MiB = 2**30, 2**20


def test_the_cgroup_limit_is_read_v2_then_v1(tmp_path: Path) -> None:
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    assert cgroup_limit((v2, v1)) is None  # no cgroup files: no limit
    v1.write_text("1610612736\n")
    assert cgroup_limit((v2, v1)) == 1610612736
    v2.write_text("max\n")
    assert cgroup_limit((v2, v1)) is None  # v2 says unlimited
    v2.write_text("2147483648\n")
    assert cgroup_limit((v2, v1)) == 2 * GiB
    v2.write_text(str(2**63 - 4096))  # v1's way of saying unlimited
    assert cgroup_limit((v2,)) is None


def test_without_a_limit_the_settings_are_used_as_they_are() -> None:
    s = CoreSettings(photo_memory_bytes=100 * MiB)
    plan = plan_memory(s, 500 * MiB)
    assert (plan.limit_bytes, plan.source, plan.photo_bytes) == (None, "none", 100 * MiB)
    assert plan.face_cache_bytes == s.face_cache_bytes and plan.store_bytes == s.memory_store_max_bytes


def test_the_caps_are_shares_of_what_the_limit_leaves_beside_the_model() -> None:
    limit, model = 1536 * MiB, 500 * MiB
    plan = plan_memory(CoreSettings(memory_limit_bytes=limit), model, cgroup=8 * GiB)
    assert plan.source == "setting" and plan.limit_bytes == limit  # the setting wins over the cgroup
    total = model + plan.photo_bytes + plan.face_cache_bytes + plan.store_bytes
    assert total <= limit * (1 - MARGIN)
    assert plan.photo_bytes > plan.face_cache_bytes > 0 and plan.store_bytes > 0
    from_cgroup = plan_memory(CoreSettings(), model, cgroup=limit)
    assert from_cgroup.source == "cgroup" and from_cgroup.photo_bytes == plan.photo_bytes
    redis = plan_memory(CoreSettings(memory_limit_bytes=limit, redis_url="redis://x"), model)
    assert redis.photo_bytes > plan.photo_bytes  # no memory store: its share goes to the photos
    explicit = plan_memory(CoreSettings(memory_limit_bytes=limit, face_cache_bytes=0), model)
    assert explicit.face_cache_bytes == 0  # a cap set on its own wins


def test_a_limit_below_the_model_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="too little to serve photos"):
        plan_memory(CoreSettings(memory_limit_bytes=512 * MiB), 480 * MiB)


def test_an_environment_variable_counts_as_set(monkeypatch: Any) -> None:
    monkeypatch.setenv("FACEEDIT_FACE_CACHE_BYTES", "0")
    plan = plan_memory(CoreSettings(memory_limit_bytes=GiB), 100 * MiB)
    assert plan.face_cache_bytes == 0


def test_ready_and_metrics_report_the_limit(make_client: Any) -> None:
    limit = rss_bytes() + 2 * GiB  # above what this test process already holds (a long pytest run)
    client = make_client(memory_limit_bytes=limit)
    ready = client.get("/ready").json()
    assert ready["memory_limit_bytes"] == limit and ready["memory_limit_source"] == "setting"
    baseline = client.app.state.service.memory.baseline_bytes
    assert 0 < baseline < limit
    assert ready["photo_memory_bytes"] + ready["face_cache_bytes"] + ready["memory_store_bytes"] + baseline < limit
    metrics = dict(line.rsplit(" ", 1) for line in client.get("/metrics").text.splitlines() if not line.startswith("#"))
    assert float(metrics["faceedit_memory_limit_bytes"]) == limit
    assert float(metrics['faceedit_memory_cap_bytes{part="photos"}']) == ready["photo_memory_bytes"]
    assert 'faceedit_memory_used_bytes{part="face_cache"}' in metrics
    assert float(metrics["process_resident_memory_bytes"]) > 0
