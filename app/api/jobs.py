"""`/caption-jobs`: caption an album as a job that runs in the background."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile, status

from app.api.job_schemas import (
    CaptionJobProgress,
    CaptionJobPublic,
    CaptionJobResult,
    CaptionJobResultsPublic,
    CaptionJobsPublic,
)
from app.http.deps import CurrentUser, JobServiceDep, RuntimeDep
from app.http.problems import problem_responses
from app.http.uploads import read_upload
from app.services.jobs import JobOptions, JobView, unzip_photos
from model.prompt import PromptStyle

router = APIRouter(prefix="/caption-jobs", tags=["caption-jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=32, description="A caption job's id")]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Limit = Annotated[int, Query(ge=1, le=500)]


def _public(view: JobView) -> CaptionJobPublic:
    p = view.progress
    return CaptionJobPublic(
        id=view.job.id,
        status="done" if view.job.status == "done" else "queued",
        progress=CaptionJobProgress(total=p.total, done=p.done, failed=p.failed, running=p.running),
        eta_s=view.eta_s,
        created_at=view.job.created_at,
        finished_at=view.job.finished_at,
    )


@router.post(
    "",
    response_model=CaptionJobPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 413, 415, 422, 429),
)
async def create_caption_job(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    user: CurrentUser,
    jobs: JobServiceDep,
    images: Annotated[
        list[UploadFile] | None, File(description="Photos to caption (JPEG/PNG/WebP/GIF/BMP).")
    ] = None,
    archive: Annotated[
        UploadFile | None, File(description="A zip archive of photos (others are ignored).")
    ] = None,
    top_k: Annotated[int | None, Form(ge=1, le=8)] = None,
    min_score: Annotated[float | None, Form(ge=-1.0, le=1.0)] = None,
    concept_ids: Annotated[list[int] | None, Form(max_length=8)] = None,
    instruction: Annotated[str | None, Form(max_length=1000)] = None,
    max_tokens: Annotated[int | None, Form(ge=1, le=1024)] = None,
    prompt_style: Annotated[PromptStyle, Form()] = PromptStyle.REPIC,
) -> CaptionJobPublic:
    """Queue an album: answers at once; a photo that cannot be read fails alone."""
    limits = runtime.settings.upload
    photos = [(f.filename or "", await read_upload(f, limits.max_bytes)) for f in images or []]
    if archive is not None:
        data = await read_upload(archive, runtime.settings.jobs.max_photos * limits.max_bytes)
        photos += await runtime.run(
            unzip_photos,
            data,
            max_bytes=limits.max_bytes,
            max_files=runtime.settings.jobs.max_photos,
        )
    options = JobOptions(
        top_k=top_k,
        min_score=min_score,
        concept_ids=concept_ids,
        instruction=instruction,
        max_tokens=max_tokens,
        prompt_style=prompt_style,
    )
    view = await runtime.run(jobs.submit, user.id, photos, options)
    runner = getattr(request.app.state, "job_runner", None)
    if runner is not None:
        runner.wake()
    response.headers["Location"] = f"/caption-jobs/{view.job.id}"
    return _public(view)


@router.get("", response_model=CaptionJobsPublic, responses=problem_responses(401, 422))
async def list_caption_jobs(
    runtime: RuntimeDep,
    user: CurrentUser,
    jobs: JobServiceDep,
    offset: Offset = 0,
    limit: Limit = 50,
) -> CaptionJobsPublic:
    """Your caption jobs, newest first."""
    views, count = await runtime.run(jobs.list_jobs, user.id, offset=offset, limit=limit)
    return CaptionJobsPublic(data=[_public(v) for v in views], count=count)


@router.get("/{job_id}", response_model=CaptionJobPublic, responses=problem_responses(401, 404))
async def get_caption_job(
    runtime: RuntimeDep, user: CurrentUser, jobs: JobServiceDep, job_id: JobId
) -> CaptionJobPublic:
    """Status and progress of your job, with an estimate of the time left."""
    return _public(await runtime.run(jobs.view, user.id, job_id))


@router.get(
    "/{job_id}/results",
    response_model=CaptionJobResultsPublic,
    responses=problem_responses(401, 404, 422),
)
async def list_caption_job_results(
    runtime: RuntimeDep,
    user: CurrentUser,
    jobs: JobServiceDep,
    job_id: JobId,
    offset: Offset = 0,
    limit: Limit = 100,
) -> CaptionJobResultsPublic:
    """One entry per photo, in submission order: its caption or its problem."""
    rows, count = await runtime.run(jobs.results, user.id, job_id, offset=offset, limit=limit)
    return CaptionJobResultsPublic(
        data=[CaptionJobResult.model_validate(row) for row in rows], count=count
    )


@router.delete(
    "/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 404)
)
async def delete_caption_job(
    runtime: RuntimeDep, user: CurrentUser, jobs: JobServiceDep, job_id: JobId
) -> None:
    """Cancel your job and delete it with its photos and results."""
    await runtime.run(jobs.delete, user.id, job_id)
