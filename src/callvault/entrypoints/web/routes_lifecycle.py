"""The privacy officer's lifecycle pages: recording policies (read), legal holds and
erasure by caller (R19, R20, R21).

The same services as ``/api/v1/policies``, ``/api/v1/recordings/<id>/hold``,
``/release`` and ``/api/v1/erasure``: ``policies.list_policies``,
``retention.hold`` / ``retention.release`` and ``erasure.erase_by_caller``.
An erasure is always previewed first (what matches, what may go and why
not); erasing the eligible needs a ticked confirmation.  The caller's
identifiers travel in the POSTed form only; the answer never repeats them.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from callvault.core.access import Operation, Principal
from callvault.core.errors import Conflict, InvalidInput, NotFound
from callvault.core.recordings import parse_recording_id
from callvault.core.retention import Verdict
from callvault.entrypoints.web.common import Form, WebRoute, actor, render, vault, viewer
from callvault.entrypoints.web.routes_privacy import failure, subject
from callvault.services import erasure, policies, retention
from callvault.services.guard import authorise

router = APIRouter(route_class=WebRoute, include_in_schema=False)

KEPT = frozenset({Verdict.LEGAL_HOLD, Verdict.RECORD_DOCUMENT, Verdict.NOT_DUE})


# --- recording policies (read) -------------------------------------------------------------


@router.get("/privacy/policies")
def policies_page(request: Request) -> Response:
    user = viewer(request)
    found = policies.list_policies(vault(request), user)
    rows = sorted(found, key=lambda p: (not p.active, p.care_unit, p.retention_class))
    return render(request, "privacy_policies.html", user=user, policies=rows)


# --- legal holds ---------------------------------------------------------------------------


@router.get("/privacy/holds")
def holds_page(request: Request) -> Response:
    return _holds(request, viewer(request))


@router.post("/privacy/holds/set")
def set_hold(request: Request, form: Form) -> Response:
    user = actor(request, form)
    try:
        held = retention.hold(vault(request), user, _recording(form), form.get("reference", ""))
    except (InvalidInput, NotFound, Conflict) as exc:
        return _holds(request, user, form=form, error=_refused(exc), status=exc.http_status)
    return _holds(request, user, done=("privacy.holds.set_done", held))


@router.post("/privacy/holds/release")
def release_hold(request: Request, form: Form) -> Response:
    user = actor(request, form)
    try:
        released = retention.release(
            vault(request), user, _recording(form), form.get("reference", "")
        )
    except (InvalidInput, NotFound, Conflict) as exc:
        return _holds(request, user, form=form, error=_refused(exc), status=exc.http_status)
    return _holds(request, user, done=("privacy.holds.released", released))


def _recording(form: dict[str, str]) -> uuid.UUID:
    return parse_recording_id(form.get("recording_id", "").strip())


def _refused(exc: InvalidInput | NotFound | Conflict) -> tuple[str, str]:
    if isinstance(exc, Conflict):
        return ("privacy.error.conflict", exc.message)
    if isinstance(exc, NotFound):
        return ("privacy.error.no_recording", "")
    return failure(exc)


def _holds(
    request: Request,
    user: Principal,
    *,
    done: tuple[str, object] | None = None,
    error: tuple[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    kept = {k: v for k, v in (form or {}).items() if k in ("recording_id", "reference")}
    # The holds in force (``hold.list``, logged): who may not list them may not set them.
    held = retention.list_holds(vault(request), user)
    return render(
        request, "privacy_holds.html", user=user, done=done, error=error, form=kept,
        status=status, holds=held,
    )  # fmt: skip


# --- erasure by caller (Art. 17) -------------------------------------------------------------


@router.get("/privacy/erasure")
def erasure_page(request: Request) -> Response:
    user = viewer(request)
    authorise(vault(request), user, Operation.SUBJECT_ERASE, None)
    return _erasure(request, user, form={})


@router.post("/privacy/erasure")
def erase(request: Request, form: Form) -> Response:
    """Preview (the default), or erase the eligible with ``action=erase`` and ``confirm``."""
    user = actor(request, form)
    typed = {k: form.get(k, "").strip() for k in ("reason", "decision")}
    erasing = form.get("action") == "erase"
    if erasing and form.get("confirm") != "1":
        return _erasure(request, user, form=typed, error=("privacy.erasure.confirm_first", ""))
    caller, personnummer = subject(form)
    try:
        report = erasure.erase_by_caller(
            vault(request),
            user,
            caller=caller,
            personnummer=personnummer,
            reason=typed["reason"],
            decision=typed["decision"] or None,
            dry_run=not erasing,
        )
    except (InvalidInput, NotFound) as exc:
        return _erasure(request, user, form=typed, error=failure(exc), status=exc.http_status)
    return _erasure(request, user, form=typed, report=report)


def _erasure(
    request: Request,
    user: Principal,
    *,
    form: dict[str, str],
    report: erasure.ErasureReport | None = None,
    error: tuple[str, str] | None = None,
    status: int = 200,
) -> Response:
    partial = bool(request.headers.get("hx-request"))
    return render(
        request,
        "privacy_erasure_result.html" if partial else "privacy_erasure.html",
        user=user,
        form=form,
        report=report,
        erased=set(report.erased) if report else set(),
        kept=KEPT,
        error=error,
        status=200 if partial else status,
    )
