"""Writing, checkpointing, reading and verifying the audit log.

An access is recorded in the same transaction as the change it describes
(``record``), or, for reads that change nothing, in a transaction of its own
that commits before the first byte leaves (``record_alone``).  If the entry
cannot be written the caller gets ``AuditUnavailable`` and the access does
not happen (R15).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from callvault.core import merkle
from callvault.core.access import Principal
from callvault.core.audit import Action, AuditEvent, Outcome
from callvault.core.audit_verify import VerifyReport, verify_log
from callvault.core.errors import AuditUnavailable, CallvaultError, InvalidInput, StorageError
from callvault.core.notes import Checkpoint, sign_checkpoint, verifier_key_string
from callvault.core.ports import Transaction
from callvault.services.context import Vault

Detail = Mapping[str, str | int | bool | None]
KEY_NAME_INFO = "audit_key_name"


def make_event(
    vault: Vault,
    principal: Principal,
    action: Action,
    outcome: Outcome = Outcome.SUCCESS,
    recording_id: uuid.UUID | None = None,
    reason: str | None = None,
    detail: Detail | None = None,
) -> AuditEvent:
    return AuditEvent(
        time=vault.now(),
        actor=principal.name,
        role=principal.role,
        care_unit=principal.care_unit,
        action=action,
        recording_id=recording_id,
        outcome=outcome,
        reason=reason,
        session=principal.session,
        detail=dict(detail or {}),
    )


def append(tx: Transaction, events: list[AuditEvent]) -> list[int]:
    """Append inside ``tx``; ``AuditUnavailable`` (and a doomed transaction) on failure."""
    rows = []
    for event in events:
        body = event.canonical_bytes()
        rows.append(
            (body, merkle.leaf_hash(body), str(event.action), event.recording_id, event.time)
        )
    try:
        return tx.append_audit(rows)
    except StorageError as exc:
        raise AuditUnavailable(exc.code) from exc


def record(
    vault: Vault,
    tx: Transaction,
    principal: Principal,
    action: Action,
    outcome: Outcome = Outcome.SUCCESS,
    recording_id: uuid.UUID | None = None,
    reason: str | None = None,
    detail: Detail | None = None,
) -> int:
    """Append one entry inside the caller's transaction."""
    event = make_event(vault, principal, action, outcome, recording_id, reason, detail)
    return append(tx, [event])[0]


def record_alone(
    vault: Vault,
    principal: Principal,
    action: Action,
    outcome: Outcome = Outcome.SUCCESS,
    recording_id: uuid.UUID | None = None,
    reason: str | None = None,
    detail: Detail | None = None,
) -> int:
    """Append one entry and commit it; ``AuditUnavailable`` if that fails."""
    event = make_event(vault, principal, action, outcome, recording_id, reason, detail)
    try:
        with vault.store.transaction() as tx:
            return append(tx, [event])[0]
    except InvalidInput:
        raise
    except CallvaultError as exc:
        raise AuditUnavailable(exc.code) from exc


def _signing_key(vault: Vault) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(vault.keys.audit_signing_seed())


def public_key(vault: Vault) -> bytes:
    return _signing_key(vault).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_name(vault: Vault) -> str:
    return vault.origin


def verifier_key(vault: Vault) -> str:
    """The note verifier key operators publish so anyone can check checkpoints."""
    return verifier_key_string(key_name(vault), public_key(vault))


def checkpoint(vault: Vault, principal: Principal) -> str:
    """Sign the current tree head (including this request's entry); return the note."""
    with vault.store.transaction() as tx:
        record(vault, tx, principal, Action.AUDIT_CHECKPOINT)
        return _sign_head(vault, tx)


def seal(vault: Vault) -> str | None:
    """Checkpoint the log if it grew since the last checkpoint.

    Run after every command, so entries are anchored by a signature without
    anyone remembering to ask; it writes no entry of its own, or the log
    would never stop growing.
    """
    with vault.store.transaction() as tx:
        size, _ = tx.audit_head()
        if size == 0 or tx.latest_checkpoint_size() == size:
            return None
        return _sign_head(vault, tx)


def _sign_head(vault: Vault, tx: Transaction) -> str:
    size, frontier = tx.audit_head()
    root = merkle.Frontier.from_bytes(frontier).root()
    note = sign_checkpoint(
        Checkpoint(vault.origin, size, root), vault.keys.audit_signing_seed(), key_name(vault)
    )
    tx.add_checkpoint(size, note, vault.now())
    return note


def verify(vault: Vault, principal: Principal) -> VerifyReport:
    """Verify the log (see ``check``) and record that it was done."""
    report = check(vault)
    record_alone(
        vault,
        principal,
        Action.AUDIT_VERIFY,
        outcome=Outcome.SUCCESS if report.ok else Outcome.FAILED,
        detail={"problems": len(report.problems)},
    )
    return report


def check(vault: Vault) -> VerifyReport:
    """Recompute every leaf and every checkpointed root; the log is read, not trusted.

    Also compares the stored head (size and Merkle frontier, which appends
    build on) with the entries: a head that disagrees would make the next
    checkpoint sign a tree the entries do not form.
    """
    entries = vault.store.iter_audit_leaves()
    notes = [note for _size, note in vault.store.checkpoints()]
    report = verify_log(entries, notes, public_key(vault), key_name(vault))
    with vault.store.transaction() as tx:
        size, frontier = tx.audit_head()
    recomputed = merkle.Frontier()
    recomputed.extend(
        merkle.leaf_hash(body) for _, body, _ in vault.store.iter_audit_leaves(0, size)
    )
    if size != report.size or recomputed != merkle.Frontier.from_bytes(frontier):
        problems = [*report.problems, "the stored log head disagrees with the entries"]
        return dataclasses.replace(report, ok=False, problems=problems)
    return report


@dataclass(frozen=True)
class TailEntry:
    seq: int
    event: AuditEvent


def tail(vault: Vault, principal: Principal, count: int) -> list[TailEntry]:
    if count < 1 or count > 10_000:
        raise InvalidInput("count must be between 1 and 10000")
    record_alone(vault, principal, Action.AUDIT_READ, detail={"count": count})
    with vault.store.transaction() as tx:
        size, _ = tx.audit_head()
    records = vault.store.iter_audit(max(0, size - count), size)
    return [TailEntry(r.seq, AuditEvent.from_canonical(r.body)) for r in records]
