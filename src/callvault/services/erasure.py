"""Erasure by caller (GDPR Art. 17, R21), within the retention rules.

The privacy officer gives a caller's phone number or personnummer; the
vault finds that caller's recordings through the blind indexes (the
identifier itself is never stored or logged), and says for each one whether
it may be erased now and, if not, why: a legal hold, or the ten-year duty
of a record document (which only a recorded decision reference lifts).
Without ``dry_run`` the erasable ones are crypto-shredded exactly as the
retention sweep does it, each with its receipt, and the request gets one
``subject:erase`` entry with counts, never the identifier.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from callvault.core import identifiers as ids
from callvault.core.access import Operation, Principal
from callvault.core.audit import Action
from callvault.core.errors import InvalidInput, TooLarge
from callvault.core.recordings import RecordingRow
from callvault.core.retention import Verdict, erasure_verdict, validate_reference
from callvault.services import audit, retention
from callvault.services.context import Vault
from callvault.services.guard import authorise

MAX_MATCHES = 10_000
ERASURE = "erasure_request"


@dataclass(frozen=True)
class ErasureItem:
    recording_id: uuid.UUID
    care_unit: str
    started_at: dt.datetime
    retention_class: str
    verdict: Verdict
    keep_until: dt.datetime | None
    hold_reference: str | None

    @property
    def eligible(self) -> bool:
        return self.verdict in (Verdict.ERASABLE, Verdict.DUE)


@dataclass(frozen=True)
class ErasureReport:
    dry_run: bool
    items: list[ErasureItem]
    erased: list[uuid.UUID]

    def count(self, verdict: Verdict) -> int:
        return sum(1 for item in self.items if item.verdict == verdict)


def erase_by_caller(
    vault: Vault,
    principal: Principal,
    *,
    caller: str | None = None,
    personnummer: str | None = None,
    reason: str,
    decision: str | None = None,
    dry_run: bool = True,
) -> ErasureReport:
    """What matches the caller, what may be erased now and why not; erase it
    unless ``dry_run``.  ``decision`` (a decision reference) allows record
    documents to go before their ten years; a hold always stays."""
    authorise(vault, principal, Operation.SUBJECT_ERASE, None)
    caller_bidx, pnr_bidx = _indexes(vault, caller, personnummer)
    ref = None if decision is None else validate_reference(decision, "decision reference")
    now = vault.now()
    with vault.store.transaction() as tx:
        rows = tx.lifecycle.matching(caller_bidx, pnr_bidx, MAX_MATCHES + 1)
        if len(rows) > MAX_MATCHES:
            raise TooLarge(f"more than {MAX_MATCHES} recordings match; ask for a narrower request")
        facts = tx.lifecycle.retention_facts(r.id for r in rows)
        items = [_item(row, *facts.get(row.id, (None, None)), now, ref) for row in rows]
        eligible = {i.recording_id for i in items if i.eligible}
        erased: list[RecordingRow] = []
        if not dry_run:
            erased = retention.shred_rows(
                vault, tx, principal, [r for r in rows if r.id in eligible], now, ERASURE, ref
            )
        detail: dict[str, str | int | bool | None] = {
            "dry_run": dry_run,
            "kind": _kind(caller_bidx, pnr_bidx),
            "matched": len(items),
            "erased": len(erased),
            "kept_hold": sum(1 for i in items if i.verdict == Verdict.LEGAL_HOLD),
            "kept_record": sum(1 for i in items if i.verdict == Verdict.RECORD_DOCUMENT),
            "decision": ref,
        }
        audit.record(vault, tx, principal, Action.SUBJECT_ERASE, reason=reason, detail=detail)
    if erased:
        retention.drain_shred_queue(vault)
        retention.destroy_empty_buckets(vault, principal, now)
    return ErasureReport(dry_run, items, [r.id for r in erased])


def _indexes(
    vault: Vault, caller: str | None, personnummer: str | None
) -> tuple[bytes | None, bytes | None]:
    if not caller and not personnummer:
        raise InvalidInput("give the caller's phone number or personnummer")
    key = vault.keys.index_key()
    phone = ids.blind_index_of(key, ids.PhoneNumber.parse(caller)) if caller else None
    pnr = (
        ids.blind_index_of(key, ids.PersonalNumber.parse(personnummer, today=vault.now().date()))
        if personnummer
        else None
    )
    return phone, pnr


def _kind(caller_bidx: bytes | None, pnr_bidx: bytes | None) -> str:
    if caller_bidx is not None and pnr_bidx is not None:
        return "phone_and_personnummer"
    return "phone" if caller_bidx is not None else "personnummer"


def _item(
    row: RecordingRow,
    keep_until: dt.datetime | None,
    hold_reference: str | None,
    now: dt.datetime,
    decision: str | None,
) -> ErasureItem:
    verdict = erasure_verdict(
        retention_class=row.retention_class,
        keep_until=keep_until,
        held=hold_reference is not None,
        now=now,
        decision_reference=decision,
    )
    return ErasureItem(
        row.id,
        row.care_unit,
        row.started_at,
        row.retention_class,
        verdict,
        keep_until,
        hold_reference,
    )
