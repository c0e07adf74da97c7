"""Log review pages: the audit log, its integrity check and the review queue (R13, R14, R17).

The same services as ``/api/v1/audit`` and ``/api/v1/review``:
``audit_view.list_entries`` (every read is itself logged), ``audit_view.verify_log``
and ``review.list_items`` / ``review.resolve``.  Filters travel in a POSTed
form, like the search page's, so whatever a reviewer types never lands in an
address or a server log; only a recording id may come in the address, for
links from the review queue.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response

from callvault.core.access import Operation, Principal, Role
from callvault.core.audit import Action
from callvault.core.errors import InvalidInput, NotFound
from callvault.core.recordings import parse_recording_id
from callvault.entrypoints.web import i18n, nav
from callvault.entrypoints.web.common import (
    Form,
    WebRoute,
    actor,
    redirect,
    render,
    vault,
    viewer,
)
from callvault.services import audit_view, review
from callvault.services.guard import authorise
from callvault.services.review_rules import RULES

router = APIRouter(route_class=WebRoute, include_in_schema=False)

_REVIEWERS = frozenset({Role.LOG_REVIEWER, Role.PRIVACY_OFFICER})
nav.register(nav.NavItem("/audit", "nav.audit", _REVIEWERS))
nav.register(nav.NavItem("/audit/verify", "nav.verify", _REVIEWERS))
nav.register(nav.NavItem("/review", "nav.review", _REVIEWERS))

PAGE_SIZE = 50
FILTERS = ("actor", "care_unit", "action", "date_from", "date_to", "recording")
ACTIONS = tuple(sorted(a.value for a in Action))
# Item kinds with a text of their own; any other kind is shown as stored.
KINDS = frozenset(
    {*RULES, "emergency_access", "emergency_play", "emergency_download", "rate_limit"}
)
_MAX_PAGES_BACK = 40


@dataclass
class LogPage:
    entries: list[audit_view.AuditEntry]
    next_cursor: str | None
    cursor: str
    back: list[str]

    @property
    def page_number(self) -> int:
        return len(self.back) + 1


# --- the audit log ------------------------------------------------------------------


@router.get("/audit")
def audit_page(request: Request) -> Response:
    """The newest entries; ``?recording=<id>`` narrows to one call, ``?from=<no.>``
    starts at one entry (links from the review queue)."""
    user = viewer(request)
    wanted = request.query_params.get("recording", "")
    start = request.query_params.get("from", "")
    criteria = dict.fromkeys(FILTERS, "")
    criteria["recording"] = str(parse_recording_id(wanted)) if wanted else ""
    cursor = ""
    if start:
        if not (start.isascii() and start.isdigit() and len(start) <= 18):
            raise InvalidInput("an entry number is a whole number")
        cursor = str(int(start) + 1)  # the page holds the entries below the cursor
    page = _read(request, user, criteria, cursor=cursor, back=[])
    return _log(request, user, criteria, page, None)


@router.post("/audit")
def audit_search(request: Request, form: Form) -> Response:
    user = actor(request, form)
    criteria = {k: " ".join(form.get(k, "").split()) for k in FILTERS}
    back = [c for c in form.get("back", "").split(",") if c][:_MAX_PAGES_BACK]
    cursor = form.get("cursor", "")
    move = form.get("move", "")
    if move == "next" and form.get("next_cursor"):
        back.append(cursor or "-")
        cursor = form["next_cursor"]
    elif move == "previous" and back:
        cursor = back.pop()
    else:
        back, cursor = [], ""  # new filters start at the newest entry
    try:
        page = _read(request, user, criteria, cursor="" if cursor == "-" else cursor, back=back)
    except InvalidInput as exc:
        return _log(request, user, criteria, None, exc.message, status=400)
    return _log(request, user, criteria, page, None)


def _read(
    request: Request, user: Principal, criteria: dict[str, str], *, cursor: str, back: list[str]
) -> LogPage:
    query = audit_view.AuditQuery(
        time_from=_day(criteria["date_from"], end=False),
        time_to=_day(criteria["date_to"], end=True),
        action=criteria["action"] or None,
        actor=criteria["actor"] or None,
        recording_id=parse_recording_id(criteria["recording"]) if criteria["recording"] else None,
        limit=PAGE_SIZE,
        cursor=cursor or None,
        care_unit=criteria["care_unit"] or None,
    )
    page = audit_view.list_entries(vault(request), user, query)
    return LogPage(page.entries, page.next_cursor, cursor or "-", back)


def _day(text: str, *, end: bool) -> str | None:
    """A date from the form as the start of that day (or of the next) in Swedish time,
    the time the pages show; the service's own bare dates are UTC days."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("dates are written YYYY-MM-DD") from None
    if end:
        day += dt.timedelta(days=1)  # the filter's end is exclusive
    return dt.datetime.combine(day, dt.time(), i18n.LOCAL_TIME).isoformat()


def _log(
    request: Request,
    user: Principal,
    criteria: dict[str, str],
    page: LogPage | None,
    error: str | None,
    status: int = 200,
) -> Response:
    partial = bool(request.headers.get("hx-request"))
    return render(
        request,
        "audit_results.html" if partial else "audit.html",
        user=user,
        form=criteria,
        page=page,
        error=error,
        actions=ACTIONS,
        status=200 if partial else status,
    )


# --- integrity ------------------------------------------------------------------------


@router.get("/audit/verify")
def verify_page(request: Request) -> Response:
    user = viewer(request)
    # Nothing is read yet, so no service would refuse: ask the same question
    # ``verify_log`` asks, so the page is not offered to whoever may not use it.
    authorise(vault(request), user, Operation.AUDIT_VERIFY, None)
    return render(request, "audit_verify.html", user=user, report=None)


@router.post("/audit/verify")
def verify_now(request: Request, form: Form) -> Response:
    user = actor(request, form)
    report = audit_view.verify_log(vault(request), user)
    checked_at = vault(request).now()
    return render(request, "audit_verify.html", user=user, report=report, checked_at=checked_at)


# --- the review queue -------------------------------------------------------------------


@router.get("/review")
def review_page(request: Request) -> Response:
    user = viewer(request)
    show_all = request.query_params.get("all") == "1"
    done = request.query_params.get("m") == "resolved"
    return _queue(request, user, show_all, notice="review.resolved" if done else None)


@router.post("/review/{item_id}/resolve")
def resolve_item(item_id: int, request: Request, form: Form) -> Response:
    user = actor(request, form)
    outcome = form.get("outcome", "")
    comment = " ".join(form.get("comment", "").split())
    try:
        review.resolve(vault(request), user, item_id, outcome, comment or None)
    except (InvalidInput, NotFound) as exc:
        key = "review.error.gone" if isinstance(exc, NotFound) else "review.error.input"
        detail = exc.message if isinstance(exc, InvalidInput) else ""
        return _queue(
            request, user, False, error=(key, detail), failed_item=item_id, form=form,
            status=404 if isinstance(exc, NotFound) else 400,
        )  # fmt: skip
    return redirect("/review?m=resolved", request)


def _queue(
    request: Request,
    user: Principal,
    show_all: bool,
    *,
    notice: str | None = None,
    error: tuple[str, str] | None = None,
    failed_item: int | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    items = review.list_items(vault(request), user, open_only=not show_all)
    return render(
        request,
        "review.html",
        user=user,
        items=items,
        show_all=show_all,
        outcomes=review.OUTCOMES,
        kinds=KINDS,
        notice=notice,
        error=error,
        failed_item=failed_item,
        form=form or {},
        status=status,
    )
