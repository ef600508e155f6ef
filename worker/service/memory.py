"""One memory limit for an API process, and the caps derived from it.

The operator sets FACEEDIT_MEMORY_LIMIT_BYTES, or the container's cgroup limit is read at start.
What the process holds besides the model is mostly three things, each with a cap of its own: the
photos in flight (`PhotoBudget`), the decoded faces kept for fast edits (`FaceCache`) and, in
embedded mode, the in-memory store. With a limit, the three caps are shares of what the limit
leaves once the model is loaded (the process's RSS when the plan is made), less a margin for what
no cap counts (request bodies, answers being sent, the allocator's slack); a cap set explicitly
in its own setting wins. Without a limit, the three settings are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from worker.service.settings import CoreSettings

CGROUP_FILES = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
MARGIN = 0.15  # of the limit: uncounted memory (bodies, answers, allocator slack, torch buffers)
# Shares of what is left: photos in flight, decoded-face cache, in-memory store (embedded only; with
# Redis its share goes to the photos).
SHARES = (0.55, 0.15, 0.15)
MIN_PHOTO_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class MemoryPlan:
    limit_bytes: int | None
    source: Literal["setting", "cgroup", "none"]
    baseline_bytes: int  # the process's RSS when the plan was made (the model loaded)
    photo_bytes: int  # PhotoBudget
    face_cache_bytes: int  # FaceCache
    store_bytes: int  # MemoryStore (embedded mode)


def cgroup_limit(files: tuple[Path, ...] = CGROUP_FILES) -> int | None:
    """The container's memory limit (cgroup v2, else v1), None when there is none."""
    for path in files:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit() or int(text) >= 1 << 60:  # v1 says "none" with a huge number
            return None
        return int(text)
    return None


def rss_bytes() -> int:
    """This process's resident set (0 where /proc is not there)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def plan_memory(settings: CoreSettings, baseline_bytes: int, cgroup: int | None = None) -> MemoryPlan:
    """The caps for this process: shares of the limit (set, or the cgroup's) over `baseline_bytes`."""
    limit = settings.memory_limit_bytes
    source: Literal["setting", "cgroup", "none"] = "setting"
    if limit is None:
        limit, source = cgroup, "cgroup"
    if limit is None:
        return MemoryPlan(
            None,
            "none",
            baseline_bytes,
            settings.photo_memory_bytes,
            settings.face_cache_bytes,
            settings.memory_store_max_bytes,
        )
    left = int(limit * (1 - MARGIN)) - baseline_bytes
    photos, cache, store = SHARES
    if settings.redis_url:
        photos, store = photos + store, 0.0
    if left * photos < MIN_PHOTO_BYTES:
        raise ValueError(
            f"the memory limit ({limit / 2**20:.0f} MiB, {source}) leaves {max(left, 0) / 2**20:.0f} MiB beside "
            f"the loaded model ({baseline_bytes / 2**20:.0f} MiB): too little to serve photos. Raise it."
        )
    explicit = settings.model_fields_set
    return MemoryPlan(
        limit,
        source,
        baseline_bytes,
        settings.photo_memory_bytes if "photo_memory_bytes" in explicit else int(left * photos),
        settings.face_cache_bytes if "face_cache_bytes" in explicit else int(left * cache),
        settings.memory_store_max_bytes if "memory_store_max_bytes" in explicit else max(1 << 20, int(left * store)),
    )
