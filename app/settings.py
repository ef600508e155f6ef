"""The API's settings: the core's (model, store, limits, jobs) plus what only HTTP needs."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from worker.service.settings import CoreSettings


class Settings(CoreSettings):
    api_key: str | None = None
    cors_origins: list[str] = []
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    body_timeout_s: float = Field(30.0, gt=0)  # a client that sends nothing this long mid-upload gets 408
    # A request head (request line + headers) must arrive within this, or the connection gets 408
    # and is closed (app.serve.HeadTimeoutProtocol, the protocol the service is served with).
    head_timeout_s: float = Field(10.0, gt=0, le=300)


@lru_cache
def get_settings() -> Settings:
    return Settings()
