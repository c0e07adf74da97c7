"""Background jobs page: what the workers are doing and what failed.

The same service as ``callvault jobs list`` (``jobs.list_jobs``): kinds,
states, attempts, progress and error codes; never a job's payload, which may
name a recording.  Queueing jobs by hand stays with the local operator.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from callvault.core.errors import ConfigError
from callvault.core.jobs import JobState
from callvault.entrypoints.web.common import WebRoute, render, vault, viewer
from callvault.services import jobs

router = APIRouter(route_class=WebRoute, include_in_schema=False)

STATES = tuple(s.value for s in JobState)
SHOWN = 100


@router.get("/admin/jobs")
def jobs_page(request: Request) -> Response:
    user = viewer(request)
    wanted = request.query_params.get("state", "")
    state = wanted if wanted in STATES else None
    try:
        found = jobs.list_jobs(vault(request), user, state=state, limit=SHOWN)
    except ConfigError:
        # A vault without a job queue (an embedded one) has nothing to show.
        return render(request, "admin_jobs.html", user=user, found=None, state=state, states=STATES)
    return render(request, "admin_jobs.html", user=user, found=found, state=state, states=STATES)
