"""The privacy officer's commands through the real ``callvault`` (R18, R21, R22, R17, R3).

One vault, one tour: extract and verify offline (and a tampered copy
failing), export and open without the age tool, a breach report and a
review run; nothing written holds the caller's number.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from callvault.testing.audio import make_tone_wav
from callvault.testing.lifecycle import policy_cli_args
from callvault.testing.scan import find_leaks, identifier_forms

PHONE = "+46701740605"


def test_privacy_tour_through_the_command_line(cli_vault, tmp_path: Path):
    vault = cli_vault()
    vault.run(*policy_cli_args(["unit-a"]))
    wav = tmp_path / "call.wav"
    make_tone_wav(wav, 1.0)
    vault.run(
        "ingest", str(wav), "--caller", "070-174 06 05", "--care-unit", "unit-a",
        "--started-at", "2026-03-01T10:22:00+01:00",
    )  # fmt: skip
    vault.run("search", "--caller", "070-174", "06", "05")

    out = tmp_path / "extract"
    shown = vault.run("privacy", "extract", "--caller", PHONE, "--out", str(out), "--lang", "en")
    key = shown.stdout.split("verifier key: ")[1].strip()
    doc = json.loads((tmp_path / "extract.json").read_text())
    assert {e["how"] for e in doc["entries"]} >= {"ingest", "search_hit"}
    assert (tmp_path / "extract.pdf").read_bytes().startswith(b"%PDF-")
    ok = vault.run("audit", "verify-extract", str(tmp_path / "extract.json"), "--key", key)
    assert ok.stdout.strip().endswith("OK")
    doc["entries"][0]["care_unit"] = "unit-z"
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    bad = vault.run(
        "audit", "verify-extract", str(tmp_path / "bad.json"), "--key", key, check=False
    )
    assert bad.returncode == 1 and "summary's care_unit differs" in bad.stdout

    archive = tmp_path / "copy.zip.age"
    done = vault.run("privacy", "export", "--caller", PHONE, "--out", str(archive))
    passphrase = done.stdout.split("another channel): ")[1].split()[0]
    opener = subprocess.run(
        [sys.executable, "-m", "callvault", "privacy", "export-open", str(archive),
         "--out", str(tmp_path / "copy.zip")],
        env=vault.env, input=passphrase + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert opener.returncode == 0, opener.stderr
    assert "manifest.json" in zipfile.ZipFile(tmp_path / "copy.zip").namelist()

    report = vault.run("privacy", "breach", "--from", "2000-01-01T00:00:00+00:00")
    assert "1 recordings, 1 distinct callers" in report.stdout
    run = vault.run("review", "run", "--period", "2026-03", "--sample", "0")
    assert "accesses examined" in run.stdout
    assert vault.run("review", "report", "--period", "2026-03").returncode == 0

    refused = vault.run("privacy", "extract", "--caller", "070-999 99 99", "--out",
                        str(tmp_path / "none"), check=False)  # fmt: skip
    assert refused.returncode == 3 and "999" not in refused.stderr
    needles = identifier_forms(PHONE, None)
    written = [vault.home, vault.tmpdir, tmp_path / "extract.json", tmp_path / "extract.pdf"]
    assert find_leaks(written, needles) == []
