"""Whole-vault verification (scrub): rows, objects, keys and the audit log agree.

Read-only.  Every active row must have an object of the recorded length and
SHA-256 whose key commitment matches and whose every segment authenticates;
every object must belong to a row; the audit log must verify.  Rows still
pending are ingests that were interrupted: reported, not failures, because
re-running the ingest completes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callvault.core import format as cv1
from callvault.core.access import Principal
from callvault.core.audit import Action, Outcome
from callvault.core.audit_verify import VerifyReport
from callvault.core.errors import CallvaultError
from callvault.core.recordings import ACTIVE, RecordingRow
from callvault.services import audit, keyring
from callvault.services.context import Vault
from callvault.services.recordings import check_ciphertext, object_reader


@dataclass
class VaultReport:
    recordings_checked: int = 0
    interrupted_ingests: int = 0
    problems: list[str] = field(default_factory=list)
    orphan_objects: int = 0
    audit: VerifyReport | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.audit is not None and self.audit.ok


def verify_vault(vault: Vault, principal: Principal) -> VaultReport:
    report = VaultReport()
    claimed: set[str] = set()
    for row in vault.store.iter_recordings():
        claimed.add(row.object_name)
        if row.state != ACTIVE:
            report.interrupted_ingests += 1
            continue
        report.recordings_checked += 1
        problem = check_recording(vault, row)
        if problem:
            report.problems.append(f"recording {row.id}: {problem}")
    for name in vault.blobs.names():
        if name not in claimed:
            report.orphan_objects += 1
            report.problems.append(f"object {name} belongs to no recording")
    report.audit = audit.check(vault)
    audit.record_alone(
        vault,
        principal,
        Action.VAULT_VERIFY,
        outcome=Outcome.SUCCESS if report.ok else Outcome.FAILED,
        detail={"problems": len(report.problems)},
    )
    return report


def check_recording(vault: Vault, row: RecordingRow) -> str | None:
    """Every check ``callvault verify`` makes on one active recording (R23): None,
    or the error code of the first that fails.  The DEK is unwrapped in a
    read-only unit, so scrubbing workers never queue for the write lock."""
    try:
        with vault.store.transaction(read_only=True) as tx:
            dek = keyring.unwrap_dek(vault, tx, row)
        ad = cv1.associated_data(row.id, row.dek_id, row.media_type)
        cv1.check_commitment(dek, ad, row.commitment)
        check_ciphertext(vault, row)
        assert row.ciphertext_size is not None  # check_ciphertext refuses a row without
        reader = object_reader(vault, row)
        plain = sum(len(c) for c in cv1.decrypt_stream(dek, ad, reader, row.ciphertext_size))
        if plain != row.plaintext_size:
            return "plaintext_size_mismatch"
    except CallvaultError as exc:
        return exc.code
    return None
