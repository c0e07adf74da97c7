"""The search page: criteria in a POSTed form, results paged and sorted (R3, R8).

Identifiers (caller number, personnummer) are typed into one field in any
common form and travel only in the POST body, never in a URL.  The search
service pages newest call first with opaque sealed cursors; the page keeps
the cursors of earlier pages in the form to go back, and sorts the page it
shows by the column asked for.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response

from callvault.core import identifiers
from callvault.core.access import Principal
from callvault.core.errors import InvalidInput
from callvault.entrypoints.web import i18n
from callvault.entrypoints.web.common import Form, WebRoute, actor, render, vault, viewer
from callvault.services import recordings

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 25
SORTS = {
    "time": lambda s: s.started_at,
    "duration": lambda s: s.duration_seconds,
    "care_unit": lambda s: (s.care_unit, s.started_at),
    "agent": lambda s: (s.agent or "", s.started_at),
}
CRITERIA = ("who", "care_unit", "agent", "date_from", "date_to", "min_minutes", "max_minutes")
_MAX_PAGES_BACK = 40


@dataclass
class Results:
    items: list[recordings.Summary]
    next_cursor: str | None
    cursor: str
    back: list[str]
    sort: str
    descending: bool

    @property
    def page_number(self) -> int:
        return len(self.back) + 1


@router.get("/search")
def search_page(request: Request) -> Response:
    user = viewer(request)
    return render(request, "search.html", user=user, form={}, results=None, error=None)


@router.post("/search")
def search(request: Request, form: Form) -> Response:
    user = actor(request, form)
    partial = bool(request.headers.get("hx-request"))
    template = "search_results.html" if partial else "search.html"
    criteria = {k: form.get(k, "").strip() for k in CRITERIA}
    try:
        query = _query(criteria, vault(request).now().date())
        results = _run(request, form, query, user)
    except InvalidInput as exc:
        return render(
            request, template, user=user, form=criteria, results=None, error=exc.message,
            status=200 if partial else 400,
        )  # fmt: skip
    return render(request, template, user=user, form=criteria, results=results, error=None)


def _run(
    request: Request, form: dict[str, str], query: recordings.SearchQuery, user: Principal
) -> Results:
    back = [c for c in form.get("back", "").split(",") if c][:_MAX_PAGES_BACK]
    cursor = form.get("cursor", "")
    move = form.get("move", "")
    sort = form.get("sorted", "time") if form.get("sorted") in SORTS else "time"
    descending = form.get("desc", "1") == "1"
    clicked = form.get("sort", "")
    if clicked in SORTS:  # a column heading: the same page, sorted by it
        descending = not descending if clicked == sort else True
        sort = clicked
    elif move == "next" and form.get("next_cursor"):
        back.append(cursor or "-")
        cursor = form["next_cursor"]
    elif move == "previous" and back:
        cursor = back.pop()
    elif "sorted" not in form:
        back, cursor = [], ""  # a new search starts at the first page
    if cursor == "-":
        cursor = ""
    page = recordings.search_page(vault(request), user, query, cursor or None)
    items = sorted(page.items, key=SORTS[sort], reverse=descending)
    return Results(items, page.next_cursor, cursor or "-", back, sort, descending)


def _query(c: dict[str, str], today: dt.date) -> recordings.SearchQuery:
    who = c["who"]
    caller = personnummer = None
    if who:
        if identifiers.looks_like_personnummer(who, today=today):
            personnummer = who
        else:
            caller = who
    return recordings.SearchQuery(
        caller=caller,
        personnummer=personnummer,
        care_unit=c["care_unit"] or None,
        agent=c["agent"] or None,
        started_from=_day(c["date_from"], end=False),
        started_to=_day(c["date_to"], end=True),
        min_duration_seconds=_minutes(c["min_minutes"]),
        max_duration_seconds=_minutes(c["max_minutes"]),
        limit=PAGE_SIZE,
    )


def _day(text: str, *, end: bool) -> str | None:
    """A date from the form as the start (or end) of that day in Swedish time."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("dates are written YYYY-MM-DD") from None
    moment = dt.datetime.combine(day, dt.time.max if end else dt.time.min, i18n.LOCAL_TIME)
    return moment.isoformat()


def _minutes(text: str) -> float | None:
    """Minutes as typed, with a decimal comma or point; seconds for the service."""
    if not text:
        return None
    try:
        value = float(text.replace(",", ".").replace(" ", ""))
    except ValueError:
        raise InvalidInput("durations are numbers of minutes") from None
    if not 0 <= value <= 24 * 60:
        raise InvalidInput("durations are between 0 and 1440 minutes")
    return value * 60
