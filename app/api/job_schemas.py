"""Response bodies of `/caption-jobs`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.api.schemas import CaptionPublic, caption_public
from app.http.problems import Problem, problem_json
from app.services.captioning import CaptionResult
from app.services.jobs import JobResults


class CaptionJobProgress(BaseModel):
    total: int = Field(description="Photos in the job.")
    done: int = Field(description="Photos captioned.")
    failed: int = Field(description="Photos refused at submission or failed while captioning.")
    running: int = Field(description="Photos being captioned now.")


class CaptionJobPublic(BaseModel):
    id: str
    status: Literal["queued", "done"] = Field(
        description="`queued` while photos are left to caption, then `done`."
    )
    progress: CaptionJobProgress
    eta_s: float | None = Field(
        description="Seconds left at the pace so far; null before the first photo finishes."
    )
    created_at: datetime
    finished_at: datetime | None


class CaptionJobsPublic(BaseModel):
    data: list[CaptionJobPublic]
    count: int


class CaptionJobResult(BaseModel):
    index: int = Field(description="Position of the photo in the submission (0-based).")
    filename: str
    status: Literal["pending", "running", "done", "failed"]
    caption: CaptionPublic | None = Field(None, description="The result when `done`.")
    problem: Problem | None = Field(None, description="Why the photo failed, when `failed`.")


class CaptionJobResultsPublic(BaseModel):
    data: list[CaptionJobResult]
    count: int = Field(description="Photos in the job (page with offset and limit).")


def _caption_json(result: CaptionResult) -> str:
    return caption_public(result).model_dump_json()


#: What a job stores per photo: the body of `POST /caption`, or the problem the photo failed with
#: (the `caption` and `problem` of :class:`CaptionJobResult`).
JOB_RESULTS = JobResults(caption=_caption_json, problem=problem_json)
