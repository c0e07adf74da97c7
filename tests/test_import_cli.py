"""``callvault import`` end to end through the real command (R3, R4, R26, R27)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from callvault.bootstrap import open_vault
from callvault.config import Settings
from callvault.core.access import OPERATOR, Principal
from callvault.services.policies import set_policy
from callvault.testing.audio import make_mp3, make_tone_wav
from callvault.testing.nginx import NginxServer
from callvault.testing.scan import find_leaks, identifier_forms

# Reserved test values (PTS fiction range, Skatteverket's test personnummer).
PHONE = "+46701740605"
NATIONAL = "0701740605"
PNR = "191212121212"
UNIT_FOLDER = "Kund Östra"
UNIT = "1177-sthlm"
DAY = "2019/2019-02-18"


def allow(vault, unit: str = UNIT) -> None:
    """An active recording policy for ``unit`` (R19), set in process as the operator."""
    opened = open_vault(Settings.from_env(vault.env))
    try:
        set_policy(
            opened,
            Principal("tester", OPERATOR),
            care_unit=unit,
            retention_class="record",
            purpose="quality follow-up",
            legal_basis="PDL 3 kap",
        )
    finally:
        opened.close()


def good_tree(root: Path, n: int = 4) -> list[Path]:
    """``n`` distinct short calls in the 1177 layout, WAV and MP3, named by caller."""
    folder = root / UNIT_FOLDER / DAY
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        stamp = f"20190218_1022{i:02d}"
        wav = folder / f"{NATIONAL[:-1]}{i}_{stamp}.wav"
        make_tone_wav(wav, 0.6 + 0.1 * i, frequency=300 + 40 * i)
        if i % 2:
            mp3 = wav.with_suffix(".mp3")
            make_mp3(mp3, wav)
            wav.unlink()
            wav = mp3
        paths.append(wav)
    return paths


def bad_files(root: Path) -> dict[str, Path]:
    """One of every kind of file an archive should not stop for."""
    folder = root / UNIT_FOLDER / DAY
    valid = folder / f"{NATIONAL}_20190218_102259.wav"
    make_tone_wav(valid, 1.0, frequency=911)
    data = valid.read_bytes()
    valid.unlink()
    files = {
        "truncated": folder / f"{NATIONAL}_20190218_102201.wav",
        "corrupt": folder / f"{NATIONAL}_20190218_102202.wav",
        "empty": folder / f"{NATIONAL}_20190218_102203.mp3",
        "not_audio": folder / f"{NATIONAL}_20190218_102204.wav",
        "spaces": folder / f"{NATIONAL} samtal med Åsa och Östen.wav",
        "newline": folder / f"{NATIONAL}\n_20190218_102205.wav",
        "long": folder / (NATIONAL + "_" + "å" * 110 + ".wav"),
        "unreadable": folder / f"{NATIONAL}_20190218_102206.wav",
    }
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["corrupt"].write_bytes(data[:12] + bytes(32) + data[44:])  # fmt chunk zeroed
    files["empty"].write_bytes(b"")
    files["not_audio"].write_text(f"personnummer {PNR}\n")
    for key in ("spaces", "newline", "long", "unreadable"):
        files[key].write_bytes(data)
    files["unreadable"].chmod(0)
    return files


def run_import(vault, *args: str, without_dac: bool = False) -> subprocess.CompletedProcess[str]:
    """The real command; ``without_dac`` drops root's power to read a chmod 000 file."""
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if without_dac else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "callvault", "import", *args],
        env=vault.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def recordings(vault) -> list[tuple[str, str, int]]:
    db = sqlite3.connect(vault.home / "data" / "vault.db")
    try:
        return sorted(
            db.execute("SELECT state, care_unit, plaintext_size FROM recordings").fetchall()
        )
    finally:
        db.close()


def leaks(vault, *texts: str) -> list[str]:
    needles = identifier_forms(PHONE, "19121212-1212")
    found = find_leaks([vault.home, vault.tmpdir], needles)
    for text in texts:
        found += [f"output contains {n!r}" for n in needles if n.decode("latin-1") in text]
    return found


def test_dry_run_shows_masked_samples_and_rejections_and_changes_nothing(cli_vault, tmp_path):
    """R26/R3: a dry run parses names into masked metadata and writes nothing."""
    vault = cli_vault()
    allow(vault)
    src = tmp_path / "archive"
    good_tree(src, 3)
    (src / UNIT_FOLDER / DAY / "notes.txt").write_text("x")
    before = recordings(vault)
    proc = run_import(
        vault, str(src), "--preset", "1177", "--unit-map", f"{UNIT_FOLDER}={UNIT}", "--dry-run"
    )
    assert proc.returncode == 3, proc.stderr  # one file would not be imported
    assert "would_import   3" in proc.stdout
    assert "no_match" in proc.stdout
    assert "caller=+4670*****" in proc.stdout
    assert "started_at=2019-02-18T09:22:00+00:00" in proc.stdout
    assert recordings(vault) == before
    assert not (vault.home / "import").exists()
    assert leaks(vault, proc.stdout, proc.stderr) == []


def test_import_reports_every_bad_file_and_never_stops(cli_vault, tmp_path):
    """R27: corrupt, truncated, empty, non-audio, unreadable and strangely named files
    are reported by index with masked names; the good ones are imported (R3, R4)."""
    vault = cli_vault()
    allow(vault)
    src = tmp_path / "archive"
    good = good_tree(src, 3)
    # The same call copied under two more names: stored once, whichever worker wins.
    copies = [good[0].with_name(f"{NATIONAL}_20190218_1030{i}0{good[0].suffix}") for i in (1, 2)]
    for copy in copies:
        copy.write_bytes(good[0].read_bytes())
    good += copies
    bad_files(src)
    proc = run_import(
        vault,
        str(src),
        "--preset",
        "1177",
        "--unit-map",
        f"{UNIT_FOLDER}={UNIT}",
        "--json",
        "--workers",
        "2",
        without_dac=True,
    )
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    assert report["outcomes"] == {"imported": 3, "duplicate": 2, "rejected": 8}, report
    assert report["reasons"] == {
        "empty": 1,
        "no_match": 3,  # spaces, newline and the very long name
        "unreadable": 1,
        "unsupported_audio": 2,  # truncated, corrupt
        "not_audio": 1,
    }
    assert report["complete"] is True
    every = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if not p.is_dir())
    expected = {i for i, rel in enumerate(every) if rel not in _rel(src, good)}
    assert {p["index"] for p in report["problems"]} == expected
    assert all("\n" not in p["name"] and len(p["name"]) < 80 for p in report["problems"])
    assert [state for state, *_ in recordings(vault)] == ["active"] * 3
    objects = [p for p in (vault.home / "data" / "blobs").rglob("*") if p.is_file()]
    assert len(objects) == 3, "no object left behind by a lost race"
    assert all(p.exists() for p in good), "originals are kept by default"
    assert leaks(vault, proc.stdout, proc.stderr) == []


def _rel(root: Path, paths: list[Path]) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_verified_originals_are_moved_and_a_rerun_changes_nothing(cli_vault, tmp_path):
    """R26: originals move only after their record is verified; the same command
    again finds everything done; both runs are audited (R13)."""
    vault = cli_vault()
    allow(vault)
    src, moved = tmp_path / "archive", tmp_path / "moved"
    good = good_tree(src, 4)
    args = [str(src), "--preset", "1177", "--unit-map", f"{UNIT_FOLDER}={UNIT}"]
    proc = run_import(vault, *args, "--move-originals-to", str(moved), "--progress")
    assert proc.returncode == 0, proc.stderr
    assert "imported       4" in proc.stdout and "moved 4" in proc.stdout
    assert "4/4 files" in proc.stderr and "MB/s" in proc.stderr and "ETA" in proc.stderr
    assert not any(p.exists() for p in good)
    assert sorted(_rel(moved, list(moved.rglob("*.*")))) == sorted(_rel(src, good))
    again = run_import(vault, *args, "--move-originals-to", str(moved))
    assert again.returncode == 0 and "imported       4" in again.stdout
    assert "ETA" not in again.stderr, "no progress line without a terminal or --progress"
    assert len(recordings(vault)) == 4
    # R13: one import:run entry at each end of each run, one ingest entry per file (the
    # second run found every file done in its journal and ingested nothing).
    tail = vault.run("audit", "tail", "-n", "30").stdout
    assert tail.count("import:run") == 4
    assert tail.count("recording:ingest") == 4


def test_shredding_warns_about_ssds_and_removes_verified_originals(cli_vault, tmp_path):
    vault = cli_vault()
    allow(vault)
    src = tmp_path / "archive"
    good = good_tree(src, 2)
    proc = run_import(
        vault,
        str(src),
        "--preset",
        "1177",
        "--unit-map",
        f"{UNIT_FOLDER}={UNIT}",
        "--shred-originals",
    )
    assert proc.returncode == 0, proc.stderr
    assert "SSD" in proc.stderr and "copy-on-write" in proc.stderr
    assert not any(p.exists() for p in good)
    assert len(recordings(vault)) == 2


def test_unit_without_policy_and_unmapped_folder_are_refused_by_name(cli_vault, tmp_path):
    """R19 through import: nothing is stored for a unit without a recording policy."""
    vault = cli_vault()
    src = tmp_path / "archive"
    good_tree(src, 2)
    unpoliced = f"{UNIT_FOLDER}=1177-uppsala"
    proc = run_import(vault, str(src), "--preset", "1177", "--unit-map", unpoliced)
    assert proc.returncode == 3 and "no_recording_policy 2" in proc.stdout
    other = run_import(vault, str(src), "--preset", "1177", "--unit-map", "Annan=1177-gbg")
    assert "unmapped_unit 2" in other.stdout
    assert recordings(vault) == []


BAD_OPTIONS = [
    (["--pattern", "(?P<phone>\\d+)"], "unknown group"),
    (["--pattern", "(?P<started_at>\\d+"], "not a valid regular expression"),
    (["--preset", "oreka"], "give --care-unit"),
    (["--preset", "1177", "--unit-map", "no-equals-sign"], "FOLDER=UNIT"),
    (["--preset", "1177", "--unit-map-file", "{src}/missing.txt"], "care-unit map file"),
    (["--preset", "1177", "--move-originals-to", "{src}/inside"], "outside the import"),
    (["--preset", "1177", "--timezone", "Mars/Olympus"], "time zone"),
]


def test_bad_options_are_refused_and_change_nothing(cli_vault, tmp_path):
    """R27: clear errors, exit 2, no records, no journal, originals untouched."""
    vault = cli_vault()
    src = tmp_path / "archive"
    good = good_tree(src, 1)
    for args, message in BAD_OPTIONS:
        proc = run_import(vault, str(src), *[a.replace("{src}", str(src)) for a in args])
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
    missing = run_import(vault, str(tmp_path / "nowhere"), "--preset", "1177")
    assert missing.returncode == 2 and "not a directory" in missing.stderr
    assert recordings(vault) == [] and not (vault.home / "import").exists()
    assert good[0].exists() and not (src / "inside").exists()


def test_import_from_an_exposed_web_listing_never_writes_plaintext(cli_vault, tmp_path):
    """R4/R26: an nginx autoindex archive is streamed into the vault, nothing in clear
    on disk; a second run finds every call already stored."""
    vault = cli_vault()
    allow(vault)
    src = tmp_path / "exposed"
    good_tree(src, 3)
    (src / UNIT_FOLDER / DAY / f"{NATIONAL}_20190218_102259.wav").write_text("RIFF but not audio")
    with NginxServer(src, tmp_path / "nginx") as web:
        url = web.base_url
        args = [url, "--preset", "1177", "--unit-map", f"{UNIT_FOLDER}={UNIT}", "--json"]
        first = run_import(vault, *args)
        # The journal, not the vault, remembers the first run; without it the
        # calls are recognised by their derived call ids.
        for journal in (vault.home / "import").iterdir():
            journal.unlink()
        second = run_import(vault, *args)
    assert first.returncode == 3, first.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["outcomes"] == {"imported": 3, "rejected": 1}
    assert one["reasons"] == {"unsupported_audio": 1}
    assert two["outcomes"] == one["outcomes"]
    assert len(recordings(vault)) == 3
    assert leaks(vault, first.stdout, first.stderr) == []


def test_a_shred_cut_short_by_a_crash_is_finished_without_reading_the_file_again(
    cli_vault, tmp_path
):
    """R28: killed after the overwrite, before the unlink: the journal says verified,
    the file holds random bytes; the re-run only finishes the shred."""
    from callvault.services.legacy_import.journal import (
        VERIFIED,
        Entry,
        Journal,
        journal_path,
        journal_secret,
        keyed,
        read_state,
    )

    vault = cli_vault()
    allow(vault)
    src = tmp_path / "archive"
    good = good_tree(src, 2)
    args = [str(src), "--preset", "1177", "--unit-map", f"{UNIT_FOLDER}={UNIT}"]
    assert run_import(vault, *args, "--shred-originals").returncode == 0
    # Put back a half-shredded original and the journal as the crash left them.
    victim = good[0]
    victim.write_bytes(os.urandom(4000))
    opened = open_vault(Settings.from_env(vault.env))
    try:
        secret = journal_secret(opened.keys.index_key())
    finally:
        opened.close()
    path = journal_path(vault.home, secret, str(src.resolve()))
    key = keyed(secret, "path", victim.relative_to(src).as_posix())
    done = read_state(path)[key]
    with Journal(path) as journal:
        journal.append(
            Entry(key, VERIFIED, done.outcome, size=done.size, recording_id=done.recording_id)
        )
    again = run_import(vault, *args, "--shred-originals", "--json")
    report = json.loads(again.stdout)
    assert again.returncode == 0, again.stdout
    assert report["outcomes"] == {"imported": 2} and report["originals"] == {"shredded": 2}
    assert not victim.exists()
    assert len(recordings(vault)) == 2
