"""Systematic log review (R17): run the rules, list and resolve items, report a month.

``run_review`` is what a scheduled job calls: it reads the accesses of a
period, applies ``review_rules`` and queues one review item per finding.
It is idempotent (an item is keyed by rule and entry, and the sample is a
keyed, repeatable draw), so a job may run it twice.  Items from emergency
access and rate limits (R10, R12) are queued by playback itself and show
up here alike.  Everything needs ``review.manage`` (log reviewer, privacy
officer) and writes its audit entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from callvault.core.access import Operation, Principal
from callvault.core.audit import Action, AuditEvent, Outcome, contains_personal_identifier
from callvault.core.errors import InvalidInput, NotFound
from callvault.core.rows import ReviewItemRow
from callvault.services import audit
from callvault.services.context import Vault
from callvault.services.guard import authorise
from callvault.services.review_rules import ACCESSES, RULES, ReviewRules, find

OUTCOMES = ("ok", "follow_up", "incident")
_MONTH = re.compile(r"\A(\d{4})-(\d{2})\Z")
_MAX_PERIOD = dt.timedelta(days=93)


@dataclass(frozen=True)
class Period:
    """A half-open UTC interval ``[start, end)``."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        for moment in (self.start, self.end):
            if moment.utcoffset() is None:
                raise InvalidInput("period times must carry a time zone")
        if not dt.timedelta(0) < self.end - self.start <= _MAX_PERIOD:
            raise InvalidInput("a review period is more than nothing and at most 93 days")

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2026-03`` (a month), ``2026-03-02`` (a day) or ``2026-03-01..2026-03-15``
        (days, both included); UTC."""
        text = text.strip()
        month = _MONTH.match(text)
        if month:
            year, number = int(month.group(1)), int(month.group(2))
            if not 1 <= number <= 12:
                raise InvalidInput("period month must be 01 to 12")
            start = dt.datetime(year, number, 1, tzinfo=dt.UTC)
            end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=dt.UTC)
            return cls(start, end)
        first, _, last = text.partition("..")
        try:
            lo = dt.date.fromisoformat(first)
            hi = dt.date.fromisoformat(last) if last else lo
        except ValueError:
            raise InvalidInput("period must be YYYY-MM, YYYY-MM-DD or FROM..TO days") from None
        start = dt.datetime.combine(lo, dt.time(), dt.UTC)
        return cls(start, dt.datetime.combine(hi, dt.time(), dt.UTC) + dt.timedelta(days=1))

    @property
    def last_day(self) -> dt.date:
        return (self.end - dt.timedelta(microseconds=1)).date()

    @property
    def label(self) -> str:
        return f"{self.start.date()}..{self.last_day}"

    def detail(self) -> dict[str, str | int | bool | None]:
        # Two ISO dates apart: joined they would read as one long digit run,
        # which the log refuses as a possible identifier.
        return {"from": self.start.date().isoformat(), "to": self.last_day.isoformat()}


@dataclass(frozen=True)
class ReviewRun:
    period: Period
    examined: int
    found: dict[str, int]
    added: int


def _sample_key(vault: Vault) -> bytes:
    # Derived from the index key, which never sits in the database: users
    # cannot predict which of their accesses will be sampled.
    return hmac.new(
        vault.keys.index_key(), b"callvault/review-sample-key/v1", hashlib.sha256
    ).digest()


def _period(period: Period | str) -> Period:
    return period if isinstance(period, Period) else Period.parse(period)


def run_review(
    vault: Vault,
    principal: Principal,
    *,
    period: Period | str,
    rules: ReviewRules | Mapping[str, float] | None = None,
) -> ReviewRun:
    """Apply the rules to the accesses logged in ``period``; queue new items.

    ``period`` and ``rules`` may come as typed (text, a mapping of
    ``ReviewRules`` fields): they are read only once the principal may review.
    """
    authorise(vault, principal, Operation.REVIEW_MANAGE, None)
    period = _period(period)
    if not isinstance(rules, ReviewRules):
        rules = ReviewRules(**(rules or {}))  # type: ignore[arg-type]
    actions = sorted(str(a) for a in ACCESSES)
    with vault.store.transaction(read_only=True) as tx:
        records = tx.review.audit_between(period.start, period.end, actions)
        entries = [(r.seq, AuditEvent.from_canonical(bytes(r.body))) for r in records]
        ids = sorted({e.recording_id for _, e in entries if e.recording_id is not None})
        units = {row.id: row.care_unit for row in tx.review.recordings_by_id(ids)}
        people = {u.username: u.care_units for u in tx.accounts.users()}
    findings = find(entries, rules, _sample_key(vault), people.get, units.get)
    now = vault.now()
    with vault.store.transaction() as tx:
        added = sum(
            tx.review.add_item(f.kind, f.seq, f.actor, now, f.recording_id) is not None
            for f in findings
        )
        counts = Counter(f.kind for f in findings)
        detail: dict[str, str | int | bool | None] = {
            "examined": len(entries),
            "added": added,
            **period.detail(),
            **{kind: counts.get(kind, 0) for kind in RULES},
        }
        audit.record(vault, tx, principal, Action.REVIEW_RUN, detail=detail)
    return ReviewRun(period, len(entries), {k: counts.get(k, 0) for k in RULES}, added)


def list_items(
    vault: Vault,
    principal: Principal,
    *,
    open_only: bool = True,
    period: Period | str | None = None,
    limit: int = 200,
) -> list[ReviewItemRow]:
    """Review items, oldest first; the listing is logged."""
    authorise(vault, principal, Operation.REVIEW_MANAGE, None)
    period = _period(period) if period else None
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000")
    with vault.store.transaction() as tx:
        items = tx.review.items(
            open_only=open_only,
            since=period.start if period else None,
            until=period.end if period else None,
            limit=limit,
        )
        audit.record(vault, tx, principal, Action.REVIEW_READ, detail={"items": len(items)})
    return items


def resolve(
    vault: Vault, principal: Principal, item_id: int, outcome: str, comment: str | None = None
) -> None:
    """Record an open item's outcome (``ok``, ``follow_up``, ``incident``) and comment.

    The comment is kept and shown to other reviewers, so like the log it may
    not hold a phone number or personnummer.
    """
    authorise(vault, principal, Operation.REVIEW_MANAGE, None)
    if outcome not in OUTCOMES:
        raise InvalidInput("outcome must be one of: " + ", ".join(OUTCOMES))
    text = (comment or "").strip() or None
    if text is not None and (
        len(text) > 500 or not text.isprintable() or contains_personal_identifier(text)
    ):
        raise InvalidInput("comment: one line of at most 500 characters, no personal identifiers")
    with vault.store.transaction() as tx:
        done = tx.review.resolve_item(item_id, outcome, text, principal.name, vault.now())
        if done:
            audit.record(
                vault, tx, principal, Action.REVIEW_RESOLVE,
                detail={"item": item_id, "outcome": outcome},
            )  # fmt: skip
    if not done:
        audit.record_alone(
            vault, principal, Action.REVIEW_RESOLVE, Outcome.FAILED,
            detail={"item": item_id, "error": "not_open"},
        )  # fmt: skip
        raise NotFound("open review item")


@dataclass(frozen=True)
class MonthlyReport:
    """What was reviewed and found in a period: items by rule, outcomes, what is open."""

    period: Period
    by_kind: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    open_items: int = 0
    incidents: list[ReviewItemRow] = field(default_factory=list)


def report(vault: Vault, principal: Principal, *, period: Period | str) -> MonthlyReport:
    """The report of the items queued in ``period``; reading it is logged."""
    authorise(vault, principal, Operation.REVIEW_MANAGE, None)
    period = _period(period)
    with vault.store.transaction() as tx:
        items = tx.review.items(
            open_only=False, since=period.start, until=period.end, limit=100_000
        )
        audit.record(
            vault, tx, principal, Action.REVIEW_READ,
            detail={"report": True, "items": len(items), **period.detail()},
        )  # fmt: skip
    return MonthlyReport(
        period,
        dict(Counter(i.kind for i in items)),
        dict(Counter(i.outcome for i in items if i.outcome is not None)),
        sum(i.resolved_at is None for i in items),
        [i for i in items if i.outcome == "incident"],
    )
