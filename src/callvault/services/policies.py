"""Recording policies (R19): purpose before recording.

An administrator (or the local operator) sets, per care unit and retention
class, why calls are recorded, on what legal basis and for how long.  Ingest
asks :func:`require_active` before it stores anything, so every entry point
(API upload, CLI, legacy import) is refused alike without a policy.  Every
change and every listing is audited (R13).
"""

from __future__ import annotations

import dataclasses

from callvault.core.access import Operation, Principal
from callvault.core.audit import Action
from callvault.core.errors import NoRecordingPolicy, NotFound
from callvault.core.ports import Transaction
from callvault.core.recordings import validate_care_unit
from callvault.core.retention import RecordingPolicy, validate_policy_class
from callvault.services import audit
from callvault.services.context import Vault
from callvault.services.guard import authorise


def set_policy(
    vault: Vault,
    principal: Principal,
    *,
    care_unit: str,
    retention_class: str,
    purpose: str,
    legal_basis: str,
    keep_days: int | None = None,
) -> RecordingPolicy:
    """Create or replace the active policy of ``(care_unit, retention_class)``.

    Who may is decided before the input is looked at (a refusal is logged as
    ``access:denied``); bad input then changes nothing and names the bad field.
    """
    authorise(vault, principal, Operation.POLICY_MANAGE, None)
    policy = RecordingPolicy.new(
        care_unit=care_unit,
        retention_class=retention_class,
        purpose=purpose,
        legal_basis=legal_basis,
        keep_days=keep_days,
        changed_at=vault.now(),
        changed_by=principal.name,
    )
    with vault.store.transaction() as tx:
        before = tx.lifecycle.get_policy(policy.care_unit, policy.retention_class)
        tx.lifecycle.put_policy(policy)
        audit.record(vault, tx, principal, Action.POLICY_CHANGE, detail=_detail(policy, before))
    return policy


def retire_policy(
    vault: Vault, principal: Principal, *, care_unit: str, retention_class: str
) -> RecordingPolicy:
    """Deactivate a policy: new ingests are refused, stored recordings keep
    the retention they were stamped with.  ``NotFound`` if there is none."""
    authorise(vault, principal, Operation.POLICY_MANAGE, None)
    unit, klass = validate_care_unit(care_unit), validate_policy_class(retention_class)
    with vault.store.transaction() as tx:
        before = tx.lifecycle.get_policy(unit, klass)
        if before is None:
            raise NotFound("recording policy")
        after = dataclasses.replace(
            before, active=False, changed_at=vault.now(), changed_by=principal.name
        )
        tx.lifecycle.put_policy(after)
        audit.record(vault, tx, principal, Action.POLICY_CHANGE, detail=_detail(after, before))
    return after


def list_policies(vault: Vault, principal: Principal) -> list[RecordingPolicy]:
    """Every policy, retired ones too (logged as ``policy:list``); administrators,
    who set them, and privacy officers, who answer for them."""
    authorise(vault, principal, Operation.POLICY_READ, None)
    with vault.store.transaction() as tx:
        rows = tx.lifecycle.policies()
        audit.record(vault, tx, principal, Action.POLICY_LIST, detail={"results": len(rows)})
    return rows


def require_active(tx: Transaction, care_unit: str, retention_class: str) -> RecordingPolicy:
    """The active policy for an ingest, or ``NoRecordingPolicy``."""
    policy = tx.lifecycle.get_policy(care_unit, retention_class)
    if policy is None or not policy.active:
        raise NoRecordingPolicy(unit=care_unit, klass=retention_class)
    return policy


def _detail(
    policy: RecordingPolicy, before: RecordingPolicy | None
) -> dict[str, str | int | bool | None]:
    # Purpose and legal basis are screened free text (no identifiers); the
    # log keeps what was decided, so the log alone answers "why was this recorded".
    return {
        "care_unit": policy.care_unit,
        "retention_class": policy.retention_class,
        "active": policy.active,
        "keep_days": policy.keep_days,
        "record_document": policy.record_document,
        "purpose": policy.purpose[:200],
        "legal_basis": policy.legal_basis[:200],
        "change": "create" if before is None else "update",
    }
