"""Optimised edits as queued jobs, and their status and results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.api.deps import EditorDep
from app.schemas import JobAccepted, JobStatus, OptimizedEditRequest

router = APIRouter(tags=["jobs"])
JobId = Annotated[str, Path(max_length=64)]


@router.post(
    "/edits/optimized",
    status_code=202,
    response_model=JobAccepted,
    responses={
        404: {"description": "unknown latent id"},
        422: {"description": "invalid parameters"},
        429: {"description": "queue full"},
        503: {"description": "queue unreachable"},
    },
)
async def optimized_edit(editor: EditorDep, body: OptimizedEditRequest, request: Request) -> JobAccepted:
    """Queue the optimised edit (Zhu et al. 2016) with the discriminator's realism term."""
    params = body.model_dump()
    params["edits"] = [e.model_dump() for e in body.edits]
    job = await run_in_threadpool(editor.submit_optimized, params)
    return JobAccepted(
        job_id=job.id,
        status=job.status,
        status_url=str(request.url_for("job_status", job_id=job.id).path),
        result_url=str(request.url_for("job_result", job_id=job.id).path),
    )


@router.get("/jobs/{job_id}", response_model=JobStatus, responses={404: {"description": "unknown or expired job"}})
async def job_status(editor: EditorDep, job_id: JobId) -> JobStatus:
    """queued, running (with progress), succeeded or failed."""
    job = await run_in_threadpool(editor.job, job_id)
    return JobStatus(**job.model_dump(exclude={"params", "started_at"}))


@router.get(
    "/jobs/{job_id}/result",
    responses={
        200: {"content": {"image/png": {}}},
        404: {"description": "unknown or expired job"},
        409: {"description": "job not finished, or failed"},
    },
    response_class=Response,
)
async def job_result(editor: EditorDep, job_id: JobId) -> Response:
    """The optimised edit's image, once the job has succeeded."""
    return Response(await run_in_threadpool(editor.job_result, job_id), media_type="image/png")
