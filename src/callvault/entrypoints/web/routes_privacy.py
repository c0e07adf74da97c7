"""The privacy officer's pages: log extracts, Art. 15 copies, breach reports and
the review report (R17, R18, R21, R22).

The same services as ``/api/v1/privacy/*`` and ``/api/v1/review/report``:
``extracts.produce`` (+ ``extract_pdf.render``), ``exports.export``,
``breach.breach_report`` and ``review.report``.  A caller's phone number or
personnummer is typed into a POSTed form and never put in an address, a
file name or the page's answer.  Downloads are attachments named by date
only.  An Art. 15 copy (age ciphertext only, spooled in an anonymous
temporary file) is the answer to the page script's POST, with its passphrase
in a header for the script to show once; the server keeps nothing after it.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from callvault.core.access import Operation, Principal, Role, can
from callvault.core.errors import InvalidInput, NotFound
from callvault.core.extract_verify import HOW
from callvault.entrypoints.http.routes_privacy import PASSPHRASE_HEADER
from callvault.entrypoints.web import i18n, nav
from callvault.entrypoints.web.common import (
    Form,
    WebInputError,
    WebRoute,
    actor,
    language,
    render,
    vault,
    viewer,
)
from callvault.entrypoints.web.routes_review import KINDS
from callvault.services import breach, exports, extract_pdf, extracts, review
from callvault.services.guard import authorise

router = APIRouter(route_class=WebRoute, include_in_schema=False)

OFFICERS = frozenset({Role.PRIVACY_OFFICER})
nav.register(nav.NavItem("/privacy", "nav.privacy", OFFICERS))

FAILURES = (InvalidInput, NotFound)
# The export page's script marks its POST with this header (a plain form cannot).
EXPORT_MARKER = "Callvault-Export-Request"
RECORDINGS_HEADER = "Callvault-Export-Recordings"
_HOW_TEXT = {code: {"en": en, "sv": sv} for code, en, sv in HOW.values()}
# The breach report counts by action tag; shown in words like the extract's "how".
_ACTION_TEXT = {action: {"en": en, "sv": sv} for action, (_, en, sv) in HOW.items()}


def subject(form: dict[str, str]) -> tuple[str | None, str | None]:
    """The caller as typed: phone number and/or personnummer (either may be empty)."""
    return (
        form.get("caller", "").strip() or None,
        form.get("personnummer", "").strip() or None,
    )


def failure(exc: InvalidInput | NotFound) -> tuple[str, str]:
    """A refused form's message: a translated heading and the service's own wording."""
    if isinstance(exc, NotFound):
        return ("privacy.error.not_found", "")
    return ("privacy.error.input", exc.message)


def download(body: bytes, media_type: str, name: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def stamp(moment: dt.datetime) -> str:
    """A file name's date part (no personal data in file names)."""
    return moment.astimezone(dt.UTC).strftime("%Y%m%d-%H%M%S")


def _partial(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


# --- the hub -------------------------------------------------------------------------


@router.get("/privacy")
def privacy_home(request: Request) -> Response:
    user = viewer(request)
    # The hub reads nothing: ask the question the pages' services ask, so it
    # is not shown to a role that may use none of them.
    authorise(vault(request), user, Operation.AUDIT_EXTRACT, None)
    policies = can(user, Operation.POLICY_READ, None, now=vault(request).now()).allowed
    return render(request, "privacy_home.html", user=user, policies=policies)


# --- the patient's log extract (R18) -----------------------------------------------------


@router.get("/privacy/extract")
def extract_page(request: Request) -> Response:
    user = viewer(request)
    authorise(vault(request), user, Operation.AUDIT_EXTRACT, None)
    return _extract(request, user)


@router.post("/privacy/extract")
def extract(request: Request, form: Form) -> Response:
    """Show the extract on the page, or download it as PDF or JSON."""
    user = actor(request, form)
    wanted = form.get("format", "html")
    if wanted not in ("html", "pdf", "json"):
        raise WebInputError("privacy.error.format")
    lang = language(request)
    caller, personnummer = subject(form)
    try:
        produced = extracts.produce(
            vault(request),
            user,
            caller=caller,
            personnummer=personnummer,
            with_users=form.get("with_users") == "1",
        )
    except FAILURES as exc:
        return _extract(request, user, error=failure(exc), status=exc.http_status)
    name = f"{'loggutdrag' if lang == 'sv' else 'log-extract'}-{stamp(vault(request).now())}"
    if wanted == "pdf":
        return download(
            extract_pdf.render(produced.document, lang), "application/pdf", f"{name}.pdf"
        )
    if wanted == "json":
        return download(produced.json_bytes(), "application/json", f"{name}.json")
    return _extract(request, user, produced=produced)


def _extract(
    request: Request,
    user: Principal,
    *,
    produced: extracts.Extract | None = None,
    error: tuple[str, str] | None = None,
    status: int = 200,
) -> Response:
    lang = language(request)
    entries = [
        {**e, "when": _utc(e["time"]), "how_text": _HOW_TEXT.get(e["how"], {}).get(lang, e["how"])}
        for e in (produced.entries if produced else [])
    ]
    recordings = [
        {**r, "started": _utc(r["started_at"])}
        for r in (produced.document["recordings"] if produced else [])
    ]
    partial = _partial(request)
    return render(
        request,
        "privacy_extract_result.html" if partial else "privacy_extract.html",
        user=user,
        produced=produced,
        entries=entries,
        recordings=recordings,
        error=error,
        status=200 if partial else status,
    )


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the caller's copy (Art. 15, R21) ----------------------------------------------------


@router.get("/privacy/export")
def export_page(request: Request) -> Response:
    user = viewer(request)
    authorise(vault(request), user, Operation.SUBJECT_EXPORT, None)
    return _export_page(request, user)


@router.post("/privacy/export")
def make_export(request: Request, form: Form) -> Response:
    """The copy itself, as the answer, for the page's script to save (R21).

    Nothing is kept server side, so any process behind the port can answer.
    The script marks its request: a plain form POST would download a file
    whose passphrase nobody saw, so it gets the page back with a message.
    """
    user = actor(request, form)
    if request.headers.get(EXPORT_MARKER) != "1":
        authorise(vault(request), user, Operation.SUBJECT_EXPORT, None)
        # Never hand out a file whose passphrase nobody saw: the page needs its script.
        return _export_page(request, user, error=("privacy.export.needs_script", ""), status=400)
    # The spool holds age ciphertext only; decrypted audio never reaches it.
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the response stream)
    try:
        caller, personnummer = subject(form)
        done = exports.export(vault(request), user, spool, caller=caller, personnummer=personnummer)
    except FAILURES as exc:
        spool.close()
        return _export_page(request, user, error=failure(exc), status=exc.http_status)
    except BaseException:
        spool.close()
        raise
    name = f"registerutdrag-{stamp(vault(request).now())}.zip.age"
    return StreamingResponse(
        _chunks(spool),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(done.size),
            "Cache-Control": "no-store",
            PASSPHRASE_HEADER: done.passphrase,
            RECORDINGS_HEADER: str(done.recordings),
        },
    )


def _export_page(
    request: Request, user: Principal, *, error: tuple[str, str] | None = None, status: int = 200
) -> Response:
    return render(request, "privacy_export.html", user=user, error=error, status=status)


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    with spool:
        spool.seek(0)
        while chunk := spool.read(64 * 1024):
            yield chunk


# --- breach report (Art. 33, R22) --------------------------------------------------------

BREACH_FIELDS = ("time_from", "time_to", "actor")


@router.get("/privacy/breach")
def breach_page(request: Request) -> Response:
    user = viewer(request)
    authorise(vault(request), user, Operation.BREACH_REPORT, None)
    return render(request, "privacy_breach.html", user=user, report=None, form={}, error=None)


@router.post("/privacy/breach")
def breach_report(request: Request, form: Form) -> Response:
    user = actor(request, form)
    typed = {k: form.get(k, "").strip() for k in BREACH_FIELDS}
    typed["show_callers"] = "1" if form.get("show_callers") == "1" else ""
    try:
        report = breach.breach_report(
            vault(request),
            user,
            time_from=local_time(typed["time_from"]),
            time_to=local_time(typed["time_to"]),
            actor=typed["actor"] or None,
            show_callers=bool(typed["show_callers"]),
        )
    except FAILURES as exc:
        return render(
            request, "privacy_breach.html", user=user, report=None, form=typed,
            error=failure(exc), status=exc.http_status,
        )  # fmt: skip
    lang = language(request)
    actions = {action: text[lang] for action, text in _ACTION_TEXT.items()}
    return render(
        request, "privacy_breach.html", user=user, report=report, form=typed, error=None,
        actions=actions,
    )  # fmt: skip


def local_time(text: str) -> dt.datetime | None:
    """A ``datetime-local`` field (Swedish time) as an aware moment."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("times are written YYYY-MM-DD HH:MM") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=i18n.LOCAL_TIME)
    return moment


# --- the review report (R17) ---------------------------------------------------------------


@router.get("/privacy/review-report")
def review_report_page(request: Request) -> Response:
    user = viewer(request)
    authorise(vault(request), user, Operation.REVIEW_MANAGE, None)
    last_month = vault(request).now().replace(day=1) - dt.timedelta(days=1)
    period = {"period": last_month.strftime("%Y-%m")}
    return _report(request, user, None, period, None)


@router.post("/privacy/review-report")
def review_report(request: Request, form: Form) -> Response:
    user = actor(request, form)
    period = {"period": form.get("period", "").strip()}
    try:
        monthly = review.report(vault(request), user, period=period["period"])
    except InvalidInput as exc:
        return _report(request, user, None, period, failure(exc), status=400)
    return _report(request, user, monthly, period, None)


def _report(
    request: Request,
    user: Principal,
    monthly: review.MonthlyReport | None,
    form: dict[str, str],
    error: tuple[str, str] | None,
    status: int = 200,
) -> Response:
    context: dict[str, Any] = {"kinds": KINDS, "outcomes": review.OUTCOMES}
    return render(
        request, "privacy_review_report.html", user=user, report=monthly, form=form,
        error=error, status=status, **context,
    )  # fmt: skip
