"""The key hierarchy end to end through the real ``callvault`` command.

A vault whose root keys sit on a SoftHSM2 token, and the embedded key-file
vault: rotation re-wraps keys and retires old roots without touching a byte
of stored audio; a wrong passphrase, an exposed key file or a second ``init``
are refused and change nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callvault.adapters.keys.keyfile import DEFAULT_KDF, KdfParams, KeyfileProvider
from callvault.testing.audio import make_tone_wav
from callvault.testing.lifecycle import policy_cli_args
from callvault.testing.scan import find_leaks, identifier_forms
from callvault.testing.softhsm import softhsm_token

PASSPHRASE = "correct horse battery staple"
PHONE = "+46701740607"
PNR = "19121212-1212"
ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Cli:
    """One vault driven by ``python -m callvault`` in subprocesses."""

    home: Path
    tmpdir: Path
    env: dict[str, str]
    recordings: dict[str, Path] = field(default_factory=dict)  # id -> source file

    def run(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "callvault", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"callvault {' '.join(args)} failed: {proc.stderr}")
        return proc

    def ingest(self, wav: Path, started_at: str, *extra: str) -> str:
        out = self.run(
            "ingest", str(wav), "--care-unit", "1177-sthlm", "--started-at", started_at, *extra
        ).stdout
        match = ID_RE.search(out)
        assert match and "stored" in out, out
        self.recordings[match.group(0)] = wav
        return match.group(0)

    def export(self, recording_id: str, out: Path) -> bytes:
        self.run("export", recording_id, "-o", str(out), "--reason", "key rotation check")
        return out.read_bytes()

    def objects(self) -> dict[str, bytes]:
        return snapshot(self.home / "data" / "blobs" / "objects")


def base_env(home: Path, tmpdir: Path) -> dict[str, str]:
    tmpdir.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CALLVAULT_") and k != "SOFTHSM2_CONF"
    }
    env.update(CALLVAULT_HOME=str(home), TMPDIR=str(tmpdir), PYTHONDONTWRITEBYTECODE="1")
    return env


def secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> content)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@dataclass(frozen=True)
class KeyStatus:
    current: int
    held: list[int]
    buckets: dict[str, tuple[int, int, int]]  # bucket -> (version, root version, recordings)
    last_rotation: str  # ISO time, or "never"


def key_status(cli: Cli) -> KeyStatus:
    lines = cli.run("keys", "status").stdout.splitlines()
    head = re.fullmatch(r"root KEK: current version (\d+); held: ([\d, ]+)", lines[0])
    assert head, lines[0]
    rotated = re.fullmatch(r"last rotation: (never|\S+)", lines[1])
    assert rotated, lines[1]
    buckets = {}
    for line in lines[3:]:
        name, version, root, count = line.split()
        buckets[name] = (int(version), int(root), int(count))
    held = [int(v) for v in head[2].split(", ")]
    return KeyStatus(int(head[1]), held, buckets, rotated[1])


def tone(directory: Path, name: str, frequency: float) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return make_tone_wav(directory / name, 3.0, frequency=frequency)


# --- PKCS#11 -------------------------------------------------------------------


@pytest.fixture
def hsm_vault(tmp_path: Path) -> Iterator[Cli]:
    """An uninitialised vault whose root keys live on a fresh SoftHSM2 token."""
    with softhsm_token(tmp_path, label="callvault-cli") as token:
        env = base_env(tmp_path / "vault-home", tmp_path / "vault-tmp")
        env.update(
            CALLVAULT_KEYS_URL=f"pkcs11:token={token.label};module-path={token.module_path}",
            CALLVAULT_PKCS11_PIN_FILE=str(secret_file(tmp_path / "pin", token.user_pin)),
            SOFTHSM2_CONF=str(token.conf_path),
        )
        yield Cli(tmp_path / "vault-home", tmp_path / "vault-tmp", env)


def test_vault_with_root_keys_on_a_pkcs11_token_round_trips_rotates_and_verifies(
    hsm_vault: Cli, tmp_path: Path
) -> None:
    cli = hsm_vault
    assert "pkcs11:token=callvault-cli" in cli.run("init").stdout
    assert not (cli.home / "keys").exists()  # nothing key-like on the host's disk
    cli.run(*policy_cli_args(["1177-sthlm"]))

    wav = tone(tmp_path / "in", "call.wav", 440.0)
    recording_id = cli.ingest(
        wav, "2019-02-18T10:22:00+01:00", "--caller", "070-174 06 07", "--personnummer", PNR
    )
    assert recording_id in cli.run("search", "--caller", "0701740607").stdout
    assert cli.export(recording_id, tmp_path / "before.wav") == wav.read_bytes()
    objects = cli.objects()

    rotated = cli.run("keys", "rotate").stdout
    assert "root KEK now version 2" in rotated and "root versions retired: 1" in rotated
    status = key_status(cli)
    assert (status.current, status.held) == (2, [2])
    assert status.buckets == {"2019-02/record": (2, 2, 1)}

    assert cli.export(recording_id, tmp_path / "after.wav") == wav.read_bytes()
    assert cli.objects() == objects
    assert cli.run("verify").stdout.splitlines()[-1] == "OK"
    assert find_leaks([cli.home, cli.tmpdir], identifier_forms(PHONE, PNR)) == []


def test_wrong_pkcs11_pin_is_refused_with_exit_code_6_and_changes_nothing(
    hsm_vault: Cli, tmp_path: Path
) -> None:
    cli = hsm_vault
    cli.run("init")
    before = snapshot(cli.home)
    wrong = secret_file(tmp_path / "wrong-pin", "000000")
    proc = cli.run("keys", "rotate", check=False, CALLVAULT_PKCS11_PIN_FILE=str(wrong))
    assert proc.returncode == 6, proc.stderr
    assert "refused the PIN" in proc.stderr and "000000" not in proc.stderr
    assert snapshot(cli.home) == before
    assert key_status(cli).held == [1]


# --- key file ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A key-file vault made by ``init`` holding two recordings in two buckets.

    Tests work on copies (see ``keyfile_vault``), so each starts from this state.
    """
    root = tmp_path_factory.mktemp("keyfile")
    env = base_env(root / "vault-home", root / "vault-tmp")
    env["CALLVAULT_PASSPHRASE_FILE"] = str(secret_file(root / "passphrase", PASSPHRASE))
    cli = Cli(root / "vault-home", root / "vault-tmp", env)
    cli.run("init")
    cheapen_key_file(cli.home / "keys" / "callvault.key")
    cli.run(*policy_cli_args(["1177-sthlm"]))
    cli.run(*policy_cli_args(["1177-sthlm"], "quality"))
    cli.ingest(tone(root / "in", "a.wav", 440.0), "2019-02-18T10:22:00+01:00")
    cli.ingest(
        tone(root / "in", "b.wav", 523.0),
        "2019-03-04T08:00:00+01:00",
        "--retention-class",
        "quality",
    )
    return cli


def cheapen_key_file(path: Path) -> None:
    """Reseal the key file ``init`` wrote at the lowest Argon2 cost.

    ``init`` uses the production cost (checked here); every later command
    then derives the sealing key in milliseconds instead of most of a second.
    """
    provider = KeyfileProvider.open(path, PASSPHRASE.encode())
    assert provider.kdf_params == DEFAULT_KDF
    provider.change_passphrase(PASSPHRASE.encode(), kdf_params=KdfParams(1, 1024, 1))


def copy_of(vault: Cli, target: Path) -> Cli:
    shutil.copytree(vault.home, target / "vault-home", symlinks=True)
    env = base_env(target / "vault-home", target / "vault-tmp")
    env["CALLVAULT_PASSPHRASE_FILE"] = vault.env["CALLVAULT_PASSPHRASE_FILE"]
    return Cli(target / "vault-home", target / "vault-tmp", env, dict(vault.recordings))


@pytest.fixture
def keyfile_vault(pristine: Cli, tmp_path: Path) -> Cli:
    return copy_of(pristine, tmp_path)


@dataclass
class Rotated:
    cli: Cli
    status_before: KeyStatus
    objects_before: dict[str, bytes]
    key_file_before: bytes


@pytest.fixture(scope="module")
def rotated(pristine: Cli, tmp_path_factory: pytest.TempPathFactory) -> Rotated:
    """A copy of the pristine vault after ``keys rotate`` twice."""
    cli = copy_of(pristine, tmp_path_factory.mktemp("rotated"))
    before = key_status(cli)
    objects = cli.objects()
    key_file = (cli.home / "keys" / "callvault.key").read_bytes()
    for _ in range(2):
        cli.run("keys", "rotate")
    return Rotated(cli, before, objects, key_file)


def test_rotating_twice_moves_every_bucket_to_the_newest_root_and_retires_the_old(
    rotated: Rotated,
) -> None:
    before = rotated.status_before
    assert (before.current, before.held, before.last_rotation) == (1, [1], "never")
    assert before.buckets == {"2019-02/record": (1, 1, 1), "2019-03/quality": (1, 1, 1)}
    after = key_status(rotated.cli)
    assert (after.current, after.held) == (3, [3])
    assert after.last_rotation != "never"
    assert after.buckets == {"2019-02/record": (3, 3, 1), "2019-03/quality": (3, 3, 1)}
    key_file = (rotated.cli.home / "keys" / "callvault.key").read_bytes()
    assert key_file != rotated.key_file_before  # resealed with the new and without old roots


def test_rotation_never_rewrites_an_encrypted_object(rotated: Rotated) -> None:
    objects = rotated.cli.objects()
    assert len(objects) == 2
    assert objects == rotated.objects_before


def test_audio_exported_after_rotation_is_identical_and_verify_is_ok(
    rotated: Rotated, tmp_path: Path
) -> None:
    cli = rotated.cli
    for n, (recording_id, source) in enumerate(cli.recordings.items()):
        exported = cli.export(recording_id, tmp_path / f"out-{n}.wav")
        assert hashlib.sha256(exported).digest() == hashlib.sha256(source.read_bytes()).digest()
    assert cli.run("verify").stdout.splitlines()[-1] == "OK"
    assert cli.run("audit", "tail", "-n", "30").stdout.count("key:rotate") == 2


def test_wrong_passphrase_is_refused_with_exit_code_6_and_changes_nothing(
    keyfile_vault: Cli, tmp_path: Path
) -> None:
    cli = keyfile_vault
    before = snapshot(cli.home)
    wrong = secret_file(tmp_path / "wrong", "incorrect horse")
    for args in (
        ("keys", "rotate"),
        ("export", next(iter(cli.recordings)), "-o", str(tmp_path / "x.wav"), "--reason", "r"),
    ):
        proc = cli.run(*args, check=False, CALLVAULT_PASSPHRASE_FILE=str(wrong))
        assert proc.returncode == 6, proc.stderr
        assert "the passphrase does not open the key file [wrong_passphrase]" in proc.stderr
        assert "incorrect horse" not in proc.stderr + proc.stdout
    assert not (tmp_path / "x.wav").exists()
    assert snapshot(cli.home) == before


@pytest.mark.parametrize("which", ["key file", "passphrase file"])
def test_group_readable_key_or_passphrase_file_is_refused(
    keyfile_vault: Cli, tmp_path: Path, which: str
) -> None:
    cli = keyfile_vault
    if which == "key file":
        exposed = cli.home / "keys" / "callvault.key"
    else:
        exposed = secret_file(tmp_path / "passphrase", PASSPHRASE)
        cli.env["CALLVAULT_PASSPHRASE_FILE"] = str(exposed)
    exposed.chmod(0o640)
    before = snapshot(cli.home)
    proc = cli.run("keys", "rotate", check=False)
    assert proc.returncode == 6, proc.stderr
    assert "[insecure_key_file]" in proc.stderr and "chmod 600" in proc.stderr
    assert snapshot(cli.home) == before
    exposed.chmod(0o600)
    assert key_status(cli).current == 1  # the same files open once made private


def test_init_twice_refuses_to_overwrite_the_key_file(keyfile_vault: Cli) -> None:
    cli = keyfile_vault
    before = snapshot(cli.home)
    proc = cli.run("init", check=False)
    assert proc.returncode == 11, proc.stderr
    assert "refusing to overwrite" in proc.stderr
    assert snapshot(cli.home) == before


def test_init_over_a_restored_database_without_its_key_file_writes_no_key_file(
    keyfile_vault: Cli,
) -> None:
    # A data directory restored without its key file: a fresh key file would
    # open but decrypt nothing, and would hide that the real one is missing.
    cli = keyfile_vault
    (cli.home / "keys" / "callvault.key").unlink()
    proc = cli.run("init", check=False)
    assert proc.returncode != 0
    assert not (cli.home / "keys" / "callvault.key").exists()
