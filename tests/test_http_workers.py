"""``callvault serve --workers N``: several processes on one port, supervised."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def wait_for(predicate, what: str, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[dict[str, str], int]]:
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env.update(
        CALLVAULT_HOME=str(tmp_path / "home"),
        CALLVAULT_PASSPHRASE_FILE=str(secret),
        CALLVAULT_BIND=f"127.0.0.1:{port}",
        TMPDIR=str(tmp_path),
        PYTHONDONTWRITEBYTECODE="1",
    )
    init = subprocess.run(
        [sys.executable, "-m", "callvault", "init"], env=env, capture_output=True, timeout=60
    )
    assert init.returncode == 0, init.stderr
    yield env, port


def healthy(env: dict[str, str], port: int) -> bool:
    context = ssl.create_default_context(cafile=str(Path(env["CALLVAULT_HOME"]) / "tls/cert.pem"))
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def test_workers_share_the_port_are_replaced_when_killed_and_stop_cleanly(
    home: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    env, port = home
    log = (tmp_path / "serve.log").open("wb")
    parent = subprocess.Popen(
        [sys.executable, "-m", "callvault", "serve", "--workers", "2"],
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        wait_for(lambda: len(children(parent.pid)) == 2 and healthy(env, port), "two workers")
        assert all(healthy(env, port) for _ in range(20))
        first = children(parent.pid)
        victim = min(first)
        # Past the start-up grace, so the supervisor replaces it instead of giving up.
        time.sleep(5.5)
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: len(children(parent.pid)) == 2 and victim not in children(parent.pid),
            "a replacement worker",
        )
        wait_for(lambda: healthy(env, port), "the service to answer again")
        workers = children(parent.pid)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert "starting another" in text


def test_workers_that_cannot_open_the_vault_stop_the_service_with_a_clear_error(
    home: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    env, _ = home
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all\n")
    wrong.chmod(0o600)
    result = subprocess.run(
        [sys.executable, "-m", "callvault", "serve", "--workers", "2"],
        env={**env, "CALLVAULT_PASSPHRASE_FILE": str(wrong)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "could not start" in result.stderr
    assert "passphrase" in result.stderr.lower()


@pytest.mark.parametrize("count", ["0", "65", "-1"])
def test_a_worker_count_out_of_bounds_is_refused(
    home: tuple[dict[str, str], int], count: str
) -> None:
    env, port = home
    result = subprocess.run(
        [sys.executable, "-m", "callvault", "serve", "--workers", count],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "--workers" in result.stderr
    assert not healthy(env, port)
