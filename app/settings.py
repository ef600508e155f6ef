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
    # Each client's share (per API key, or per address without one; app.middleware.FairShare): a
    # bucket of rate_burst tokens refilled at rate_per_s, a request costing about its CPU time in
    # slider moves (an upload 60, a slider move 1). 10 a second is a slider dragged without pause,
    # or an upload every 6 s after the first two; 0 turns it off. A request whose tokens come
    # within rate_max_delay_s waits for them; a later one is refused (429) after that delay.
    rate_per_s: float = Field(10.0, ge=0)
    rate_burst: float = Field(120.0, ge=1)
    rate_max_delay_s: float = Field(1.0, ge=0, le=10)
    rate_clients: int = Field(100_000, ge=1)  # buckets kept (least recently seen forgotten first)


@lru_cache
def get_settings() -> Settings:
    return Settings()
