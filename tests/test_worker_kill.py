"""``callvault worker`` killed with SIGKILL mid-job: another worker finishes the job
from its saved cursor, nothing lost or counted twice (R23, R28)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from callvault.adapters.db.schema import audit_entries
from callvault.adapters.db.store import create_engine_for
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.bootstrap import create_vault, open_jobs
from callvault.config import Settings
from callvault.core.access import OPERATOR, Principal
from callvault.core.audit import Action
from callvault.core.ports import SystemClock
from callvault.services import vault as vault_service
from callvault.services.jobs_kinds import SCRUB_BATCH
from callvault.testing.lifecycle import plant_due_rows
from callvault.testing.postgres import throwaway_database

OP = Principal(name="kill-test", role=OPERATOR)
PLANTED = 300
LEASE = 3


def _env(tmp_path: Path) -> dict[str, str]:
    secret = tmp_path / "passphrase"
    secret.write_text("worker kill test passphrase\n")
    secret.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env.update(
        CALLVAULT_HOME=str(tmp_path / "home"),
        CALLVAULT_PASSPHRASE_FILE=str(secret),
        CALLVAULT_JOBS_LEASE_SECONDS=str(LEASE),
        CALLVAULT_JOBS_SCRUB_HOURS="0",
        CALLVAULT_JOBS_SWEEP_MINUTES="0",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _init(env: dict[str, str], planted: int = 0) -> list[uuid.UUID]:
    """A vault with a cheap key-file KDF (every CLI call opens it) and planted rows."""
    vault = create_vault(Settings.from_env(env))
    try:
        vault_service.initialise(vault, OP)
        assert isinstance(vault.keys, KeyfileProvider)
        vault.keys.change_passphrase(
            b"worker kill test passphrase", kdf_params=KdfParams(1, 1024, 1)
        )
        assert vault.jobs is not None
        vault.jobs.init_schema()  # `callvault jobs init`: procrastinate's schema on PostgreSQL
        return plant_due_rows(vault, planted) if planted else []
    finally:
        vault.close()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callvault", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _job(env: dict[str, str]) -> tuple[str, int, int]:
    """(state, done, attempts) of the one scrub_range job, through the queue adapter."""
    queue, _ = open_jobs(Settings.from_env(env), SystemClock())
    try:
        found = [j for j in queue.jobs() if j.kind == "scrub_range"]
    finally:
        queue.close()
    return (
        (found[0].state.value, found[0].progress_done, found[0].attempts)
        if found
        else ("none", 0, 0)
    )


def _audit(env: dict[str, str]) -> list[tuple[str, str | None, bytes]]:
    engine = create_engine_for(Settings.from_env(env).database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    audit_entries.c.action, audit_entries.c.recording_id, audit_entries.c.body
                ).order_by(audit_entries.c.seq)
            ).all()
    finally:
        engine.dispose()
    return [(a, None if r is None else str(r), bytes(b)) for a, r, b in rows]


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A vault's environment: embedded (SQLite, in-process runner) or PostgreSQL (procrastinate)."""
    env = _env(tmp_path)
    if request.param == "sqlite":
        yield env
        return
    with throwaway_database() as url:
        yield {**env, "CALLVAULT_DATABASE_URL": url}


@pytest.mark.slow
def test_scrub_killed_mid_job_is_finished_by_another_worker_exactly_once(
    env: dict[str, str],
) -> None:
    # Rows whose keys open nothing: every one is a problem the scrub must log.
    planted = {str(i) for i in _init(env, PLANTED)}
    assert _cli(env, "jobs", "enqueue", "scrub", "--parts", "1").returncode == 0

    first = subprocess.Popen(
        [sys.executable, "-m", "callvault", "worker"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while _job(env)[1] < 2 * SCRUB_BATCH:
        assert time.monotonic() < deadline and first.poll() is None, "worker never got going"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    state, done, _ = _job(env)
    assert state == "running" and 0 < done < PLANTED, "the kill did not land mid-job"

    time.sleep(LEASE + 1)  # the dead worker's lease runs out
    second = _cli(env, "worker", "--until-idle", "--concurrency", "2")
    assert second.returncode == 0, second.stderr
    assert _job(env) == ("done", PLANTED, 2)

    listing = _cli(env, "jobs", "list", "--state", "done")
    assert listing.returncode == 0 and "scrub_range" in listing.stdout
    entries = _audit(env)
    summaries = [json.loads(b) for a, _, b in entries if a == Action.VAULT_VERIFY.value]
    details = [s["detail"] for s in summaries if s["detail"].get("scope") == "range"]
    # Counted from the cursor: the killed attempt's work is neither lost nor counted twice.
    assert [(d["checked"], d["problems"]) for d in details] == [(PLANTED, PLANTED)]
    flagged = [r for a, r, _ in entries if a == Action.RECORDING_VERIFY.value]
    named = {str(uuid.UUID(str(r))) for r in flagged}
    assert named == planted
    # At most the batch in flight at the kill is logged again.
    assert PLANTED <= len(flagged) <= PLANTED + SCRUB_BATCH


def test_worker_refuses_bad_arguments_and_queues_nothing(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _init(env)
    bad = _cli(env, "jobs", "enqueue", "wipe_everything")
    assert bad.returncode != 0 and "unknown job kind" in bad.stderr
    bad = _cli(env, "jobs", "enqueue", "peaks_recording", "--recording", "0701234567")
    assert bad.returncode != 0 and "0701234567" not in bad.stderr
    listing = _cli(env, "jobs", "list")
    assert listing.returncode == 0 and "queued 0, running 0, failed 0" in listing.stdout


@pytest.mark.slow
def test_sigterm_hands_the_running_job_back_and_the_next_worker_resumes_it(
    tmp_path: Path,
) -> None:
    """A stopped worker releases its job (the attempt not counted) with its position saved."""
    env = _env(tmp_path)
    _init(env, PLANTED)
    assert _cli(env, "jobs", "enqueue", "scrub", "--parts", "1").returncode == 0
    worker = subprocess.Popen(
        [sys.executable, "-m", "callvault", "worker"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while _job(env)[1] < SCRUB_BATCH:
        assert time.monotonic() < deadline and worker.poll() is None, "worker never got going"
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    state, done, attempts = _job(env)
    assert (state, attempts) == ("queued", 0) and 0 < done < PLANTED
    assert _cli(env, "worker", "--until-idle").returncode == 0
    assert _job(env) == ("done", PLANTED, 1)
