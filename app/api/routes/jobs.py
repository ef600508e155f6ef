"""Optimised edits as queued jobs, and their status and results."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.api.deps import ServiceDep
from app.schemas import JobAccepted, JobStatus, OptimizedEditRequest
from worker.pipeline.errors import InvalidParameter
from worker.pipeline.images import media_type_of
from worker.service.jobs import OptimizedEditParams

router = APIRouter(tags=["jobs"])


def from_data_url(value: str, name: str) -> bytes:
    """The bytes of a data URL or of plain base64."""
    try:
        return base64.b64decode(value.split(",", 1)[1] if value.startswith("data:") else value, validate=True)
    except (ValueError, binascii.Error) as e:
        raise InvalidParameter(f"{name} must be an image as a data URL or base64: {e}") from e


JobId = Annotated[str, Path(max_length=64)]


@router.post(
    "/edits/optimized",
    status_code=202,
    response_model=JobAccepted,
    responses={
        404: {"description": "unknown latent id"},
        415: {"description": "strokes or mask are not an image"},
        422: {"description": "invalid parameters (also: a generated face without target_id)"},
        429: {"description": "queue full, or this client over its share (Retry-After)"},
        503: {"description": "queue unreachable"},
    },
)
async def optimized_edit(service: ServiceDep, body: OptimizedEditRequest, request: Request) -> JobAccepted:
    """Queue the optimised edit (Zhu et al. 2016) with the discriminator's realism term;
    with `strokes` and `mask`, the brush edit: the nearest realistic face matching the strokes."""
    params = OptimizedEditParams(
        **body.model_dump(exclude={"strokes", "mask", "edits"}), edits=[(e.attribute, e.strength) for e in body.edits]
    )
    strokes, mask = (
        from_data_url(v, name) if v else None for v, name in ((body.strokes, "strokes"), (body.mask, "mask"))
    )
    job = await run_in_threadpool(service.jobs.submit, params, strokes, mask)
    return JobAccepted(
        job_id=job.id,
        status=job.status,
        status_url=str(request.url_for("job_status", job_id=job.id).path),
        result_url=str(request.url_for("job_result", job_id=job.id).path),
    )


@router.get("/jobs/{job_id}", response_model=JobStatus, responses={404: {"description": "unknown or expired job"}})
async def job_status(service: ServiceDep, job_id: JobId) -> JobStatus:
    """queued, running (with progress), succeeded, failed or cancelled (with the reason in `error`)."""
    job = await run_in_threadpool(service.jobs.status, job_id)
    return JobStatus(**job.model_dump(exclude={"params", "started_at"}))


@router.delete("/jobs/{job_id}", response_model=JobStatus, responses={404: {"description": "unknown or expired job"}})
async def cancel_job(service: ServiceDep, job_id: JobId) -> JobStatus:
    """Cancel a job: a queued one never starts, a running one stops at its next step; its result
    and progress are removed and its status says cancelled."""
    job = await run_in_threadpool(service.jobs.cancel, job_id)
    return JobStatus(**job.model_dump(exclude={"params", "started_at"}))


@router.get(
    "/jobs/{job_id}/result",
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
        404: {"description": "unknown or expired job"},
        409: {"description": "job not finished, failed or cancelled"},
    },
    response_class=Response,
)
async def job_result(service: ServiceDep, job_id: JobId) -> Response:
    """The optimised edit's image, once the job has succeeded."""
    data = await run_in_threadpool(service.jobs.result, job_id)
    return Response(data, media_type=media_type_of(data))
