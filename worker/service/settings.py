"""What the service needs to run: the model, the store, the limits, the job policy.

One `CoreSettings` object, read from FACEEDIT_* environment variables and validated once;
the API's `app.settings.Settings` adds what only HTTP needs (key, CORS, upload size).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.pipeline.images import MAX_IMAGE_PIXELS, MAX_PHOTO_PIXELS
from worker.pipeline.inversion import REFINE

ROOT = Path(__file__).resolve().parents[2]


class CoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEEDIT_", env_file=".env", extra="ignore")

    checkpoint: Path = ROOT / "checkpoints" / "celeba64"
    device: str = "cpu"
    torch_threads: int = Field(0, ge=0, description="0 = torch's default")
    # None: embedded mode (in-memory store, jobs in a local thread pool inside the API)
    redis_url: str | None = None

    max_image_pixels: int = Field(MAX_IMAGE_PIXELS, ge=4096)  # width * height of an upload, read from its header
    # Photos over this are scaled down to it as they are decoded (the answer has this size).
    max_photo_pixels: int = Field(MAX_PHOTO_PIXELS, ge=4096)
    # Whole photos in flight (decoded, pasted, encoded) may hold at most this many bytes at once,
    # each reserved from its header before it is decoded; a request that does not fit waits up
    # to photo_wait_s, then gets 503 with Retry-After.
    photo_memory_bytes: int = Field(1024 * 1024 * 1024, ge=16 * 1024 * 1024)
    photo_wait_s: float = Field(30.0, ge=0)
    # Decoded photos and G(z) of encoded faces, kept in each API process for fast edits (LRU).
    face_cache_bytes: int = Field(256 * 1024 * 1024, ge=0)
    # An upload (photo, aligned face, latent) is deleted this long after its last use (each edit
    # restarts it), or at once by DELETE /latents/{id}; a job's record and result this long after
    # it ends. 15 minutes: the page uses a face on every slider move, and fetches a result as soon
    # as its job has succeeded.
    latent_ttl_s: int = Field(900, ge=10)
    result_ttl_s: int = Field(900, ge=10)
    custom_attribute_ttl_s: int | None = Field(None, ge=10, description="default: latent_ttl_s")
    # Embedded mode only: the in-memory store holds at most this many bytes (oldest out first).
    memory_store_max_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024)
    # One limit for an API process (default: the container's cgroup limit, read at start): the photo
    # memory, the face cache and the in-memory store are then shares of it (worker.service.memory),
    # unless set themselves.
    memory_limit_bytes: int | None = Field(None, ge=256 * 1024 * 1024)

    max_strength: float = Field(5.0, gt=0)
    max_edits: int = Field(8, ge=1)

    # The refinement of E(x) that /encode runs (In-Domain GAN Inversion style): at most this
    # many optimiser steps and this much wall time per face; 0 steps answers E(x) alone.
    refine_steps: int = Field(REFINE.steps, ge=0, le=500)
    refine_budget_ms: float = Field(1000 * (REFINE.budget_s or 0.0), ge=0)

    max_queue: int = Field(100, ge=1)  # queued + running optimised edits before 429
    local_workers: int = Field(1, ge=1)
    job_time_limit_s: int = Field(300, ge=1)
    job_max_retries: int = Field(3, ge=0)  # a job is started at most this + 1 times
    # A running job whose heartbeat is this old has lost its worker: it is queued again.
    job_orphan_after_s: float = Field(15.0, ge=1)
    # Celery's own backstop: an unacknowledged message goes back to the queue after this long.
    job_visibility_timeout_s: int | None = Field(None, ge=1, description="default: job_time_limit_s + 30")

    batch_max: int = Field(16, ge=1)  # requests merged into one forward pass
    batch_wait_ms: float = Field(2.0, ge=0)  # 0 disables batching

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return v


@lru_cache
def get_core_settings() -> CoreSettings:
    return CoreSettings()
