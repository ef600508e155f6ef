"""Assembles the FastAPI app: settings, model, store, job runner, routes, page.

Served as `uvicorn --factory app.main:create_app` (what `make serve` and the images run), or by
FastAPI's convention `uvicorn app.main:app`: the module-level `app` is built from the
environment's settings when it is first asked for, so importing this module builds nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache, partial
from pathlib import Path
from typing import Any

import torch
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.formparsers import MultiPartParser

from app.api.deps import api_key_in_docs
from app.api.routes import faces, jobs, meta
from app.metrics import Metrics, RequestMetrics
from app.middleware import ApiKey, BodyLimits, FairShare, TokenBuckets
from app.openapi import stated
from app.settings import Settings, get_settings
from worker.pipeline.engines import load_engine
from worker.pipeline.errors import ServiceError
from worker.service.celery_runner import CeleryRunner
from worker.service.jobs import JobSweeper
from worker.service.memory import cgroup_limit, plan_memory, rss_bytes
from worker.service.optimized import run_optimized_edit
from worker.service.runner import JobRunner, LocalRunner
from worker.service.service import Service
from worker.service.store import make_store

STATIC = Path(__file__).parent / "static"
# What any route may answer besides its own statuses.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed request (e.g. a broken multipart body)"},
    401: {"description": "FACEEDIT_API_KEY is set and X-API-Key is missing or wrong"},
    408: {"description": "the upload stalled"},
    413: {"description": "the request body is over the upload limit"},
    429: {"description": "this client is over its share of the service (Retry-After says when to come back)"},
    503: {"description": "Redis (store or job queue) unreachable, or too many big photos in flight (Retry-After)"},
}


def build_service(settings: Settings) -> Service:
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    engine = load_engine(settings.checkpoint, settings.device, settings.batch_max, settings.batch_wait_ms)
    engine.warm_up()  # before /ready says yes
    # One memory limit (set, or the container's): the caps below are shares of what the model leaves.
    memory = plan_memory(settings, rss_bytes(), cgroup_limit())
    store = make_store(settings.redis_url, memory.store_bytes)
    # Where jobs run is chosen here, once: Celery workers over Redis, or the in-process pool.
    runner: JobRunner
    if settings.redis_url:
        runner = CeleryRunner(settings)
    else:
        run = partial(run_optimized_edit, store=store, engine=engine, settings=settings)
        runner = LocalRunner(run, store, settings.max_queue, settings.local_workers)
    return Service.assemble(engine, store, runner, settings, memory)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Multipart uploads stay in memory (never spooled to disk); their size is capped below.
    MultiPartParser.spool_max_size = settings.max_upload_bytes + 1

    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        start = time.perf_counter()
        service = app.state.service = build_service(settings)
        metrics.model_load.set(time.perf_counter() - start)
        runner = service.runner
        if isinstance(runner, LocalRunner):
            runner.on_done = lambda seconds, outcome: metrics.jobs.labels(outcome).observe(seconds)
        metrics.watch(app.state)
        # Orphaned jobs are found and queued again here, in the API, and nowhere else (JobSweeper
        # says why not Celery beat): nobody has to read a job for it to finish.
        sweeper = JobSweeper(service.store, settings, service.runner.requeue)
        sweeper.start()
        yield
        sweeper.stop()
        service.close()

    app = FastAPI(
        title="Face editing service",
        description="Edit faces in the latent space of a DCGAN: encode, edit attributes, interpolate, "
        "and optimised edits with a realism term (Zhu et al. 2016).",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    build_schema = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's schema with what only the loaded model knows stated (`app.openapi`); before the
        model is loaded, FastAPI's alone, not kept."""
        if app.openapi_schema is not None:
            return app.openapi_schema
        service: Service | None = getattr(app.state, "service", None)
        if service is None:
            schema = build_schema()
            app.openapi_schema = None
            return schema
        app.openapi_schema = stated(
            build_schema(), service.engine.attribute_names, settings.max_strength, settings.max_edits
        )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    protected = [Depends(api_key_in_docs)] if settings.api_key else []
    for router in (faces.router, jobs.router, meta.router):
        app.include_router(router, dependencies=protected, responses=COMMON_ERRORS)
    app.include_router(meta.health_router)

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        headers = {"Retry-After": str(exc.detail["retry_after_s"])} if "retry_after_s" in exc.detail else None
        return JSONResponse({"detail": exc.message, **exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Where, what and why, without echoing the input: NaN or 1e400 cannot be written as JSON.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

        @app.get("/", include_in_schema=False)
        def page() -> FileResponse:
            return FileResponse(STATIC / "index.html")

    # Outermost last: the request metrics (every answer counts, a 401 too), CORS (preflights carry
    # no key), then the key, then each client's share, then the body's limits.
    # Multipart framing adds a little to the file itself.
    app.add_middleware(BodyLimits, limit=settings.max_upload_bytes + 64 * 1024, timeout_s=settings.body_timeout_s)
    if settings.rate_per_s > 0:  # after the key (by which it counts), before the body is read
        buckets = TokenBuckets(
            settings.rate_per_s, settings.rate_burst, settings.rate_clients, settings.rate_max_delay_s
        )
        refused = metrics.rate_limited.labels
        app.add_middleware(
            FairShare, buckets=buckets, by_key=bool(settings.api_key), refused=lambda c: refused(c).inc()
        )
    if settings.api_key:
        app.add_middleware(ApiKey, key=settings.api_key)
    if settings.cors_origins:  # closed by default: no cross-origin browser access
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["X-API-Key"],
        )
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


@cache
def _default_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> FastAPI:
    """`app.main.app`: the app of the environment's settings, built on first use (PEP 562)."""
    if name == "app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
