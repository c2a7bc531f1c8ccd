from typing import Literal

CaptionJobPublicStatus = Literal["done", "queued"]

CAPTION_JOB_PUBLIC_STATUS_VALUES: set[CaptionJobPublicStatus] = {
    "done",
    "queued",
}


def check_caption_job_public_status(value: str) -> CaptionJobPublicStatus:
    if value in CAPTION_JOB_PUBLIC_STATUS_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {CAPTION_JOB_PUBLIC_STATUS_VALUES!r}")
