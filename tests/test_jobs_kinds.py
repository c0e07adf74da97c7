"""Each job kind run twice ends where one run ends (idempotent), in-process on SQLite."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from callvault.adapters.db.schema import recordings
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.bootstrap import create_vault
from callvault.config import Settings
from callvault.core.access import OPERATOR, Principal
from callvault.core.audit import Action
from callvault.core.errors import AccessDenied, InvalidInput
from callvault.core.jobs import JobState, schedules
from callvault.services import jobs, keyring
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.services.details import CallDetails, open_peaks
from callvault.services.ingest import ingest
from callvault.testing.audio import make_tone_wav
from callvault.testing.lifecycle import allow_ingest

OP = Principal(name="job-test", role=OPERATOR)
CALLS = 4


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    secret = tmp_path / "passphrase"
    secret.write_text("job kinds test passphrase\n")
    secret.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env.update(CALLVAULT_HOME=str(tmp_path / "home"), CALLVAULT_PASSPHRASE_FILE=str(secret))
    v = create_vault(Settings.from_env(env))
    vault_service.initialise(v, OP)
    assert isinstance(v.keys, KeyfileProvider)
    v.keys.change_passphrase(b"job kinds test passphrase", kdf_params=KdfParams(1, 1024, 1))
    allow_ingest(v, ["unit-a"])
    (tmp_path / "in").mkdir()
    for n in range(CALLS):
        wav = make_tone_wav(tmp_path / "in" / f"{n}.wav", 0.5, frequency=300.0 + 50 * n)
        details = CallDetails.parse(
            care_unit="unit-a",
            started_at=f"2026-10-0{n + 1}T10:00:00+00:00",
            today=dt.date(2026, 11, 25),
        )
        ingest(v, OP, wav, details)
    yield v
    v.close()


def _audit(vault: Vault, action: Action) -> list[uuid.UUID | None]:
    return [r.recording_id for r in vault.store.iter_audit() if r.action == action.value]


def _peaks(vault: Vault) -> dict[uuid.UUID, bytes | None]:
    out: dict[uuid.UUID, bytes | None] = {}
    for row in vault.store.iter_recordings():
        dek = keyring.dek_for(vault, row)
        out[row.id] = open_peaks(row.id, dek, row.enc_peaks) if row.enc_peaks else None
    return out


def _run(vault: Vault) -> int:
    return jobs.run_worker(vault, OP, [], concurrency=2, until_idle=True)


def test_peaks_are_recomputed_exactly_once_for_recordings_missing_them(vault: Vault) -> None:
    """Derived data: the same peaks as at ingest, each recording audited once, run twice."""
    before = _peaks(vault)
    assert all(before.values())
    engine = vault.job_data._engine  # type: ignore[union-attr]
    with engine.begin() as conn:
        conn.execute(update(recordings).values(enc_peaks=None))
    for _ in range(2):
        jobs.enqueue(vault, OP, "peaks")
        _run(vault)
    assert _peaks(vault) == before
    derived = [
        r.recording_id
        for r in vault.store.iter_audit()
        if r.action == Action.RECORDING_VERIFY.value and b'"peaks"' in r.body
    ]
    assert sorted(map(str, derived)) == sorted(map(str, before))
    assert all(j.state is JobState.DONE for j in vault.jobs.jobs())  # type: ignore[union-attr]


def test_scrub_run_twice_checks_every_object_each_time_and_flags_a_damaged_one(
    vault: Vault, tmp_path: Path
) -> None:
    """R23: the chunked scrub re-verifies every object; a damaged one is named, once a run."""
    damaged = next(iter(vault.store.iter_recordings()))
    path = tmp_path / "home" / "data" / "blobs"
    obj = next(p for p in path.rglob(damaged.object_name) if p.is_file())
    data = bytearray(obj.read_bytes())
    data[100] ^= 1
    obj.chmod(0o600)
    obj.write_bytes(bytes(data))
    for run in (1, 2):
        jobs.enqueue(vault, OP, "scrub", {"parts": 4})
        _run(vault)
        ranges = [j for j in vault.jobs.jobs(limit=100) if j.kind == "scrub_range"]  # type: ignore[union-attr]
        assert len(ranges) == 4 * run
        assert all(j.state is JobState.DONE for j in ranges)
        assert sum(j.progress_done for j in ranges) == CALLS * run
        assert _audit(vault, Action.RECORDING_VERIFY) == [damaged.id] * run
        assert len(_audit(vault, Action.VAULT_VERIFY)) == 4 * run


def test_sweep_and_key_rewrap_run_twice_are_harmless(vault: Vault) -> None:
    rows = list(vault.store.iter_recordings())
    keyring.rotate(vault, OP)
    for _ in range(2):
        assert jobs.enqueue(vault, OP, "key_rewrap") is not None
        assert jobs.enqueue(vault, OP, "retention_sweep") is not None
        _run(vault)
    listed = jobs.list_jobs(vault, OP, limit=10)
    assert [j.state for j in listed.jobs] == [JobState.DONE] * 4
    assert [r.id for r in vault.store.iter_recordings()] == [r.id for r in rows]
    for row in vault.store.iter_recordings():
        keyring.dek_for(vault, row)  # every DEK still opens


def test_schedules_queue_one_job_per_slot_and_tick_recovers(vault: Vault) -> None:
    plan = schedules(scrub_hours=24, sweep_minutes=60)
    assert jobs.tick(vault, plan) == 2
    assert jobs.tick(vault, plan) == 0
    kinds = sorted(j.kind for j in vault.jobs.jobs())  # type: ignore[union-attr]
    assert kinds == ["retention_sweep", "scrub"]


def test_bad_job_requests_are_refused_and_change_nothing(vault: Vault) -> None:
    """R27: an unknown kind, a payload with a phone number, a non-operator: refused."""
    with pytest.raises(InvalidInput):
        jobs.enqueue(vault, OP, "format_disk")
    with pytest.raises(InvalidInput):
        jobs.enqueue(vault, OP, "peaks_recording", {"recording_id": "+46701234567"})
    with pytest.raises(InvalidInput):
        jobs.list_jobs(vault, OP, state="sleeping")
    nurse = Principal(name="nurse", role="call_handler", care_unit="unit-a")
    with pytest.raises(AccessDenied):
        jobs.enqueue(vault, nurse, "scrub")
    with pytest.raises(AccessDenied):
        jobs.list_jobs(vault, nurse)
    assert vault.jobs.jobs() == []  # type: ignore[union-attr]
