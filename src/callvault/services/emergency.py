"""Emergency access (R10): a typed reason opens a time-boxed grant beyond one's reach.

The grant is stored for the principal's later requests (``core.access``
widens their reach while it lasts), written as one flagged
``access:emergency`` entry and queued for review.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Literal

from callvault.core.access import ANY, EMERGENCY_MAX_DURATION, EmergencyGrant, Principal
from callvault.core.audit import Action
from callvault.core.errors import AccessDenied
from callvault.core.rows import EmergencyGrantRow
from callvault.services import audit
from callvault.services.context import Vault
from callvault.services.guard import account_id, deny


def open_emergency(
    vault: Vault,
    principal: Principal,
    reason: str,
    care_units: Iterable[str] | Literal["any"],
    duration: dt.timedelta = EMERGENCY_MAX_DURATION,
) -> EmergencyGrant:
    """Open an emergency grant (at most 4 hours) beyond the principal's own reach.

    Stored for the principal's later requests, written as one flagged
    ``access:emergency`` entry with the reason, and queued for review.
    ``AccessDenied`` (logged) for a role emergency access never extends;
    ``InvalidInput`` for a bad reason, unit list or duration.
    """
    now = vault.now()
    units = ANY if care_units == "any" else care_units
    try:
        grant = EmergencyGrant.open(principal, reason, units, now, duration)
    except AccessDenied as exc:
        deny(vault, principal, "emergency.open", str(exc.params.get("reason", "denied")))
    user_id = account_id(vault, principal, "emergency.open", None)
    scope = None if grant.care_units is ANY else grant.care_units
    stored = EmergencyGrantRow(scope, grant.reason, grant.opened_at, grant.expires_at)
    with vault.store.transaction() as tx:
        tx.grants.insert_emergency_grant(uuid.uuid4(), user_id, stored)
        seq = audit.record(
            vault, tx, principal, Action.ACCESS_EMERGENCY, reason=grant.reason,
            detail={"emergency": True, "units": _units_text(scope),
                    "minutes": int((grant.expires_at - grant.opened_at).total_seconds() // 60)},
        )  # fmt: skip
        tx.grants.add_review_item("emergency_access", seq, principal.name, now)
    return grant


def _units_text(units: frozenset[str] | None) -> str:
    if units is None:
        return "any"
    text = ",".join(sorted(units))
    return text if len(text) <= 200 else f"{len(units)} units"
