"""Settings by URL: the real ``callvault`` command on PostgreSQL + S3, and every typo (R27, R28).

A misconfiguration is one line naming the setting, never a traceback and
never a secret, and it leaves nothing behind: no key file that a corrected
``init`` would then refuse to overwrite.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from callvault.adapters.audio import starts_with_plaintext_audio
from callvault.adapters.blobstore.s3_url import credentials, parse_s3_url
from callvault.bootstrap import run_cli
from callvault.core.errors import ConfigError
from callvault.testing.audio import make_speech_wav
from callvault.testing.lifecycle import policy_cli_args
from callvault.testing.postgres import throwaway_database
from callvault.testing.scan import find_leaks, identifier_forms
from callvault.testing.seaweedfs import SeaweedFS

PHONE = "+46701740605"
PNR = "19121212-1212"
ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")
WRONG_SECRET = "wrong-secret-Zq81xR"
DB_PASSWORD = "hunter2-db-secret"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cli:
    def __init__(self, tmp_path: Path, settings: dict[str, str]) -> None:
        self.home = tmp_path / "home"
        passphrase = tmp_path / "passphrase"
        passphrase.write_text("correct horse battery staple\n")
        passphrase.chmod(0o600)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
        self.env.update(
            CALLVAULT_HOME=str(self.home),
            CALLVAULT_PASSPHRASE_FILE=str(passphrase),
            PYTHONDONTWRITEBYTECODE="1",
            **settings,
        )

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "callvault", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"callvault {args[0]} failed ({proc.returncode}): {proc.stderr}")
        return proc


@pytest.fixture
def database_url() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.fixture
def secret_file(tmp_path: Path, seaweedfs: SeaweedFS) -> Path:
    path = tmp_path / "s3-secret"
    path.write_text(seaweedfs.secret_key + "\n")
    path.chmod(0o600)
    return path


def test_init_ingest_export_verify_on_postgresql_and_s3(
    tmp_path: Path, seaweedfs: SeaweedFS, database_url: str, secret_file: Path
) -> None:
    """The whole CLI path with both backends remote; the bucket holds only ciphertext."""
    bucket = seaweedfs.make_bucket(versioning=True)
    cli = Cli(
        tmp_path,
        {
            "CALLVAULT_DATABASE_URL": database_url,
            "CALLVAULT_BLOBSTORE_URL": seaweedfs.blobstore_url(bucket, prefix="vault1"),
            "CALLVAULT_S3_ACCESS_KEY_ID": seaweedfs.access_key,
            "CALLVAULT_S3_SECRET_ACCESS_KEY_FILE": str(secret_file),
        },
    )
    call = tmp_path / "in" / "2019-02-18_0701740605.wav"
    call.parent.mkdir()
    make_speech_wav(call, "Hej, min dotter har feber sedan tre dagar.", voice="sv")
    cli.run("init")
    cli.run(*policy_cli_args(["1177-sthlm"]))
    out = cli.run(
        "ingest", str(call), "--caller", "070-174 06 05", "--personnummer", PNR,
        "--care-unit", "1177-sthlm", "--started-at", "2019-02-18T10:22:00+01:00",
    ).stdout  # fmt: skip
    recording_id = ID_RE.search(out)
    assert recording_id, out
    exported = tmp_path / "out.wav"
    cli.run("export", recording_id.group(0), "-o", str(exported), "--reason", "complaint 12")
    assert exported.read_bytes() == call.read_bytes()
    assert "OK" in cli.run("verify").stdout

    listed = seaweedfs.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"].split("/")[0] for o in listed] == ["vault1"]
    stored = seaweedfs.client().get_object(Bucket=bucket, Key=listed[0]["Key"])["Body"].read()
    assert not starts_with_plaintext_audio(stored[:16])
    for needle in identifier_forms(PHONE, PNR):
        assert needle not in stored
    assert not (cli.home / "data" / "blobs").exists()  # nothing fell back to local disk
    assert find_leaks([cli.home], identifier_forms(PHONE, PNR)) == []


# -- every misconfiguration: one clear line, exit code, nothing left behind ----------

CASES = {
    # name: (settings, exit code, expected text)
    "unknown blob scheme": (
        {"CALLVAULT_BLOBSTORE_URL": "s4://{bucket}?endpoint={endpoint}"},
        11,
        "CALLVAULT_BLOBSTORE_URL: unsupported scheme",
    ),
    "missing bucket": (
        {"CALLVAULT_BLOBSTORE_URL": "s3://?endpoint={endpoint}"},
        11,
        "CALLVAULT_BLOBSTORE_URL names no bucket",
    ),
    "bad endpoint scheme": (
        {"CALLVAULT_BLOBSTORE_URL": "s3://{bucket}?endpoint=htp://127.0.0.1:8333"},
        11,
        "CALLVAULT_BLOBSTORE_URL: endpoint must be http(s)://host[:port]",
    ),
    "misspelt option": (
        {"CALLVAULT_BLOBSTORE_URL": "s3://{bucket}?endpiont={endpoint}"},
        11,
        "CALLVAULT_BLOBSTORE_URL: unknown option",
    ),
    "bucket not created": (
        {"CALLVAULT_BLOBSTORE_URL": "s3://cv-never-made?endpoint={endpoint}"},
        11,
        "bucket cv-never-made does not exist",
    ),
    "wrong secret": (
        {
            "CALLVAULT_BLOBSTORE_URL": "s3://{bucket}?endpoint={endpoint}",
            "CALLVAULT_S3_SECRET_ACCESS_KEY": WRONG_SECRET,
        },
        11,
        "refused the credentials",
    ),
    "no credentials": (
        {
            "CALLVAULT_BLOBSTORE_URL": "s3://{bucket}?endpoint={endpoint}",
            "CALLVAULT_S3_ACCESS_KEY_ID": "",
        },
        11,
        "needs CALLVAULT_S3_ACCESS_KEY_ID",
    ),
    "object store not answering": (
        {"CALLVAULT_BLOBSTORE_URL": "s3://{bucket}?endpoint=http://127.0.0.1:{closed}"},
        10,
        "CALLVAULT_BLOBSTORE_URL: the object store at http://127.0.0.1:{closed} is not answering",
    ),
    "database not answering": (
        {
            "CALLVAULT_DATABASE_URL": (
                "postgresql+psycopg://postgres:" + DB_PASSWORD + "@127.0.0.1:{closed}/vault"
            )
        },
        10,
        "CALLVAULT_DATABASE_URL: cannot open the metadata database",
    ),
    "database driver not installed": (
        {"CALLVAULT_DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1/vault"},
        11,
        "CALLVAULT_DATABASE_URL: unsupported database driver",
    ),
    "database scheme misspelt": (
        {"CALLVAULT_DATABASE_URL": "postgres://postgres@127.0.0.1/vault"},
        11,
        "CALLVAULT_DATABASE_URL: unsupported database backend",
    ),
    "keys scheme misspelt": (
        {"CALLVAULT_KEYS_URL": "keyfle:///{home}/keys/callvault.key"},
        11,
        "CALLVAULT_KEYS_URL must start with keyfile: or pkcs11:",
    ),
}


def fill(case: str, seaweedfs: SeaweedFS, home: Path) -> tuple[dict[str, str], int, str]:
    settings, exit_code, expected = CASES[case]
    values = {
        "bucket": seaweedfs.make_bucket() if "{bucket}" in str(settings) else "",
        "endpoint": seaweedfs.endpoint,
        "closed": str(closed_port()),
        "home": str(home),
    }
    env = seaweedfs.credentials_env()
    env.update({k: v.format(**values) for k, v in settings.items()})
    return {k: v for k, v in env.items() if v}, exit_code, expected.format(**values)


def assert_one_clear_line(stderr: str, expected: str, seaweedfs: SeaweedFS) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("callvault: error:"), stderr
    assert expected in lines[0]
    for secret in (WRONG_SECRET, seaweedfs.secret_key, DB_PASSWORD):
        assert secret not in stderr


def assert_no_key_made(home: Path) -> None:
    # No key was made, so fixing the setting and running init again works.
    assert not (home / "keys").exists() or not any((home / "keys").iterdir())


@pytest.mark.parametrize("case", sorted(CASES))
def test_misconfiguration_is_one_clear_line_and_changes_nothing(
    tmp_path: Path,
    seaweedfs: SeaweedFS,
    case: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In process, for speed: any exception but the vault's own would escape run_cli."""
    cli = Cli(tmp_path, {})
    settings, exit_code, expected = fill(case, seaweedfs, cli.home)
    for name in [k for k in os.environ if k.startswith("CALLVAULT_")]:
        monkeypatch.delenv(name)
    for name, value in {**cli.env, **settings}.items():
        if name.startswith("CALLVAULT_"):
            monkeypatch.setenv(name, value)
    umask = os.umask(0o022)
    try:
        assert run_cli(["init"]) == exit_code
    finally:
        os.umask(umask)
    captured = capsys.readouterr()
    assert_one_clear_line(captured.err, expected, seaweedfs)
    assert captured.out == ""
    assert_no_key_made(cli.home)


@pytest.mark.parametrize("case", ["object store not answering", "database not answering"])
def test_misconfigured_command_exits_with_one_line_and_no_traceback(
    tmp_path: Path, seaweedfs: SeaweedFS, case: str
) -> None:
    """The same through the real process: what an operator sees on the terminal."""
    cli = Cli(tmp_path, {})
    settings, exit_code, expected = fill(case, seaweedfs, cli.home)
    cli.env.update(settings)
    proc = cli.run("init", check=False)
    assert proc.returncode == exit_code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert_one_clear_line(proc.stderr, expected, seaweedfs)
    assert_no_key_made(cli.home)


# -- the s3:// URL itself ----------------------------------------------------------------


def test_s3_url_defaults_to_aws_with_virtual_hosted_buckets() -> None:
    location = parse_s3_url("s3://calls-2026?region=eu-north-1")
    assert location.endpoint == "https://s3.eu-north-1.amazonaws.com"
    assert (location.bucket, location.prefix, location.path_style) == ("calls-2026", "", False)


def test_s3_url_with_endpoint_and_prefix() -> None:
    location = parse_s3_url("s3://calls?endpoint=http://[::1]:8333/&prefix=site-a/vault_1")
    assert location.endpoint == "http://[::1]:8333"
    assert (location.prefix, location.region, location.path_style) == (
        "site-a/vault_1/",
        "us-east-1",
        True,
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://Calls?endpoint=http://h", "not a valid bucket name"),
        ("s3://calls.example?endpoint=http://h", "not a valid bucket name"),
        ("s3://ab?endpoint=http://h", "not a valid bucket name"),
        ("s3://calls/recordings", "not in the path"),
        ("s3://calls?region=EU_NORTH", "region must be like"),
        ("s3://calls?region=a&region=b", "option region given twice"),
        ("s3://calls?endpoint=", "option endpoint is empty"),
        ("s3://calls?prefix=../up", "prefix must be"),
        ("s3://calls?prefix=/abs", "prefix must be"),
        ("s3://calls?endpoint=http://h:99999", "endpoint is not a URL"),
        ("s3://calls?endpoint=http://h/path", "with no path"),
        ("s3://calls?endpoint=http://user:pw@h", "must not carry credentials"),
        ("s3://calls?endpoint=ftp://h", "endpoint must be http(s)"),
        ("s3://calls?secret=hunter2", "unknown option"),
    ],
)
def test_s3_url_mistakes_are_named_without_echoing_values(url: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)) as error:
        parse_s3_url(url)
    assert "hunter2" not in str(error.value) and "pw@" not in str(error.value)
    assert str(error.value).startswith("configuration error: CALLVAULT_BLOBSTORE_URL")


def test_s3_secret_file_must_be_owner_only_and_not_empty(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value\n")
    secret.chmod(0o644)
    env = {"CALLVAULT_S3_ACCESS_KEY_ID": "AKID", "CALLVAULT_S3_SECRET_ACCESS_KEY_FILE": str(secret)}
    with pytest.raises(ConfigError, match="only its owner may read it") as error:
        credentials(env)
    assert "s3cr3t-value" not in str(error.value)
    secret.chmod(0o600)
    assert credentials(env) == ("AKID", "s3cr3t-value")
    secret.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        credentials(env)
