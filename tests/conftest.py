from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callvault.testing.lifecycle import policy_cli_args
from callvault.testing.seaweedfs import PUBLIC_BUCKET, SeaweedFS


@dataclass
class CliVault:
    """A vault driven through the real `callvault` command in subprocesses."""

    home: Path
    tmpdir: Path
    env: dict[str, str]

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "callvault", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"callvault {args[0]} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "callvault", *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


@pytest.fixture
def cli_vault(tmp_path: Path) -> Callable[[], CliVault]:
    """Factory for an initialised CLI vault with its own TMPDIR (scanned by leak tests)."""

    def make() -> CliVault:
        home = tmp_path / "vault-home"
        tmpdir = tmp_path / "vault-tmp"
        tmpdir.mkdir()
        secret = tmp_path / "passphrase"
        secret.write_text("correct horse battery staple\n")
        secret.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
        env.update(
            CALLVAULT_HOME=str(home),
            CALLVAULT_PASSPHRASE_FILE=str(secret),
            TMPDIR=str(tmpdir),
            PYTHONDONTWRITEBYTECODE="1",
        )
        vault = CliVault(home, tmpdir, env)
        vault.run("init")
        # Ingest is refused without a recording policy (R19).
        vault.run(*policy_cli_args(["1177-sthlm", "1177-gbg"]))
        return vault

    return make


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server for the session; tests make their own buckets or prefixes.

    Anonymous requests are refused everywhere except in ``PUBLIC_BUCKET`` (made on demand).
    """
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs"), anonymous_read=[PUBLIC_BUCKET]) as server:
        yield server
