"""What the inference backend receives and sends for job dispatch: the job (the same object pushed in a webhook's
`data` and returned by claim-jobs), the push envelope, and the pull endpoints' bodies and answers."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

JOB_MESSAGE_TYPE = "segmentation.job"
MAX_WORKER_ID_LENGTH = 128
MAX_LEASES_PER_CALL = 1000


class DispatchJob(BaseModel):
    """One job for the backend. `job_id` is the segmentation result's id: report progress to `callback_url`
    (process-webhook) with `task_id` = `job_id`. The URLs are minted for this delivery or lease only."""

    job_id: str
    user_id: str
    project_id: str | None
    text_prompt: str | None
    source_image_url: str  # a signed download URL when the image is in segbase storage
    mask_upload_url: str  # a signed upload URL for `mask_path`: PUT the PNG (refused once the job is finished)
    mask_path: str  # masks/<user id>/<job id>.png, in the `masks` bucket
    callback_url: str
    created_at: datetime
    attempt: int  # push attempts and leases of this job so far, this one included
    urls_expire_at: datetime
    lease_id: str | None = None  # pull only: name it to extend or release the lease
    lease_expires_at: datetime | None = None  # pull only


class DispatchMessage(BaseModel):
    """The push body, shaped as a Standard Webhooks event: `type`, `timestamp`, `data`."""

    type: Literal["segmentation.job"] = JOB_MESSAGE_TYPE
    timestamp: datetime
    data: DispatchJob


class ClaimJobsRequest(BaseModel):
    """POST /functions/v1/claim-jobs. The upper bounds come from settings (DISPATCH_CLAIM_MAX_JOBS,
    DISPATCH_MAX_LEASE_SECONDS, DISPATCH_MAX_WAIT_SECONDS) and are checked by the view."""

    model_config = ConfigDict(extra="forbid")

    max: int = Field(1, ge=1)
    lease_seconds: int = Field(300, ge=5)
    worker_id: str = Field(min_length=1, max_length=MAX_WORKER_ID_LENGTH, pattern=r"^[\x21-\x7e]+$")
    wait_seconds: float = Field(0, ge=0)


class ExtendLeaseRequest(BaseModel):
    """POST /functions/v1/extend-lease: extend live leases to `lease_seconds` from now (fresh URLs returned)."""

    model_config = ConfigDict(extra="forbid")

    lease_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_LEASES_PER_CALL)
    lease_seconds: int = Field(300, ge=5)


class ReleaseJobsRequest(BaseModel):
    """POST /functions/v1/release-jobs: give leased jobs back to the queue, due after `delay_seconds`."""

    model_config = ConfigDict(extra="forbid")

    lease_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_LEASES_PER_CALL)
    delay_seconds: int = Field(0, ge=0, le=3600)


class ClaimedJobs(BaseModel):
    jobs: list[DispatchJob]


class ExtendedLeases(BaseModel):
    jobs: list[DispatchJob]  # the leases extended, with fresh URLs
    lost: list[str]  # lease ids not extended: expired, released, or the job finished or was cancelled


class ReleasedJobs(BaseModel):
    released: list[str]  # job ids back in the queue
    lost: list[str]  # lease ids that were no longer held
