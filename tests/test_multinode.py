"""Several nodes on one PostgreSQL and one S3 store (SeaweedFS): any node serves anyone.

Two ``callvault serve`` processes and two ``callvault worker`` processes
share a database, a bucket and the key file, and nothing else: a recording
ingested through node A is found and played through node B, a session opened
on A is valid on B, a grant opened on B serves ranges on A, a logout on B
ends the session on A, and a scrub whose worker is killed mid-run is
finished by the other worker, each recording counted once (R23, R28).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select, text

from callvault.adapters.db.schema import audit_entries, recordings
from callvault.adapters.db.store import create_engine_for
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.bootstrap import open_jobs, open_vault
from callvault.config import Settings
from callvault.core.access import OPERATOR, Principal
from callvault.core.audit import Action
from callvault.core.ports import SystemClock
from callvault.core.recordings import ACTIVE
from callvault.entrypoints.http.deps import SESSION_COOKIE
from callvault.services import audit, ingest, jobs
from callvault.services.details import CallDetails
from callvault.services.jobs_kinds import SCRUB_BATCH
from callvault.testing.audio import wav_header
from callvault.testing.http import (
    CSRF_HEADER,
    TestAccount,
    enrolled_account,
    recorder_token,
    sign_in,
)
from callvault.testing.lifecycle import allow_ingest
from callvault.testing.postgres import throwaway_database
from callvault.testing.seaweedfs import SeaweedFS

API = "/api/v1"
UNIT = "unit-a"
PHONE = "070-174 06 05"
REASON = {"reason": "Caller rang back about the earlier advice"}
PASSPHRASE = "correct horse battery staple"
# Above procrastinate's 5 s heartbeat, so a live worker never looks stalled.
LEASE = 8
SCRUBBED = 240  # recordings of SCRUB_SECONDS each: a scrub of a few seconds on 2 cores
SCRUB_SECONDS = 8.0
OP = Principal(name="multinode-test", role=OPERATOR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    queue_id: int  # its row in procrastinate_workers


@dataclass
class Cluster:
    env: dict[str, str]
    nodes: list[Node]
    workers: list[Worker]
    nurse: TestAccount
    recorder: str
    cafile: Path
    db: Engine

    def client(self, node: Node, **headers: str) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.cafile))
        return httpx.Client(base_url=node.base, verify=context, headers=headers, timeout=30)


def _wait_listening(node: Node) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            pytest.fail(f"node {node.name} exited: {node.log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", node.port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"node {node.name} did not listen within 60 s")


def _start_node(name: str, env: dict[str, str], tmp: Path) -> Node:
    port = free_port()
    log = tmp / f"node-{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "callvault", "serve"],
            env={**env, "CALLVAULT_BIND": f"127.0.0.1:{port}"},
            stdout=out,
            stderr=out,
        )
    node = Node(name, port, process, log)
    _wait_listening(node)
    return node


def _queue_workers(db: Engine) -> list[int]:
    with db.connect() as conn:
        return list(conn.scalars(text("SELECT id FROM procrastinate_workers ORDER BY id")))


def _start_worker(name: str, env: dict[str, str], tmp: Path, db: Engine) -> Worker:
    """A worker, known by its procrastinate worker row once it has registered."""
    known = set(_queue_workers(db))
    log = tmp / f"worker-{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "callvault", "worker"], env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + 60
    while not (new := set(_queue_workers(db)) - known):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"worker {name} did not start: {log.read_text()[-3000:]}")
        time.sleep(0.1)
    return Worker(name, process, log, new.pop())


def _stop(node: Node | Worker) -> None:
    if node.process.poll() is not None:
        return  # killed by its test
    node.process.send_signal(signal.SIGTERM)
    try:
        node.process.wait(30)
    except subprocess.TimeoutExpired:
        node.process.kill()
        node.process.wait()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callvault", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS) -> Iterator[Cluster]:
    """One cluster for the module: starting it is most of the file's time."""
    tmp_path = tmp_path_factory.mktemp("multinode")
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    with throwaway_database() as database_url, ExitStack() as stack:
        db = create_engine_for(database_url)
        stack.callback(db.dispose)
        bucket = seaweedfs.make_bucket()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
        env.update(
            CALLVAULT_HOME=str(tmp_path / "home"),
            CALLVAULT_PASSPHRASE_FILE=str(secret),
            CALLVAULT_DATABASE_URL=database_url,
            CALLVAULT_BLOBSTORE_URL=seaweedfs.blobstore_url(bucket),
            TMPDIR=str(tmp_path),
            PYTHONDONTWRITEBYTECODE="1",
            CALLVAULT_JOBS_LEASE_SECONDS=str(LEASE),
            # No scheduled jobs: the test queues the one it watches.
            CALLVAULT_JOBS_SCRUB_HOURS="0",
            CALLVAULT_JOBS_SWEEP_MINUTES="0",
            **seaweedfs.credentials_env(),
        )
        init = subprocess.run(
            [sys.executable, "-m", "callvault", "init"], env=env, capture_output=True, timeout=120
        )
        assert init.returncode == 0, init.stderr
        vault = open_vault(Settings.from_env(env))
        try:
            # A cheap key-file KDF: every process (and CLI call) opens the vault.
            assert isinstance(vault.keys, KeyfileProvider)
            vault.keys.change_passphrase(PASSPHRASE.encode(), kdf_params=KdfParams(1, 1024, 1))
            allow_ingest(vault, [UNIT])
            nurse = enrolled_account(vault, "nurse.a", role="call_handler", care_units=[UNIT])
            token = recorder_token(vault, "recorder-a", UNIT)
        finally:
            vault.close()
        queue_init = _cli(env, "jobs", "init")  # procrastinate's schema, after `callvault init`
        assert queue_init.returncode == 0, queue_init.stderr
        nodes = [_start_node(name, env, tmp_path) for name in ("a", "b")]
        for node in nodes:
            stack.callback(_stop, node)
        workers = [_start_worker(name, env, tmp_path, db) for name in ("1", "2")]
        for worker in workers:
            stack.callback(_stop, worker)
        cafile = tmp_path / "home" / "tls" / "cert.pem"
        yield Cluster(env, nodes, workers, nurse, token, cafile, db)
    for node in nodes:
        assert node.process.returncode == 0, node.log.read_text()[-3000:]
    for worker in workers:
        assert worker.process.returncode in (0, -signal.SIGKILL), worker.log.read_text()[-3000:]


def noise_wav(seconds: float, seed: int) -> bytes:
    data = random.Random(seed).randbytes(int(8000 * seconds) * 2)
    return wav_header(sample_rate=8000, channels=1, data_size=len(data)) + data


def test_ingest_on_one_node_search_and_play_on_the_other(cluster: Cluster) -> None:
    a, b = cluster.nodes
    audio = noise_wav(20, 1)
    with cluster.client(a, Authorization=f"Bearer {cluster.recorder}") as recorder:
        made = recorder.post(
            f"{API}/recordings",
            data={
                "call_id": "mn-1",
                "started_at": "2026-03-01T10:22:00+01:00",
                "caller": PHONE,
                "agent": "nurse.a",
            },
            files={"audio": ("call.wav", audio)},
        )
        assert made.status_code == 201, made.text
    rid = made.json()["id"]

    vault = open_vault(Settings.from_env(cluster.env))
    try:
        with cluster.client(a) as on_a:
            sign_in(on_a, vault, cluster.nurse)
            cookie = on_a.cookies.get(SESSION_COOKIE)
            csrf = on_a.headers[CSRF_HEADER]
    finally:
        vault.close()
    session = {"Cookie": f"{SESSION_COOKIE}={cookie}", CSRF_HEADER: csrf}

    # The session opened on A is valid on B: search there by the caller's number.
    with cluster.client(b, **session) as on_b:
        found = on_b.post(f"{API}/recordings/search", json={"caller": "0701740605"})
        assert found.status_code == 200, found.text
        assert [item["id"] for item in found.json()["items"]] == [rid]
        grant = on_b.post(f"{API}/recordings/{rid}/playback", json=REASON)
        assert grant.status_code == 200, grant.text

    # The grant opened on B serves ranges on A and on B, byte for byte.
    for node in (a, b):
        with cluster.client(node, **session) as client:
            for start in (0, 65_000, len(audio) - 5_000):
                got = client.get(
                    f"{API}/recordings/{rid}/audio",
                    headers={"Range": f"bytes={start}-{start + 9_999}"},
                )
                assert got.status_code == 206, (node.name, got.text)
                assert got.content == audio[start : start + 10_000]

    # A logout on B ends the session on A too (give A's one-second play cache its second).
    with cluster.client(b, **session) as on_b:
        assert on_b.post(f"{API}/auth/logout").status_code in (200, 204)
    time.sleep(1.1)
    with cluster.client(a, **session) as on_a:
        assert on_a.get(f"{API}/recordings/{rid}/audio").status_code == 401
        assert on_a.post(f"{API}/recordings/search", json={"caller": PHONE}).status_code == 401


def test_the_same_call_id_on_both_nodes_at_once_is_stored_once(cluster: Cluster) -> None:
    """Idempotent ingest holds across nodes: the database, not a node, decides."""
    audio = noise_wav(5, 2)
    answers = []
    for node in cluster.nodes:
        with cluster.client(node, Authorization=f"Bearer {cluster.recorder}") as recorder:
            answers.append(
                recorder.post(
                    f"{API}/recordings",
                    data={"call_id": "mn-dup", "started_at": "2026-03-01T11:00:00+01:00"},
                    files={"audio": ("call.wav", audio)},
                )
            )
    assert sorted(r.status_code for r in answers) == [200, 201]
    assert len({r.json()["id"] for r in answers}) == 1


def _scrub_range(db: Engine) -> tuple[str, int | None, int, int] | None:
    """(procrastinate status, worker row, attempts, recordings done) of the scrub_range job."""
    with db.connect() as conn:
        row = conn.execute(
            text(
                "SELECT j.status::text, j.worker_id, j.attempts, coalesce(p.progress_done, 0)"
                " FROM procrastinate_jobs j LEFT JOIN job_progress p ON p.job_id = j.id"
                " WHERE j.task_name = 'scrub_range'"
            )
        ).one_or_none()
    return None if row is None else (row[0], row[1], row[2], row[3])


def _recordings(db: Engine) -> list[tuple[object, ...]]:
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(select(recordings).order_by(recordings.c.id))]


def _audit_of(db: Engine, action: Action) -> list[bytes]:
    with db.connect() as conn:
        return [
            bytes(b)
            for b in conn.scalars(
                select(audit_entries.c.body)
                .where(audit_entries.c.action == action.value)
                .order_by(audit_entries.c.seq)
            )
        ]


def _wait_for(what: str, ready: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_scrub_whose_worker_is_killed_is_finished_by_the_other_worker_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    """R23, R28: SIGKILL mid-range loses and double-counts nothing, on any host."""
    vault = open_vault(Settings.from_env(cluster.env))
    try:
        today = vault.now().date()
        for n in range(SCRUBBED):
            wav = tmp_path / "call.wav"
            wav.write_bytes(noise_wav(SCRUB_SECONDS, 1000 + n))
            details = CallDetails.parse(
                care_unit=UNIT, started_at="2026-03-02T08:00:00+01:00", today=today
            )
            ingest.ingest(vault, OP, wav, details)
        objects = {name: vault.blobs.size(name) for name in vault.blobs.names()}
    finally:
        vault.close()
    rows = _recordings(cluster.db)
    active = sum(1 for r in rows if r[1] == ACTIVE)
    assert active >= SCRUBBED
    seen_before = len(_audit_of(cluster.db, Action.RECORDING_VERIFY))

    queued = _cli(cluster.env, "jobs", "enqueue", "scrub", "--parts", "1")
    assert queued.returncode == 0, queued.stderr

    # Kill whichever worker holds the range, once it has saved progress.
    def holder_has_saved_progress() -> bool:
        job = _scrub_range(cluster.db)
        assert job is None or job[0] in ("todo", "doing"), job
        return job is not None and job[0] == "doing" and job[3] >= SCRUB_BATCH

    _wait_for("a worker has scrubbed a batch", holder_has_saved_progress)
    job = _scrub_range(cluster.db)
    assert job is not None
    (holder,) = [w for w in cluster.workers if w.queue_id == job[1]]
    (other,) = [w for w in cluster.workers if w is not holder]
    holder.process.send_signal(signal.SIGKILL)
    holder.process.wait(30)
    status, _, _, done = _scrub_range(cluster.db) or ("none", None, 0, 0)
    assert status == "doing" and 0 < done < active, "the kill did not land mid-range"

    # The tick every worker runs each minute gives a dead worker's job back;
    # run it now, once the lease is over, instead of waiting for the minute.
    time.sleep(LEASE + 1)
    vault = open_vault(Settings.from_env(cluster.env))
    try:
        jobs.tick(vault, [])
    finally:
        vault.close()
    _wait_for(
        "the other worker finished", lambda: (_scrub_range(cluster.db) or ("",))[0] == "succeeded"
    )
    assert other.process.poll() is None, other.log.read_text()[-3000:]

    queue, _ = open_jobs(Settings.from_env(cluster.env), SystemClock())
    try:
        (info,) = [j for j in queue.jobs() if j.kind == "scrub_range"]
    finally:
        queue.close()
    assert (info.state.value, info.progress_done, info.attempts) == ("done", active, 2)

    # Counted from the saved cursor: every recording checked once in effect, none lost.
    summaries = [json.loads(b)["detail"] for b in _audit_of(cluster.db, Action.VAULT_VERIFY)]
    ranges = [d for d in summaries if d.get("scope") == "range"]
    assert [(d["checked"], d["problems"]) for d in ranges] == [(active, 0)]
    assert len(_audit_of(cluster.db, Action.RECORDING_VERIFY)) == seen_before
    # The scrub only read: rows and objects are as they were, the log still verifies.
    assert _recordings(cluster.db) == rows
    vault = open_vault(Settings.from_env(cluster.env))
    try:
        assert {name: vault.blobs.size(name) for name in vault.blobs.names()} == objects
        assert audit.check(vault).ok
    finally:
        vault.close()
    verified = _cli(cluster.env, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
