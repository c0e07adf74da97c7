"""Recording policies for tests and demos: ingest is refused without one (R19)."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterable, Sequence

from callvault.core.access import OPERATOR, Principal
from callvault.core.retention import POLICY_CLASSES, RecordingPolicy
from callvault.services import keyring, policies
from callvault.services.context import Vault
from callvault.testing.metadata_support import recording

PURPOSE = "Advice calls kept as part of the patient record"
LEGAL_BASIS = "Patient Data Act, chapter 3: keeping patient records"
# The same two settings for a command line: `callvault policies set ... *POLICY_ARGS`.
POLICY_ARGS = ("--purpose", PURPOSE, "--legal-basis", LEGAL_BASIS)


def allow_ingest(
    vault: Vault,
    units: Iterable[str],
    classes: Iterable[str] = POLICY_CLASSES,
    *,
    quality_days: int | None = None,
    audited: bool = False,
) -> None:
    """Give every unit an active policy for every class.

    By default the policies are seeded straight into the store, unaudited, so
    tests that count audit entries see only what they do themselves;
    ``audited=True`` sets them through the service, as an operator would.
    """
    operator = Principal("policy-setup", OPERATOR)
    for unit in units:
        for klass in classes:
            fields = {
                "care_unit": unit,
                "retention_class": klass,
                "purpose": PURPOSE,
                "legal_basis": LEGAL_BASIS,
                "keep_days": quality_days if klass == "quality" else None,
            }
            if audited:
                policies.set_policy(vault, operator, **fields)  # type: ignore[arg-type]
                continue
            policy = RecordingPolicy.new(**fields, changed_at=vault.now(), changed_by=operator.name)  # type: ignore[arg-type]
            with vault.store.transaction() as tx:
                tx.lifecycle.put_policy(policy)


def policy_cli_args(units: Iterable[str], klass: str = "record") -> list[str]:
    """Arguments of one `callvault policies set` for several units."""
    args = ["policies", "set", "--class", klass, *POLICY_ARGS]
    for unit in units:
        args += ["--care-unit", unit]
    return args


def plant_due_rows(
    vault: Vault,
    count: int,
    *,
    months: Sequence[str] = ("2015-01", "2015-02", "2015-03", "2015-04"),
    retention_class: str = "quality",
    keep_until: dt.datetime | None = None,
    objects: bool = True,
    batch: int = 2000,
) -> list[uuid.UUID]:
    """``count`` synthetic active recordings, already due, spread over ``months``.

    Rows carry random wrapped keys and sealed fields (nothing ever opens
    them) under real bucket KEKs; with ``objects`` each gets a small random
    object in the blob store.  For sweep tests and benchmarks: the sweep
    deletes rows and objects and never decrypts.
    """
    due = keep_until or dt.datetime(2016, 1, 1, tzinfo=dt.UTC)
    buckets = [keyring.current_bucket(vault, m, retention_class).id for m in months]
    ids: list[uuid.UUID] = []
    for start in range(0, count, batch):
        rows = []
        for n in range(start, min(count, start + batch)):
            month = months[n % len(months)]
            started = dt.datetime.fromisoformat(f"{month}-01T10:00:00+00:00")
            rows.append(
                recording(
                    buckets[n % len(months)],
                    started_at=started,
                    created_at=started,
                    retention_class=retention_class,
                    care_unit="unit-planted",
                )
            )
        if objects:
            for row in rows:
                vault.blobs.put(row.object_name, [secrets.token_bytes(256)])
        with vault.store.transaction() as tx:
            for row in rows:
                tx.insert_recording(row)
                tx.lifecycle.set_keep_until(row.id, due)
        ids += [row.id for row in rows]
    return ids
