"""Attributes, health and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import EditorDep, SettingsDep
from app.schemas import AttributeInfo, AttributesResponse, Health, Ready

router = APIRouter(tags=["service"])
health_router = APIRouter(tags=["service"])


@router.get("/attributes", response_model=AttributesResponse)
def attributes(editor: EditorDep, settings: SettingsDep) -> AttributesResponse:
    """The editable attributes: names, what each does, and their training label counts."""
    return AttributesResponse(
        attributes=[
            AttributeInfo(
                name=a["name"], description=a["description"], with_count=a["with"], without_count=a["without"]
            )
            for a in editor.attributes()
        ],
        default_strength=editor.engine.default_strength,
        max_strength=settings.max_strength,
    )


@health_router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers (on the event loop, so busy request threads cannot delay it)."""
    return Health(status="ok")


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready, "description": "not ready"}})
def ready(editor: EditorDep, settings: SettingsDep) -> Ready | JSONResponse:
    """Readiness: the model is loaded and the job queue is reachable."""
    reachable = editor.runner.reachable() and editor.store.ping()
    body = Ready(
        ready=reachable,
        model=str(settings.checkpoint.name),
        image_size=editor.engine.image_size,
        queue="redis" if settings.redis_url else "embedded",
        queue_reachable=reachable,
    )
    return body if reachable else JSONResponse(body.model_dump(), status_code=503)
