"""Bad input gets a clear error and changes nothing (R27)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from callvault.testing.audio import make_mp3, make_tone_wav

BASE_ARGS = ["--care-unit", "1177-sthlm", "--started-at", "2019-02-18T10:22:00+01:00"]


def snapshot(vault) -> dict[str, object]:
    """Everything observable about the vault's state: rows, log, key file, objects."""
    db = sqlite3.connect(vault.home / "data" / "vault.db")
    state = {
        table: db.execute(f"select * from {table} order by 1").fetchall()
        for table in ("recordings", "bucket_keks", "audit_entries", "audit_head")
    }
    db.close()
    files = sorted(
        (str(p.relative_to(vault.home)), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in vault.home.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm")) and p.suffix != ".db"
    )
    return {**state, "files": files, "tmp": sorted(vault.tmpdir.rglob("*"))}


def write_pdf(path: Path) -> None:
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n")


def truncated_wav(path: Path) -> None:
    make_tone_wav(path, seconds=2.0, rate=8000, encoding="pcm16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


CASES = {
    "pdf named .wav": (lambda p: write_pdf(p), "call.wav"),
    "empty file": (lambda p: p.write_bytes(b""), "call.wav"),
    "text named .mp3": (lambda p: p.write_text("hello " * 100), "call.mp3"),
    "random bytes": (lambda p: p.write_bytes(bytes(range(256)) * 64), "call.wav"),
    "truncated wav": (truncated_wav, "call.wav"),
    "header-only wav": (lambda p: p.write_bytes(b"RIFF$\x00\x00\x00WAVEfmt "), "call.wav"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_audio_is_refused_and_changes_nothing(cli_vault, tmp_path, case):
    vault = cli_vault()
    make, name = CASES[case]
    bad = tmp_path / name
    make(bad)
    before = snapshot(vault)
    proc = vault.run("ingest", str(bad), *BASE_ARGS, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "refused audio input" in proc.stderr
    assert snapshot(vault) == before


def test_mp3_named_wav_is_accepted_by_content(cli_vault, tmp_path):
    vault = cli_vault()
    source = tmp_path / "tone.wav"
    make_tone_wav(source, seconds=1.0, rate=16000, encoding="pcm16")
    mp3 = tmp_path / "actually-mp3.wav"
    make_mp3(mp3, source, mode="cbr")
    out = vault.run("ingest", str(mp3), *BASE_ARGS).stdout
    assert "stored" in out


def test_oversized_input_is_refused(cli_vault, tmp_path):
    vault = cli_vault()
    wav = tmp_path / "big.wav"
    make_tone_wav(wav, seconds=2.0, rate=8000, encoding="pcm16")
    vault.env["CALLVAULT_MAX_INGEST_BYTES"] = "1000"
    before = snapshot(vault)
    proc = vault.run("ingest", str(wav), *BASE_ARGS, check=False)
    assert proc.returncode == 2 and "limit" in proc.stderr
    assert snapshot(vault) == before


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--caller", "070-12", "not a valid phone number"),
        ("--personnummer", "19850312-1234", "not a valid personnummer"),
        ("--care-unit", "../../etc", "care unit"),
        ("--started-at", "2019-02-18T10:22:00", "UTC offset"),
        ("--agent", "nurse 17; drop table", "agent"),
    ],
)
def test_bad_call_details_are_refused_without_echoing_them(
    cli_vault, tmp_path, flag, value, message
):
    vault = cli_vault()
    wav = tmp_path / "ok.wav"
    make_tone_wav(wav, seconds=1.0, rate=8000, encoding="pcm16")
    args = {"--care-unit": "1177-sthlm", "--started-at": "2019-02-18T10:22:00+01:00", flag: value}
    flat = [x for pair in args.items() for x in pair]
    before = snapshot(vault)
    proc = vault.run("ingest", str(wav), *flat, check=False)
    assert proc.returncode == 2 and message in proc.stderr
    if flag in ("--caller", "--personnummer"):
        assert value not in proc.stderr
    assert snapshot(vault) == before


def test_missing_input_file_is_a_clear_error(cli_vault, tmp_path):
    vault = cli_vault()
    proc = vault.run("ingest", str(tmp_path / "nope.wav"), *BASE_ARGS, check=False)
    assert proc.returncode == 2 and "cannot read input file" in proc.stderr


@pytest.mark.parametrize(
    "bad_id", ["../../etc/passwd", "1", "00000000-0000-0000-0000-000000000000"]
)
def test_hostile_recording_ids_are_refused(cli_vault, tmp_path, bad_id):
    vault = cli_vault()
    proc = vault.run("show", bad_id, check=False)
    assert proc.returncode == 2 and "not a recording id" in proc.stderr
