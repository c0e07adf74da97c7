"""Emergency access (break the glass, R10): a typed reason, a scope, at most 4 hours.

``emergency.open_emergency`` decides who may open one and writes the flagged,
reviewed ``access:emergency`` entry; every page then shows a banner with the
grant's expiry while it lasts.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request, Response

from callvault.core.errors import AccessDenied, InvalidInput
from callvault.entrypoints.web.common import Form, WebRoute, actor, redirect, render, vault, viewer
from callvault.services import emergency

router = APIRouter(route_class=WebRoute, include_in_schema=False)

DURATIONS = (30, 60, 120, 240)  # minutes offered


@router.get("/emergency")
def emergency_page(request: Request) -> Response:
    user = viewer(request)
    return render(request, "emergency.html", user=user, form={}, error=None, durations=DURATIONS)


@router.post("/emergency")
def open_emergency(request: Request, form: Form) -> Response:
    user = actor(request, form)
    scope = form.get("scope", "units")
    units = [u.strip() for u in form.get("care_units", "").replace(";", ",").split(",")]
    wanted = "any" if scope == "any" else [u for u in units if u]
    try:
        minutes = int(form.get("minutes", "60"))
        if minutes not in DURATIONS:
            raise InvalidInput("choose one of the durations offered")
        emergency.open_emergency(
            vault(request), user, form.get("reason", ""), wanted, dt.timedelta(minutes=minutes)
        )
    except (InvalidInput, AccessDenied, ValueError) as exc:
        message = exc.message if isinstance(exc, InvalidInput) else None
        key = "emergency.error.denied" if isinstance(exc, AccessDenied) else "emergency.error.input"
        return render(
            request, "emergency.html", user=user, form=form, error=(key, message or ""),
            durations=DURATIONS, status=403 if isinstance(exc, AccessDenied) else 400,
        )  # fmt: skip
    return redirect("/search")
