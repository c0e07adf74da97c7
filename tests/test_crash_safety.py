"""kill -9 during ingest: no plaintext, no half record, verify clean, re-run converges (R28).

The kills are aimed: some at fixed fractions of a whole run, the others the
moment a durable step becomes visible (the pending row, the temp object,
the stored object), so every window between two durable steps is hit.
"""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from callvault.testing.audio import make_noise_wav_streaming
from callvault.testing.scan import find_leaks, identifier_forms

PHONE = "+46701740606"
PNR = "19121212-1212"
ARGS = [
    "--caller", "070-174 06 06", "--personnummer", PNR, "--care-unit", "1177-sthlm",
    "--started-at", "2019-02-18T10:22:00+01:00",
]  # fmt: skip


def visible_recordings(vault) -> int:
    out = vault.run("search", "--caller", "070-174 06 06").stdout
    return int(out.strip().splitlines()[-1].split()[0])


def pending_rows(vault) -> int:
    db_path = vault.home / "data" / "vault.db"
    if not db_path.exists():
        return 0
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("select count(*) from recordings where state = 'pending'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def files_in(directory: Path) -> int:
    return sum(1 for p in directory.rglob("*") if p.is_file()) if directory.exists() else 0


def wait_for(condition: Callable[[], bool], proc, limit: float = 60) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.002)
    return False


@pytest.mark.slow
def test_sigkill_at_any_point_of_ingest_leaves_a_clean_vault_that_converges(cli_vault, tmp_path):
    wav = tmp_path / "in" / "call.wav"
    wav.parent.mkdir()
    make_noise_wav_streaming(wav, seconds=1800, rate=16000)  # ~58 MB: windows wide enough to hit
    vault = cli_vault()
    started = time.monotonic()
    vault.run("ingest", str(wav), *ARGS)
    full = time.monotonic() - started
    vault = _fresh(cli_vault, tmp_path)

    blobs = vault.home / "data" / "blobs"
    triggers: list[tuple[str, Callable[[], bool]]] = [
        ("pending row", lambda: pending_rows(vault) > 0),
        ("object being written", lambda: files_in(blobs / "tmp") > 0),
        ("object stored", lambda: files_in(blobs / "objects") > 0),
    ]
    rng = random.Random(7)
    landed = 0
    for attempt in range(12):
        proc = vault.popen("ingest", str(wav), *ARGS)
        if attempt % 2 == 0:
            time.sleep(full * rng.uniform(0.05, 1.0))
        else:
            _name, condition = triggers[(attempt // 2) % len(triggers)]
            landed += wait_for(condition, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _assert_clean(vault)
    assert landed >= 4, "the aimed kills never hit the windows they aim at"

    done = vault.run("ingest", str(wav), *ARGS).stdout
    assert "stored" in done or "already in the vault" in done
    assert visible_recordings(vault) == 1
    db = sqlite3.connect(vault.home / "data" / "vault.db")
    states = db.execute("select state, count(*) from recordings group by state").fetchall()
    assert states == [("active", 1)]
    assert "OK" in vault.run("verify").stdout
    out = tmp_path / "out.wav"
    vault.run("export", done.split()[0], "-o", str(out), "--reason", "crash test")
    assert out.read_bytes() == wav.read_bytes()


def _assert_clean(vault) -> None:
    assert find_leaks([vault.home, vault.tmpdir], identifier_forms(PHONE, PNR)) == []
    assert visible_recordings(vault) in (0, 1)
    verify = vault.run("verify", check=False)
    assert verify.returncode == 0, verify.stdout


def _fresh(cli_vault, tmp_path: Path):
    for name in ("vault-home", "vault-tmp"):
        shutil.rmtree(tmp_path / name)
    return cli_vault()
