"""Finding a caller's recordings (the data subject's) through the blind indexes.

Shared by the Art. 15 export, the patient's log extract and nothing else:
the phone number or personnummer is normalised, blind-indexed and forgotten;
only its index reaches the database, and nothing of it reaches the log.
"""

from __future__ import annotations

from callvault.core import identifiers as ids
from callvault.core.access import Principal
from callvault.core.audit import Action, Outcome
from callvault.core.errors import InvalidInput, NotFound
from callvault.core.recordings import RecordingRow
from callvault.services import audit
from callvault.services.context import Vault


def recordings_of(
    vault: Vault,
    principal: Principal,
    action: Action,
    *,
    caller: str | None = None,
    personnummer: str | None = None,
) -> list[RecordingRow]:
    """Every stored recording of the caller (any state), oldest call first.

    ``InvalidInput`` if neither identifier is given or one is malformed;
    ``NotFound`` (logged as a failed ``action``) if the vault holds nothing
    of this caller.  Give both to cover recordings that carry only one.
    """
    if not caller and not personnummer:
        raise InvalidInput("give the caller's phone number or personnummer")
    key = vault.keys.index_key()
    phone = ids.blind_index(key, "phone", ids.PhoneNumber.parse(caller).value) if caller else None
    pnr = (
        ids.blind_index(
            key, "pnr", ids.PersonalNumber.parse(personnummer, today=vault.now().date()).value
        )
        if personnummer
        else None
    )
    with vault.store.transaction(read_only=True) as tx:
        rows = tx.review.recordings_by_index(phone, pnr)
    if not rows:
        audit.record_alone(
            vault, principal, action, Outcome.FAILED, detail={"error": "unknown_caller"}
        )
        raise NotFound("caller")
    return rows
