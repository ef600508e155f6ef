"""Attributes, health and readiness."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, File, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import ServiceDep, SettingsDep
from app.schemas import AttributeInfo, AttributesResponse, CustomAttribute, Health, Ready

router = APIRouter(tags=["service"])
health_router = APIRouter(tags=["service"])


@router.get("/attributes", response_model=AttributesResponse)
def attributes(service: ServiceDep, settings: SettingsDep) -> AttributesResponse:
    """The editable attributes: names, what each does, and their training label counts."""
    return AttributesResponse(
        attributes=[AttributeInfo.model_validate(asdict(a)) for a in service.editor.attributes()],
        default_strength=service.editor.default_strength,
        max_strength=settings.max_strength,
        family=service.family,
        latent=service.family != "editnet",
    )


@router.post(
    "/attributes/custom",
    status_code=201,
    response_model=CustomAttribute,
    responses={
        413: {"description": "upload too large"},
        415: {"description": "not an image"},
        422: {"description": "too few or too many photos, a photo without a face, unknown keep name"},
    },
)
async def create_custom_attribute(
    service: ServiceDep,
    with_look: Annotated[list[UploadFile], File(alias="with", description="3 to 12 photos with the look")],
    without_look: Annotated[list[UploadFile], File(alias="without", description="3 to 12 photos without it")],
    name: Annotated[str, Query(min_length=1, max_length=40, description="what the look is called")] = "custom",
    keep: Annotated[list[str], Query(description="built-in attributes the new edit must not move")] = ["Male", "Young"],  # noqa: B006
) -> CustomAttribute:
    """A new attribute from examples: its id works in /edit like a built-in name."""
    with_data = [await f.read() for f in with_look]
    without_data = [await f.read() for f in without_look]
    created = await run_in_threadpool(service.custom.create, name, with_data, without_data, keep)
    return CustomAttribute.model_validate(asdict(created))  # its direction is left out


@router.get(
    "/attributes/custom/{attribute_id}",
    response_model=CustomAttribute,
    responses={404: {"description": "unknown or expired"}},
)
async def custom_attribute(service: ServiceDep, attribute_id: Annotated[str, Path(max_length=64)]) -> CustomAttribute:
    """A custom attribute's name, examples and what it keeps."""
    found = await run_in_threadpool(service.custom.get, attribute_id)
    return CustomAttribute.model_validate(asdict(found))  # its direction is left out


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency, job queue depth and jobs, store bytes, model load time."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@health_router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers (on the event loop, so busy request threads cannot delay it)."""
    return Health(status="ok")


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready, "description": "not ready"}})
def ready(service: ServiceDep, settings: SettingsDep) -> Ready | JSONResponse:
    """Readiness: the model is loaded and the job queue is reachable."""
    reachable, memory = service.reachable(), service.memory
    body = Ready(
        ready=reachable,
        model=str(settings.checkpoint.name),
        image_size=service.image_size,
        queue="redis" if settings.redis_url else "embedded",
        queue_reachable=reachable,
        memory_limit_bytes=memory.limit_bytes,
        memory_limit_source=memory.source,
        photo_memory_bytes=memory.photo_bytes,
        face_cache_bytes=memory.face_cache_bytes,
        memory_store_bytes=None if settings.redis_url else memory.store_bytes,
    )
    return body if reachable else JSONResponse(body.model_dump(), status_code=503)
