"""Reading a stored recording back and comparing it with its source (R26).

An original is touched only after this says the vault holds exactly its
bytes: the object's length and SHA-256 against the row, the key commitment,
then every segment decrypted and authenticated, and the plaintext's SHA-256
against the source's.  Nothing decrypted is written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable

from callvault.core import format as cv1
from callvault.core.errors import IntegrityError
from callvault.core.recordings import ACTIVE
from callvault.services import keyring
from callvault.services.context import Vault
from callvault.services.recordings import check_ciphertext, object_reader


def stored_sha256(vault: Vault, recording_id: uuid.UUID) -> bytes:
    """SHA-256 of the plaintext the vault holds for ``recording_id``; IntegrityError if
    the record is missing, not active, or its object fails any check."""
    with vault.store.transaction(read_only=True) as tx:
        row = tx.get_recording(recording_id)
    if row is None or row.state != ACTIVE or row.ciphertext_size is None:
        raise IntegrityError()
    check_ciphertext(vault, row)
    dek = keyring.dek_for(vault, row)
    ad = cv1.associated_data(row.id, row.dek_id, row.media_type)
    cv1.check_commitment(dek, ad, row.commitment)
    digest = hashlib.sha256()
    for chunk in cv1.decrypt_stream(dek, ad, object_reader(vault, row), row.ciphertext_size):
        digest.update(chunk)
    return digest.digest()


def sha256_of(chunks: Iterable[bytes]) -> bytes:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.digest()


def matches(vault: Vault, recording_id: uuid.UUID, source_sha256: bytes) -> bool:
    return hmac.compare_digest(stored_sha256(vault, recording_id), source_sha256)
