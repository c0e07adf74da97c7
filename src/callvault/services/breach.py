"""Breach report (GDPR Art. 33, R22): what a time window or a credential reached.

For a time window and/or one user or API token (``token:NAME``): which
recordings were listed by a search, viewed, played, downloaded or exported,
and how many distinct callers they concern, the figures an Art. 33 notice
needs.  Only the privacy officer (``breach.report``) may ask; with
``show_callers`` the report also opens each recording's sealed caller
number and personnummer, for notifying the people concerned (Art. 34).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from callvault.core.access import Operation, Principal
from callvault.core.audit import Action, AuditEvent, Outcome
from callvault.core.errors import InvalidInput
from callvault.core.recordings import RecordingRow
from callvault.services import audit, keyring
from callvault.services.context import Vault
from callvault.services.details import open_details, parse_timestamp
from callvault.services.guard import authorise

_REACHING = (
    Action.RECORDING_SEARCH,
    Action.RECORDING_VIEW,
    Action.RECORDING_PLAY,
    Action.RECORDING_DOWNLOAD,
    Action.RECORDING_EXPORT,
    Action.SUBJECT_EXPORT,
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class AccessedRecording:
    recording_id: uuid.UUID
    care_unit: str | None  # None: the recording has been erased since
    started_at: dt.datetime | None
    how: dict[str, int]  # action tag -> number of entries
    first: dt.datetime
    last: dt.datetime
    caller: str | None = None  # only with show_callers
    personnummer: str | None = None


@dataclass(frozen=True)
class BreachReport:
    time_from: dt.datetime | None
    time_to: dt.datetime | None
    actor: str | None
    accesses: int
    recordings: list[AccessedRecording] = field(default_factory=list)
    distinct_callers: int = 0
    without_caller: int = 0  # no identifier stored, or erased since
    with_identifiers: bool = False


def breach_report(
    vault: Vault,
    principal: Principal,
    *,
    time_from: dt.datetime | str | None = None,
    time_to: dt.datetime | str | None = None,
    actor: str | None = None,
    show_callers: bool = False,
) -> BreachReport:
    """The report; ``InvalidInput`` without a window or an actor, or for a bad window.

    Times may be given as typed (ISO 8601 with an offset): they are parsed
    only once the principal may ask at all.
    """
    authorise(vault, principal, Operation.BREACH_REPORT, None)
    time_from = parse_timestamp(time_from) if isinstance(time_from, str) else time_from
    time_to = parse_timestamp(time_to) if isinstance(time_to, str) else time_to
    if time_from is None and time_to is None and not actor:
        raise InvalidInput("give a time window, a user or token, or both")
    lo, hi = time_from or _EPOCH, time_to or vault.now() + dt.timedelta(seconds=1)
    if lo.utcoffset() is None or hi.utcoffset() is None or lo >= hi:
        raise InvalidInput("the window needs time zones and must end after it starts")
    touched: dict[uuid.UUID, list[tuple[str, dt.datetime]]] = defaultdict(list)
    accesses = 0
    with vault.store.transaction(read_only=True) as tx:
        for record in tx.review.audit_between(lo, hi, [str(a) for a in _REACHING]):
            event = AuditEvent.from_canonical(bytes(record.body))
            if event.outcome != Outcome.SUCCESS or (actor and event.actor != actor):
                continue
            accesses += 1
            if event.action == Action.RECORDING_SEARCH:
                reached = tx.review.search_hits_of(record.seq)
            else:
                reached = [event.recording_id] if event.recording_id else []
            for rid in reached:
                touched[rid].append((str(event.action), event.time))
        rows = {row.id: row for row in tx.review.recordings_by_id(sorted(touched))}
    found = [
        _accessed(vault, rid, uses, rows.get(rid), show_callers) for rid, uses in touched.items()
    ]
    found.sort(key=lambda r: (r.first, r.recording_id.bytes))
    callers = {_person(row) for row in rows.values()} - {None}
    unknown = sum(
        1 for r in found if r.recording_id not in rows or not _person(rows[r.recording_id])
    )
    report = BreachReport(
        time_from, time_to, actor, accesses, found, len(callers), unknown, show_callers
    )
    audit.record_alone(
        vault, principal, Action.BREACH_REPORT,
        detail={
            "accesses": accesses, "recordings": len(found),
            "callers": len(callers), "identifiers": show_callers,
        },
    )  # fmt: skip
    return report


def _person(row: RecordingRow) -> bytes | None:
    return row.caller_bidx or row.pnr_bidx


def _accessed(
    vault: Vault,
    rid: uuid.UUID,
    uses: list[tuple[str, dt.datetime]],
    row: RecordingRow | None,
    show_callers: bool,
) -> AccessedRecording:
    caller = pnr = None
    if show_callers and row is not None:
        opened = open_details(
            row.id, keyring.dek_for(vault, row), row.enc_caller, row.enc_pnr, row.enc_call_id
        )
        caller, pnr = opened.caller, opened.personnummer
    times = [t for _, t in uses]
    return AccessedRecording(
        rid,
        row.care_unit if row else None,
        row.started_at if row else None,
        dict(Counter(action for action, _ in uses)),
        min(times),
        max(times),
        caller,
        pnr,
    )
