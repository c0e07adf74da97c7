"""Background jobs for the admin page: kinds, states, progress and error codes.

Parse, call one service, render; ``services.jobs`` decides who may.  No
payloads or lock keys are shown: they carry recording ids, which an
administrator has no need to see.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from callvault.core.access import Principal
from callvault.entrypoints.http import deps
from callvault.services import jobs
from callvault.services.context import Vault

router = APIRouter(prefix="/api/v1", tags=["admin"])

VaultDep = Annotated[Vault, Depends(deps.vault)]
PrincipalDep = Annotated[Principal, Depends(deps.principal)]


class JobAnswer(BaseModel):
    id: int
    kind: str
    state: str
    progress_done: int
    progress_total: int | None
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: dt.datetime
    run_after: dt.datetime
    updated_at: dt.datetime


class JobsAnswer(BaseModel):
    queued: int
    running: int
    failed: int
    jobs: list[JobAnswer]


@router.get("/admin/jobs")
def list_jobs(
    principal: PrincipalDep,
    vault: VaultDep,
    state: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobsAnswer:
    """Recent jobs, newest first, with the number queued, running and failed."""
    result = jobs.list_jobs(vault, principal, state=state, limit=limit)
    return JobsAnswer(
        queued=result.queued,
        running=result.running,
        failed=result.failed,
        jobs=[
            JobAnswer(
                id=j.id,
                kind=j.kind,
                state=j.state.value,
                progress_done=j.progress_done,
                progress_total=j.progress_total,
                attempts=j.attempts,
                max_attempts=j.max_attempts,
                last_error=j.last_error,
                created_at=j.created_at,
                run_after=j.run_after,
                updated_at=j.updated_at,
            )
            for j in result.jobs
        ],
    )
