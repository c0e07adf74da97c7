"""kill -9 during ingest: no plaintext, no half record, verify clean, re-run converges (R28)."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from callvault.testing.audio import make_noise_wav_streaming
from callvault.testing.scan import find_leaks, identifier_forms

PHONE = "+46701740606"
PNR = "19121212-1212"
ARGS = [
    "--caller",
    "070-174 06 06",
    "--personnummer",
    PNR,
    "--care-unit",
    "1177-sthlm",
    "--started-at",
    "2019-02-18T10:22:00+01:00",
]
KILLS = 14


def visible_recordings(vault) -> int:
    out = vault.run("search", "--caller", "070-174 06 06").stdout
    return int(out.strip().splitlines()[-1].split()[0])


@pytest.mark.slow
def test_sigkill_at_any_point_of_ingest_leaves_a_clean_vault_that_converges(cli_vault, tmp_path):
    vault = cli_vault()
    wav = tmp_path / "in" / "call.wav"
    wav.parent.mkdir()
    make_noise_wav_streaming(wav, seconds=600, rate=16000)  # ~19 MB: ingest takes a while

    started = time.monotonic()
    vault.run("ingest", str(wav), *ARGS, "--call-id", "timing-run")
    full = time.monotonic() - started
    # Start again from an empty vault for the crash runs.
    vault = _fresh(cli_vault, tmp_path)

    for attempt in range(KILLS):
        delay = full * (0.15 + 0.85 * attempt / (KILLS - 1))
        proc = vault.popen("ingest", str(wav), *ARGS)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert find_leaks([vault.home, vault.tmpdir], identifier_forms(PHONE, PNR)) == []
        assert visible_recordings(vault) in (0, 1)
        verify = vault.run("verify", check=False)
        assert verify.returncode == 0, verify.stdout

    done = vault.run("ingest", str(wav), *ARGS).stdout
    assert "stored" in done or "already in the vault" in done
    assert visible_recordings(vault) == 1
    db = sqlite3.connect(vault.home / "data" / "vault.db")
    assert db.execute("select state, count(*) from recordings group by state").fetchall() == [
        ("active", 1)
    ]
    assert "OK" in vault.run("verify").stdout
    out = tmp_path / "out.wav"
    recording_id = done.split()[0]
    vault.run("export", recording_id, "-o", str(out), "--reason", "crash test")
    assert out.read_bytes() == wav.read_bytes()


def _fresh(cli_vault, tmp_path: Path):
    import shutil

    for name in ("vault-home", "vault-tmp"):
        shutil.rmtree(tmp_path / name)
    return cli_vault()
