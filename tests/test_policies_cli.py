"""The lifecycle commands end to end: policies, ingest refusal, erasure plan, sweep (R19-R21)."""

from __future__ import annotations

from pathlib import Path

from callvault.testing.audio import make_tone_wav
from callvault.testing.lifecycle import LEGAL_BASIS, PURPOSE
from callvault.testing.scan import find_leaks, identifier_forms

STARTED = "2019-02-18T10:22:00+01:00"


def test_cli_refuses_ingest_without_policy_then_plans_erasure_and_sweeps(
    cli_vault, tmp_path: Path
) -> None:
    vault = cli_vault()
    wav = make_tone_wav(tmp_path / "call.wav", 0.3)
    args = ["--started-at", STARTED, "--caller", "070-174 06 06", "--retention-class", "quality"]

    refused = vault.run("ingest", str(wav), "--care-unit", "1177-sthlm", *args, check=False)
    assert refused.returncode == 4
    assert "no active recording policy for care unit 1177-sthlm" in refused.stderr
    assert "[no_recording_policy]" in refused.stderr

    bad = vault.run(
        "policies", "set", "--care-unit", "1177-sthlm", "--class", "record",
        "--keep-days", "30", "--purpose", PURPOSE, "--legal-basis", LEGAL_BASIS, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "at least ten years" in bad.stderr
    vault.run(
        "policies", "set", "--care-unit", "1177-sthlm", "--class", "quality",
        "--keep-days", "30", "--purpose", PURPOSE, "--legal-basis", LEGAL_BASIS,
    )  # fmt: skip
    listed = vault.run("policies", "list").stdout
    assert "1177-sthlm/quality: active, keep 30 days, not a record document" in listed
    assert "1177-sthlm/record: active, keep 3653 days, record document" in listed

    stored = vault.run("ingest", str(wav), "--care-unit", "1177-sthlm", *args).stdout
    recording_id = stored.split()[0]
    plan = vault.run("erasure", "plan", "--caller", "0701740606", "--reason", "Art 17 req").stdout
    assert f"{recording_id}" in plan and "may be erased now" in plan
    assert "1 matching, 0 erased, 0 kept" in plan

    # The call is from 2019 and quality calls are kept 30 days: due today.
    assert "due: quality 1" in vault.run("retention", "sweep", "--dry-run").stdout
    swept = vault.run("retention", "sweep").stdout
    assert "shredded: quality 1" in swept and "2019-02/quality v1" in swept
    assert "no active recording policy" not in swept
    assert vault.run("audit", "verify").returncode == 0
    assert find_leaks([vault.home, vault.tmpdir], identifier_forms("+46701740606")) == []
