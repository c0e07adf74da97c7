"""Creating a vault: identity, first audit entries and the first checkpoint."""

from __future__ import annotations

import uuid

from callvault.core.access import Principal
from callvault.core.audit import Action
from callvault.core.errors import AlreadyExists
from callvault.services import audit
from callvault.services.context import Vault

VAULT_ID = "vault_id"


def origin_for(vault_id: str) -> str:
    """The checkpoint origin line: unique per vault, free of personal data."""
    return f"callvault.local/{vault_id}"


def initialise(vault: Vault, principal: Principal) -> str:
    """Record the vault's creation; ``AlreadyExists`` if it was done before."""
    with vault.store.transaction() as tx:
        if tx.get_info(VAULT_ID) is not None:
            raise AlreadyExists("vault")
        vault_id = vault.origin.rsplit("/", 1)[-1] or str(uuid.uuid4())
        tx.set_info(VAULT_ID, vault_id)
        audit.record(vault, tx, principal, Action.VAULT_INIT)
        audit.record(
            vault,
            tx,
            principal,
            Action.KEY_INIT,
            detail={"root_version": vault.keys.current_version()},
        )
    audit.checkpoint(vault, principal)
    return vault_id
