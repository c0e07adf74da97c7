"""Authorisation for the use cases: ``core.access.can``, with every refusal logged.

Entry points never decide; each service asks here.  A refusal writes one
``access:denied`` entry (committed) before it is raised.  A recording the
principal may not even view answers exactly like one that does not exist
(``NotFound``), so recording ids cannot be probed; the log still tells the
two apart.
"""

from __future__ import annotations

import uuid
from typing import NoReturn

from callvault.core.access import (
    Decision,
    Operation,
    Principal,
    Reason,
    RecordingTarget,
    Target,
    can,
)
from callvault.core.audit import Action, Outcome
from callvault.core.errors import AccessDenied, NotFound
from callvault.core.recordings import ACTIVE, RecordingRow
from callvault.services import audit
from callvault.services.context import Vault

# Refusals that depend on who asks, never on which recording.
_ROLE_LEVEL = frozenset(
    {Reason.ROLE_LACKS_PERMISSION, Reason.UNKNOWN_ROLE, Reason.UNKNOWN_OPERATION}
)


def authorise(
    vault: Vault,
    principal: Principal,
    operation: Operation,
    target: Target,
    recording_id: uuid.UUID | None = None,
) -> Decision:
    """``can``, writing an ``access:denied`` entry and raising ``AccessDenied`` on a denial."""
    decision = can(principal, operation, target, now=vault.now())
    if not decision.allowed:
        deny(vault, principal, operation, decision, recording_id)
    return decision


def deny(
    vault: Vault,
    principal: Principal,
    operation: str,
    decision: Decision | str,
    recording_id: uuid.UUID | None = None,
    *,
    hide: bool = False,
) -> NoReturn:
    """Log a refusal, then raise ``AccessDenied`` (or ``NotFound`` when ``hide``).

    ``decision`` is the refusing decision of ``can``, or a reason code of the
    service's own (``no_grant``); either is written to the log and shown.
    """
    code = str(decision if isinstance(decision, str) else decision.reason_code)
    audit.record_alone(
        vault,
        principal,
        Action.ACCESS_DENIED,
        Outcome.DENIED,
        recording_id=recording_id,
        detail={"operation": str(operation), "reason": code},
    )
    if hide:
        raise NotFound("recording")
    raise AccessDenied(f"{operation}: {code}", reason=code)


def flag(decision: Decision) -> dict[str, str | int | bool | None] | None:
    """The audit detail of an access only an emergency grant allowed (R10)."""
    return {"emergency": True} if decision.emergency else None


def refuse_role_level(
    vault: Vault, principal: Principal, recording_id: uuid.UUID, operation: Operation
) -> None:
    """``AccessDenied`` (logged) if the role never does ``operation`` on any recording."""
    anywhere = can(principal, operation, RecordingTarget("", None, recording_id), now=vault.now())
    if anywhere.reason_code in _ROLE_LEVEL:
        deny(vault, principal, operation, anywhere, recording_id)


def reachable(
    vault: Vault,
    principal: Principal,
    recording_id: uuid.UUID,
    operation: Operation,
    action: Action,
    reason: str | None = None,
) -> tuple[RecordingRow, Decision]:
    """The active recording, if ``principal`` may do ``operation`` on it now.

    In this order, so that no answer depends on an id the principal cannot
    reach: ``AccessDenied`` (logged) if the role never does ``operation`` on
    any recording (a recorder reading); ``NotFound`` if there is no such
    active recording (an ``action`` entry with outcome failed) or if the
    principal may not even view it (logged as denied); ``AccessDenied`` if
    they may view it but not do ``operation`` (logged).
    """
    refuse_role_level(vault, principal, recording_id, operation)
    with vault.store.transaction(read_only=True) as tx:
        row = tx.get_recording(recording_id)
    return admit(vault, principal, recording_id, row, operation, action, reason)


def admit(
    vault: Vault,
    principal: Principal,
    recording_id: uuid.UUID,
    row: RecordingRow | None,
    operation: Operation,
    action: Action,
    reason: str | None = None,
) -> tuple[RecordingRow, Decision]:
    """:func:`reachable` for a ``row`` the caller read (None: no such row).

    The caller must have run :func:`refuse_role_level` before reading it.
    """
    if row is None or row.state != ACTIVE:
        audit.record_alone(
            vault,
            principal,
            action,
            Outcome.FAILED,
            recording_id=recording_id,
            reason=reason,
            detail={"error": "not_found"},
        )
        raise NotFound("recording")
    target, now = RecordingTarget.of(row), vault.now()
    decision = can(principal, operation, target, now=now)
    if not decision.allowed:
        visible = can(principal, Operation.RECORDING_VIEW, target, now=now).allowed
        deny(vault, principal, operation, decision, row.id, hide=not visible)
    return row, decision


def account_id(
    vault: Vault, principal: Principal, operation: str, recording_id: uuid.UUID | None
) -> uuid.UUID:
    """The principal's account; grants belong to people, never to tokens."""
    with vault.store.transaction() as tx:
        user = tx.accounts.user_by_name(principal.name)
    if user is None or user.disabled_at is not None:
        deny(vault, principal, operation, "no_account", recording_id)
    return user.id
