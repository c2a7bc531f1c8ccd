from typing import Literal

CaptionJobResultStatus = Literal["done", "failed", "pending", "running"]

CAPTION_JOB_RESULT_STATUS_VALUES: set[CaptionJobResultStatus] = {
    "done",
    "failed",
    "pending",
    "running",
}


def check_caption_job_result_status(value: str) -> CaptionJobResultStatus:
    if value in CAPTION_JOB_RESULT_STATUS_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {CAPTION_JOB_RESULT_STATUS_VALUES!r}")
