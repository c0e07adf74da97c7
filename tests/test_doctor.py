"""`callvault doctor`: each check fails on the fault it is for, and a vault set up
like `make run` (plus a recorded backup) passes them all (R25, R3, R4, R5, R7, R14, R24)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from contextlib import nullcontext
from pathlib import Path

import pytest

from callvault.adapters.audio import analyse
from callvault.adapters.audio.magic import sniff
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.adapters.tls import ensure_self_signed
from callvault.config import Settings
from callvault.core.access import Principal
from callvault.core.ports import SystemClock
from callvault.services import accounts
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.services.exposure import doctor, doctor_files
from callvault.services.exposure.deployment import Deployment
from callvault.testing.audio import make_tone_wav
from callvault.testing.http import cheap_password_hashing, enrolled_account

ROOT = Path(__file__).resolve().parents[1]
OPERATOR = Principal("tester", "operator")
NOW = dt.datetime.now(dt.UTC)


def write_marker(home: Path, when: dt.datetime) -> None:
    (home / "last-backup").write_text(when.strftime("%Y-%m-%dT%H:%M:%SZ") + "\n")


# --- an in-process vault for the service-level checks ------------------------------------


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "home"
    for sub in ("data", "keys"):
        (home / sub).mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    return home


@pytest.fixture
def vault(home):
    keys = KeyfileProvider.create(
        home / "keys" / "callvault.key", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    opened = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{home / 'data' / 'vault.db'}"),
        blobs=open_blobstore((home / "data" / "blobs").as_uri()),
        keys=keys,
        clock=SystemClock(),
        probe=analyse,
        origin=vault_service.origin_for(str(uuid.uuid4())),
    )
    vault_service.initialise(opened, OPERATOR)
    ensure_self_signed(home / "tls")
    write_marker(home, NOW)
    yield opened
    opened.close()


def deployment(home: Path, **env: str) -> Deployment:
    settings = Settings.from_env({"CALLVAULT_HOME": str(home), **env}, cwd=home)
    return Deployment.from_settings(settings)


def run(home: Path, vault: Vault, **env: str) -> dict[str, dict]:
    report = doctor.run(deployment(home, **env), lambda: nullcontext(vault), OPERATOR, sniff, NOW)
    return {r.target: r.as_dict() for r in report.results} | {"exit": report.exit_code}


def codes(result: dict) -> set[str]:
    return {f["code"] for f in result["findings"]}


def test_in_process_vault_passes_every_check(home, vault):
    results = run(home, vault)
    assert results.pop("exit") == 0
    assert all(r["findings"] == [] and r["complete"] for r in results.values()), results


def test_plaintext_audio_in_or_near_the_data_directory_is_found(home, vault):
    make_tone_wav(home / "data" / "upload-1.tmp", 0.2)
    make_tone_wav(home / "import-me.wav", 0.2)
    result = run(home, vault)["plaintext audio in or near the data directory"]
    found = result["findings"][0]
    assert found["code"] == "plaintext-audio"
    assert found["count"] == 2


def test_key_file_readable_by_others_or_inside_the_data_is_found(home, vault):
    key = home / "keys" / "callvault.key"
    key.chmod(0o644)
    (home / "keys").chmod(0o777)
    result = doctor_files.check_key_file(deployment(home))
    assert codes(result.as_dict()) == {"key-file-readable", "key-folder-writable"}
    inside = home / "data" / "callvault.key"
    shutil.copyfile(key, inside)
    inside.chmod(0o600)
    result = doctor_files.check_key_file(deployment(home, CALLVAULT_KEYS_URL=f"keyfile://{inside}"))
    assert codes(result.as_dict()) == {"key-file-with-data"}
    result = doctor_files.check_key_file(
        deployment(home, CALLVAULT_KEYS_URL=f"keyfile://{home / 'nowhere.key'}")
    )
    assert codes(result.as_dict()) == {"key-file-missing"}


def test_passphrase_file_readable_by_others_is_found(home, vault):
    secret = home / "keys" / "passphrase"
    secret.write_text("x\n")
    secret.chmod(0o644)
    result = doctor_files.check_key_file(deployment(home, CALLVAULT_PASSPHRASE_FILE=str(secret)))
    assert codes(result.as_dict()) == {"passphrase-readable"}


def test_tls_expired_expiring_missing_and_private_key_mode_are_found(home, vault):
    d = deployment(home)
    assert doctor_files.check_tls(d, NOW).findings == []
    expiring = doctor_files.check_tls(d, NOW + dt.timedelta(days=350))
    assert codes(expiring.as_dict()) == {"tls-cert-expiring"}
    expired = doctor_files.check_tls(d, NOW + dt.timedelta(days=400))
    assert codes(expired.as_dict()) == {"tls-cert-expired"}
    (home / "tls" / "key.pem").chmod(0o644)
    assert codes(doctor_files.check_tls(d, NOW).as_dict()) == {"tls-key-readable"}
    (home / "tls" / "cert.pem").unlink()
    assert codes(doctor_files.check_tls(d, NOW).as_dict()) == {"tls-cert-missing"}


def test_account_that_signs_in_without_a_second_factor_is_found(home, vault):
    with cheap_password_hashing():
        enrolled_account(vault, "ok.admin", role="administrator")
        half = accounts.create_user(vault, OPERATOR, "no.totp", "log_reviewer", ())
        accounts.create_user(vault, OPERATOR, "not.yet", "log_reviewer", ())
    with vault.store.transaction() as tx:
        row = tx.accounts.user_by_name(half.username)
        assert row is not None
        tx.accounts.set_password_hash(row.id, "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA")
    result = run(home, vault)["second factor on every account"]
    assert [f["examples"] for f in result["findings"]] == [["no.totp"]]
    assert result["stats"]["active_accounts"] == 2
    assert any("not enrolled" in n for n in result["notes"])


def test_tampered_audit_log_and_missing_checkpoint_are_found(home, vault):
    db = sqlite3.connect(home / "data" / "vault.db")
    with db:
        db.execute("DELETE FROM audit_entries WHERE seq = (SELECT MIN(seq) FROM audit_entries)")
    result = run(home, vault)["audit log and checkpoints"]
    assert "audit-log-invalid" in codes(result)
    with db:
        db.execute("DELETE FROM audit_checkpoints")
    result = run(home, vault)["audit log and checkpoints"]
    assert "audit-no-checkpoint" in codes(result)
    db.close()


@pytest.mark.parametrize(
    ("marker", "code"),
    [
        (None, "backups-not-recorded"),
        ("yesterday\n", "backups-marker-malformed"),
        ((NOW - dt.timedelta(days=9)).strftime("%Y-%m-%dT%H:%M:%SZ"), "backups-stale"),
    ],
)
def test_missing_malformed_or_stale_backup_marker_is_found(home, vault, marker, code):
    path = home / "last-backup"
    path.unlink()
    if marker is not None:
        path.write_text(marker)
    assert codes(doctor_files.check_backups(deployment(home), NOW).as_dict()) == {code}


def test_a_vault_that_cannot_be_opened_leaves_its_checks_incomplete(home, vault):
    from callvault.core.errors import WrongPassphrase

    def refuse():
        raise WrongPassphrase()

    report = doctor.run(deployment(home), refuse, OPERATOR, sniff, NOW)
    assert report.exit_code == 2
    incomplete = [r.target for r in report.results if r.error]
    assert incomplete == ["second factor on every account", "audit log and checkpoints"]


# --- the real command on a `make run`-like vault ------------------------------------------


def callvault(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callvault", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_run_like_vault_is_clean_and_each_fault_sets_the_exit_code(cli_vault):
    vault = cli_vault()
    sample = ROOT / "samples" / "call-002-pcm.wav"
    done = callvault(
        vault.env,
        "ingest",
        str(sample),
        "--care-unit",
        "1177-sthlm",
        "--started-at",
        "2019-02-18T11:05:00+01:00",
        "--agent",
        "nurse04",
        "--call-id",
        "demo-0002",
        "--caller",
        "+46 70 174 06 06",
    )
    assert done.returncode == 0, done.stderr
    write_marker(vault.home, NOW)

    clean = callvault(vault.env, "doctor")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.strip().endswith("result: clean (0 findings)")

    stray = vault.home / "data" / "0701740606.wav"
    shutil.copyfile(sample, stray)
    stray.chmod(0o600)
    faulty = callvault(vault.env, "doctor", "--json")
    assert faulty.returncode == 1, faulty.stderr
    report = json.loads(faulty.stdout)
    found = {f["code"]: f for c in report["checks"] for f in c["findings"]}
    assert set(found) == {"plaintext-audio"}
    assert "0701740606" not in faulty.stdout
    assert found["plaintext-audio"]["examples"][0].endswith("+4670*****06.wav")
    stray.unlink()

    wrong = callvault(
        {**vault.env, "CALLVAULT_PASSPHRASE_FILE": str(vault.home / "none")}, "doctor"
    )
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "could not open the vault" in wrong.stdout

    # A key file others can read stops the vault from opening; doctor still names it.
    os.chmod(vault.home / "keys" / "callvault.key", 0o644)
    exposed_key = callvault(vault.env, "doctor", "--json")
    assert exposed_key.returncode == 1
    checks = {c["target"]: c for c in json.loads(exposed_key.stdout)["checks"]}
    assert [f["code"] for f in checks["key file"]["findings"]] == ["key-file-readable"]
    assert checks["audit log and checkpoints"]["complete"] is False
