"""The README's tour, end to end through the real command (R3, R4, R13, R23)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from callvault.testing.audio import make_mp3, make_speech_wav
from callvault.testing.scan import find_leaks, identifier_forms

PHONE = "+46701740605"
PNR = "19121212-1212"
ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def call_wav(tmp_path: Path) -> Path:
    # The input's name carries the caller's number, as legacy recorders did.
    path = tmp_path / "in" / "2019-02-18_10-22_0701740605.wav"
    path.parent.mkdir()
    make_speech_wav(path, "Hej, min dotter har feber sedan tre dagar.", voice="sv", encoding="ulaw")
    return path


def ingest(vault, path: Path, *extra: str) -> str:
    out = vault.run(
        "ingest",
        str(path),
        "--caller",
        "+46 70 174 06 05",
        "--personnummer",
        PNR,
        "--care-unit",
        "1177-sthlm",
        "--agent",
        "nurse17",
        "--started-at",
        "2019-02-18T10:22:00+01:00",
        "--call-id",
        "c-123",
        *extra,
    ).stdout
    match = ID_RE.search(out)
    assert match, out
    return match.group(0)


@pytest.mark.parametrize(
    "typed",
    [["070-174", "06", "05"], ["+46", "70", "174", "06", "05"], ["0046701740605"], ["0701740605"]],
)
def test_search_by_caller_finds_recording_whatever_format_is_typed(cli_vault, call_wav, typed):
    vault = cli_vault()
    recording_id = ingest(vault, call_wav)
    assert recording_id in vault.run("search", "--caller", *typed).stdout


def test_search_by_personnummer_with_date_range_and_care_unit(cli_vault, call_wav):
    vault = cli_vault()
    recording_id = ingest(vault, call_wav)
    found = vault.run(
        "search",
        "--personnummer",
        "121212+1212",  # ten digits and "+": born 1912
        "--from",
        "2019-01-01",
        "--to",
        "2019-12-31",
        "--care-unit",
        "1177-sthlm",
    ).stdout
    assert recording_id in found
    outside = vault.run("search", "--personnummer", "19121212 1212", "--from", "2020-01-01").stdout
    assert recording_id not in outside
    other_unit = vault.run(
        "search", "--personnummer", "19121212-1212", "--care-unit", "1177-gbg"
    ).stdout
    assert recording_id not in other_unit


def test_search_without_criteria_is_refused_because_the_vault_never_lists(cli_vault):
    vault = cli_vault()
    proc = vault.run("search", check=False)
    assert proc.returncode == 2
    assert "at least one search criterion" in proc.stderr


def test_tour_round_trips_audio_and_leaves_no_personal_data_or_plaintext(
    cli_vault, call_wav, tmp_path
):
    vault = cli_vault()
    recording_id = ingest(vault, call_wav)
    mp3 = tmp_path / "in" / "second.mp3"
    make_mp3(mp3, call_wav, mode="vbr_no_xing")
    ingest(vault, mp3)

    shown = vault.run("show", recording_id).stdout
    assert PHONE in shown and "19121212-1212" in shown and "1177-sthlm" in shown

    out = tmp_path / "out" / "call.wav"
    out.parent.mkdir()
    vault.run("export", recording_id, "-o", str(out), "--reason", "complaint 2019-77")
    assert out.read_bytes() == call_wav.read_bytes()

    assert "OK" in vault.run("verify").stdout
    vault.run("keys", "rotate")
    status = vault.run("keys", "status").stdout
    assert "current version 2" in status
    again = tmp_path / "out" / "again.wav"
    vault.run("export", recording_id, "-o", str(again), "--reason", "complaint 2019-77")
    assert again.read_bytes() == call_wav.read_bytes()
    vault.run("audit", "checkpoint")
    assert "OK" in vault.run("audit", "verify").stdout
    assert "OK" in vault.run("verify").stdout

    tail = vault.run("audit", "tail", "-n", "50").stdout
    for action in (
        "recording:ingest",
        "recording:view",
        "recording:export",
        "key:rotate",
        "vault:verify",
    ):
        assert action in tail
    assert "complaint 2019-77" in tail

    leaks = find_leaks([vault.home, vault.tmpdir], [*identifier_forms(PHONE, PNR), b"c-123"])
    assert leaks == []


def test_export_refuses_to_overwrite_and_requires_a_reason(cli_vault, call_wav, tmp_path):
    vault = cli_vault()
    recording_id = ingest(vault, call_wav)
    existing = tmp_path / "exists.wav"
    existing.write_bytes(b"keep me")
    proc = vault.run("export", recording_id, "-o", str(existing), "--reason", "review", check=False)
    assert proc.returncode == 2 and existing.read_bytes() == b"keep me"
    proc = vault.run(
        "export", recording_id, "-o", str(tmp_path / "x.wav"), "--reason", " ", check=False
    )
    assert proc.returncode == 2 and not (tmp_path / "x.wav").exists()


def test_reingesting_the_same_call_is_idempotent(cli_vault, call_wav):
    vault = cli_vault()
    first = ingest(vault, call_wav)
    second = vault.run(
        "ingest",
        str(call_wav),
        "--care-unit",
        "1177-sthlm",
        "--started-at",
        "2019-02-18T10:22:00+01:00",
    ).stdout
    assert first in second and "already in the vault" in second
    db = sqlite3.connect(vault.home / "data" / "vault.db")
    assert db.execute("select count(*) from recordings").fetchone()[0] == 1


def test_tampered_object_fails_verify_and_export(cli_vault, call_wav, tmp_path):
    vault = cli_vault()
    recording_id = ingest(vault, call_wav)
    objects_dir = vault.home / "data" / "blobs" / "objects"
    target = next(p for p in objects_dir.rglob("*") if p.is_file())
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.chmod(0o600)
    target.write_bytes(bytes(data))
    verify = vault.run("verify", check=False)
    assert verify.returncode != 0 and "integrity" in verify.stdout
    out = tmp_path / "tampered.wav"
    proc = vault.run("export", recording_id, "-o", str(out), "--reason", "review", check=False)
    assert proc.returncode == 5 and not out.exists()


def test_the_logged_actor_comes_from_the_uid_not_from_the_environment(cli_vault, call_wav):
    import os
    import pwd

    vault = cli_vault()
    vault.env.update(LOGNAME="mallory", USER="mallory")
    ingest(vault, call_wav)
    tail = vault.run("audit", "tail", "-n", "3").stdout
    assert "mallory" not in tail
    assert pwd.getpwuid(os.geteuid()).pw_name in tail
