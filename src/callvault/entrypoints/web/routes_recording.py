"""One recording: metadata, waveform, player, download and its access history (R9, R13).

Playing is the API's two steps: a reason opens a playback grant here
(``playback.open_playback``, the one ``recording:play`` entry), then the
``<audio>`` element reads ``/api/v1/recordings/{id}/audio`` with ranges.
Controls a person's role would be refused are not shown (``core.access.can``
on the recording as the service returned it); the services decide anyway.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from callvault.core.access import Operation, Principal, RecordingTarget, can
from callvault.core.errors import CallvaultError, InvalidInput
from callvault.core.recordings import parse_recording_id
from callvault.entrypoints.web import i18n
from callvault.entrypoints.web.common import (
    Form,
    WebRoute,
    actor,
    error_page,
    language,
    redirect,
    render,
    vault,
    viewer,
)
from callvault.services import audit_view, playback, recordings, waveform

router = APIRouter(route_class=WebRoute, include_in_schema=False)

# Reason codes offered before playing; the text written to the log is the
# code's English wording, then what was typed.
REASON_CODES = ("callback", "follow_up", "complaint", "patient_safety", "quality", "other")
REASON_TEXT = {
    "callback": "Caller rang back",
    "follow_up": "Follow-up of the advice given",
    "complaint": "Complaint or incident investigation",
    "patient_safety": "Patient safety review",
    "quality": "Quality review of the call",
    "other": "Other",
}
HISTORY_SIZE = 50


def _id(text: str) -> uuid.UUID:
    return parse_recording_id(text)


def _reason(form: dict[str, str]) -> str:
    code, text = form.get("reason_code", ""), " ".join(form.get("reason", "").split())
    if code not in REASON_TEXT:
        raise InvalidInput("choose a reason")
    if code == "other":
        if not text:
            raise InvalidInput("describe the reason")
        return text
    return f"{REASON_TEXT[code]}: {text}" if text else REASON_TEXT[code]


def _may(user: Principal, operation: Operation, target: object, request: Request) -> bool:
    return can(user, operation, target, now=vault(request).now()).allowed  # type: ignore[arg-type]


@router.get("/recordings/{recording_id}")
def recording_page(recording_id: str, request: Request) -> Response:
    user = viewer(request)
    detail = recordings.show(vault(request), user, _id(recording_id))
    s = detail.summary
    target = RecordingTarget(s.care_unit, s.agent, s.id)
    history = None
    if _may(user, Operation.AUDIT_READ, None, request):
        query = audit_view.AuditQuery(recording_id=s.id, limit=HISTORY_SIZE)
        history = audit_view.list_entries(vault(request), user, query).entries
    return render(
        request,
        "recording.html",
        user=user,
        detail=detail,
        may_play=_may(user, Operation.RECORDING_PLAY, target, request),
        may_download=_may(user, Operation.RECORDING_DOWNLOAD, target, request),
        history=history,
        reason_codes=REASON_CODES,
        error=None,
    )


@router.get("/recordings/{recording_id}/waveform.json")
def waveform_json(recording_id: str, request: Request) -> Response:
    """The stored peaks as numbers in -1..1 (min, max pairs), for the waveform drawing."""
    user = viewer(request)
    found = waveform.waveform(vault(request), user, _id(recording_id))
    scale = waveform.PEAK_SCALE
    # The waveform library draws one channel of values; the larger of each
    # bucket's |min| and |max| keeps the outline's height.
    peaks = [
        round(max(-found.peaks[i], found.peaks[i + 1]) / scale, 3)
        for i in range(0, len(found.peaks) - 1, 2)
    ]
    return JSONResponse({"duration": found.duration_seconds, "peaks": peaks})


@router.post("/recordings/{recording_id}/play")
def open_playback(recording_id: str, request: Request, form: Form) -> Response:
    """Open a playback grant for a reason; answers JSON for the page's script."""
    t = i18n.Translator(language(request)).t
    try:
        user = actor(request, form)
        grant = playback.open_playback(vault(request), user, _id(recording_id), _reason(form))
    except InvalidInput as exc:
        return JSONResponse({"error": t("recording.reason_refused", detail=exc.message)}, 400)
    except CallvaultError as exc:
        return JSONResponse({"error": t(f"error.{_code(exc)}")}, exc.http_status)
    return JSONResponse(
        {
            "url": f"/api/v1/recordings/{grant.recording_id}/audio",
            "expires": i18n.Translator(language(request)).time(grant.expires_at),
        }
    )


def _code(exc: CallvaultError) -> str:
    known = {"access_denied", "not_found", "rate_limited", "unauthenticated"}
    return exc.code if exc.code in known else "invalid_input"


@router.post("/recordings/{recording_id}/download")
def open_download(recording_id: str, request: Request, form: Form) -> Response:
    """Open a one-copy download grant, then fetch the copy from the API."""
    user = actor(request, form)
    try:
        grant = playback.open_download(vault(request), user, _id(recording_id), _reason(form))
    except InvalidInput as exc:
        return error_page(request, exc)
    return redirect(f"/api/v1/recordings/{grant.recording_id}/download")
