"""Several API nodes on one PostgreSQL and one S3 store (SeaweedFS): any node serves anyone.

Two ``callvault serve`` processes share a database, a bucket and the key
file, and nothing else: a recording ingested through node A is found and
played through node B, a session opened on A is valid on B, a grant opened
on B serves ranges on A, and a logout on B ends the session on A.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from callvault.bootstrap import open_vault
from callvault.config import Settings
from callvault.entrypoints.http.deps import SESSION_COOKIE
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
class Cluster:
    env: dict[str, str]
    nodes: list[Node]
    nurse: TestAccount
    recorder: str
    cafile: Path

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


def _stop(node: Node) -> None:
    node.process.send_signal(signal.SIGTERM)
    try:
        node.process.wait(30)
    except subprocess.TimeoutExpired:
        node.process.kill()
        node.process.wait()


@pytest.fixture
def cluster(tmp_path: Path, seaweedfs: SeaweedFS) -> Iterator[Cluster]:
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)
    with throwaway_database() as database_url, ExitStack() as stack:
        bucket = seaweedfs.make_bucket()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
        env.update(
            CALLVAULT_HOME=str(tmp_path / "home"),
            CALLVAULT_PASSPHRASE_FILE=str(secret),
            CALLVAULT_DATABASE_URL=database_url,
            CALLVAULT_BLOBSTORE_URL=seaweedfs.blobstore_url(bucket),
            TMPDIR=str(tmp_path),
            PYTHONDONTWRITEBYTECODE="1",
            **seaweedfs.credentials_env(),
        )
        init = subprocess.run(
            [sys.executable, "-m", "callvault", "init"], env=env, capture_output=True, timeout=120
        )
        assert init.returncode == 0, init.stderr
        vault = open_vault(Settings.from_env(env))
        try:
            allow_ingest(vault, [UNIT])
            nurse = enrolled_account(vault, "nurse.a", role="call_handler", care_units=[UNIT])
            token = recorder_token(vault, "recorder-a", UNIT)
        finally:
            vault.close()
        nodes = [_start_node(name, env, tmp_path) for name in ("a", "b")]
        for node in nodes:
            stack.callback(_stop, node)
        yield Cluster(env, nodes, nurse, token, tmp_path / "home" / "tls" / "cert.pem")
    for node in nodes:
        assert node.process.returncode == 0, node.log.read_text()[-3000:]


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
