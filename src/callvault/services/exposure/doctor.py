"""``doctor``: is this vault deployed safely?  One result per check.

File checks (plaintext audio, key file, TLS, backups) need no passphrase;
the account and audit checks open the vault.  If it cannot be opened those
two are reported as not done (exit 2) and the others still run.  Exit codes
as for ``scan``: 0 all good, 1 findings, 2 something could not be checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from callvault.core.access import Operation, Principal
from callvault.core.audit import Action
from callvault.core.errors import CallvaultError
from callvault.services import audit
from callvault.services.context import Vault
from callvault.services.exposure import doctor_files
from callvault.services.exposure.deployment import Deployment
from callvault.services.exposure.model import HIGH, TargetResult, exit_code
from callvault.services.exposure.ports import Sniff
from callvault.services.guard import authorise

OpenVault = Callable[[], AbstractContextManager[Vault]]


@dataclass(frozen=True)
class DoctorReport:
    results: list[TargetResult]

    @property
    def exit_code(self) -> int:
        return exit_code(self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "findings": sum(len(r.findings) for r in self.results),
            "checks": [r.as_dict() for r in self.results],
        }


def check_accounts(vault: Vault, principal: Principal) -> TargetResult:
    """Every enrolled, active account has a confirmed TOTP second factor (R7)."""
    result = TargetResult("second factor on every account", "check")
    authorise(vault, principal, Operation.USER_MANAGE, None)
    with vault.store.transaction() as tx:
        rows = tx.accounts.users()
        audit.record(vault, tx, principal, Action.USER_LIST, detail={"results": len(rows)})
    for row in rows:
        if row.disabled_at is not None or row.password_hash is None:
            continue
        result.bump("active_accounts")
        if row.totp_secret is None or row.totp_last_step is None:
            result.add(
                "account-without-second-factor",
                HIGH,
                "accounts that sign in with a password alone",
                row.username,
            )
    pending = sum(1 for r in rows if r.password_hash is None and r.disabled_at is None)
    if pending:
        result.note(f"{pending} account(s) not enrolled yet (cannot sign in)")
    return result


def check_audit(vault: Vault, principal: Principal) -> TargetResult:
    """The log verifies against its signed checkpoints, and one checkpoint exists (R14)."""
    result = TargetResult("audit log and checkpoints", "check")
    report = audit.verify(vault, principal)
    result.stats["entries"] = report.size
    result.stats["checkpoints_checked"] = report.checkpoints_checked
    for problem in report.problems:
        result.add("audit-log-invalid", HIGH, "the audit log fails verification", problem)
    if not vault.store.checkpoints():
        result.add("audit-no-checkpoint", HIGH, "no signed checkpoint anchors the log", None)
    return result


def _vault_checks(open_vault: OpenVault, principal: Principal) -> list[TargetResult]:
    names = ("second factor on every account", "audit log and checkpoints")
    try:
        with open_vault() as vault:
            return [check_accounts(vault, principal), check_audit(vault, principal)]
    except CallvaultError as exc:
        failed = []
        for name in names:
            result = TargetResult(name, "check")
            result.error = f"could not open the vault: {exc.message} [{exc.code}]"
            failed.append(result)
        return failed


def run(
    deployment: Deployment,
    open_vault: OpenVault,
    principal: Principal,
    sniff: Sniff,
    now: dt.datetime,
) -> DoctorReport:
    results = [
        doctor_files.check_audio(deployment, sniff, now.date()),
        doctor_files.check_key_file(deployment),
        doctor_files.check_tls(deployment, now),
        *_vault_checks(open_vault, principal),
        doctor_files.check_backups(deployment, now),
    ]
    return DoctorReport(results)
