"""Settings: one typed object from the environment, every setting documented, typos refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.bootstrap import keyfile_path, open_keys
from callvault.config import SETTINGS, Settings
from callvault.core.errors import ConfigError, InsecureKeyFile

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DOC = ROOT / "docs" / "configuration.md"
NAME_RE = re.compile(r"\bCALLVAULT_[A-Z0-9_]*[A-Z0-9]\b")


def table_rows() -> set[str]:
    """Setting names that have a row of their own in the configuration table."""
    rows = re.findall(r"^\| `(CALLVAULT_[A-Z0-9_]+)` \|", CONFIG_DOC.read_text(), re.MULTILINE)
    assert len(rows) == len(set(rows)), "a setting has two rows"
    return set(rows)


def test_every_setting_has_a_row_in_the_configuration_table() -> None:
    assert set(SETTINGS) - table_rows() == set()


def test_every_setting_named_in_the_docs_exists() -> None:
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {(path.name, name) for path in texts for name in NAME_RE.findall(path.read_text())}
    assert {(doc, name) for doc, name in named if name not in SETTINGS} == set()
    assert table_rows() <= set(SETTINGS)


@pytest.mark.parametrize(
    "name", ["CALLVAULT_PASSPHRASE_FIEL", "CALLVAULT_KEY_URL", "CALLVAULT_home", "CALLVAULT_"]
)
def test_unknown_callvault_variable_is_refused_naming_it_but_not_its_value(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: "s3cr3t-value"}, cwd=Path("/srv"))
    assert name in caught.value.message and "s3cr3t-value" not in caught.value.message


def test_unknown_variable_stops_the_command_before_it_does_anything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env.update(CALLVAULT_HOME=str(tmp_path / "home"), CALLVAULT_PASSPHRASE_FIEL="x")
    proc = subprocess.run(
        [sys.executable, "-m", "callvault", "init"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 11
    assert "unknown setting CALLVAULT_PASSPHRASE_FIEL" in proc.stderr
    assert not (tmp_path / "home").exists()


def test_other_variables_are_ignored() -> None:
    settings = Settings.from_env({"PATH": "/bin", "callvault_home": "x"}, cwd=Path("/srv"))
    assert settings.home == Path("/srv/var")


def test_relative_home_is_resolved_against_the_working_directory(tmp_path: Path) -> None:
    settings = Settings.from_env({"CALLVAULT_HOME": "site/../vaults/a"}, cwd=tmp_path)
    home = tmp_path.resolve() / "vaults" / "a"
    assert settings.home == home
    assert settings.data_dir == home / "data"
    assert settings.database_url == f"sqlite:///{home}/data/vault.db"
    assert settings.blobstore_url == (home / "data" / "blobs").as_uri()
    assert keyfile_path(settings) == home / "keys" / "callvault.key"


def test_default_home_is_var_under_the_working_directory(tmp_path: Path) -> None:
    assert Settings.from_env({}, cwd=tmp_path).home == tmp_path.resolve() / "var"


def test_command_resolves_a_relative_home_against_its_own_working_directory(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env["CALLVAULT_HOME"] = "rel-home"
    proc = subprocess.run(
        [sys.executable, "-m", "callvault", "keys", "status"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 11, proc.stderr
    assert f"no key file at {tmp_path.resolve()}/rel-home/keys/callvault.key" in proc.stderr


@pytest.mark.parametrize("home", [None, "/srv/callvault"])
def test_default_key_file_lies_outside_the_data_directory(home: str | None) -> None:
    env = {"CALLVAULT_HOME": home} if home else {}
    settings = Settings.from_env(env, cwd=Path("/opt/app"))
    key_file = keyfile_path(settings)
    # Backing up or copying the data directory must never carry the key file with it.
    assert not key_file.is_relative_to(settings.data_dir)
    assert key_file.parent == settings.home / "keys"


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "4GB", "0x10", "4 GiB"])
def test_bad_max_ingest_bytes_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CALLVAULT_MAX_INGEST_BYTES": value}, cwd=Path("/srv"))
    assert "CALLVAULT_MAX_INGEST_BYTES" in caught.value.message


def test_max_ingest_bytes_defaults_to_4_gib_and_accepts_a_byte_count() -> None:
    assert Settings.from_env({}, cwd=Path("/srv")).max_ingest_bytes == 4 * 1024**3
    settings = Settings.from_env({"CALLVAULT_MAX_INGEST_BYTES": "1048576"}, cwd=Path("/srv"))
    assert settings.max_ingest_bytes == 1048576


def test_only_callvault_variables_reach_the_key_provider() -> None:
    settings = Settings.from_env(
        {"CALLVAULT_PASSPHRASE": "p", "HOME": "/root", "AWS_SECRET_ACCESS_KEY": "x"},
        cwd=Path("/srv"),
    )
    assert dict(settings.env) == {"CALLVAULT_PASSPHRASE": "p"}


def _secret(path: Path, value: str, mode: int) -> Path:
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_pin_file_readable_by_anyone_but_its_owner_is_refused(tmp_path: Path, mode: int) -> None:
    pin = _secret(tmp_path / "pin", "123456", mode)
    settings = Settings.from_env(
        {
            "CALLVAULT_HOME": str(tmp_path),
            "CALLVAULT_KEYS_URL": "pkcs11:token=t;module-path=/nonexistent/libpkcs11.so",
            "CALLVAULT_PKCS11_PIN_FILE": str(pin),
        }
    )
    # Refused before the module is even loaded.
    with pytest.raises(InsecureKeyFile):
        open_keys(settings, None)


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_passphrase_file_readable_by_anyone_but_its_owner_is_refused(
    tmp_path: Path, mode: int
) -> None:
    settings = Settings.from_env(
        {
            "CALLVAULT_HOME": str(tmp_path / "home"),
            "CALLVAULT_PASSPHRASE_FILE": str(_secret(tmp_path / "pass", "pw", mode)),
        }
    )
    key_file = keyfile_path(settings)
    key_file.parent.mkdir(mode=0o700, parents=True)
    KeyfileProvider.create(key_file, b"pw", kdf_params=KdfParams(1, 1024, 1))
    with pytest.raises(InsecureKeyFile):
        open_keys(settings, None)


@pytest.mark.parametrize(
    "url", ["keyfile://relative/callvault.key", "keyfile:callvault.key", "vault://kv/callvault"]
)
def test_keys_url_that_is_not_an_absolute_key_file_or_pkcs11_is_refused(url: str) -> None:
    settings = Settings.from_env(
        {"CALLVAULT_KEYS_URL": url, "CALLVAULT_PASSPHRASE": "pw"}, cwd=Path("/srv")
    )
    with pytest.raises(ConfigError):
        open_keys(settings, None)
