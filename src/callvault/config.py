"""One typed settings object, built once at start-up from the environment.

Nothing else in callvault reads ``os.environ``.  Secrets may be given as
``NAME_FILE`` (a path whose content is the secret) instead of ``NAME``.
Every setting is listed in docs/configuration.md (a test checks it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from callvault.core.errors import ConfigError

PREFIX = "CALLVAULT_"
SETTINGS = (
    "CALLVAULT_HOME",
    "CALLVAULT_DATABASE_URL",
    "CALLVAULT_BLOBSTORE_URL",
    "CALLVAULT_KEYS_URL",
    "CALLVAULT_PASSPHRASE",
    "CALLVAULT_PASSPHRASE_FILE",
    "CALLVAULT_PKCS11_PIN",
    "CALLVAULT_PKCS11_PIN_FILE",
    "CALLVAULT_MAX_INGEST_BYTES",
)


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    blobstore_url: str
    keys_url: str
    max_ingest_bytes: int
    env: Mapping[str, str]  # only the CALLVAULT_* secrets, for the key provider

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Settings:
        source = dict(os.environ if environ is None else environ)
        unknown = sorted(k for k in source if k.startswith(PREFIX) and k not in SETTINGS)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]} (see docs/configuration.md)")
        base = cwd or Path.cwd()
        home = Path(source.get("CALLVAULT_HOME") or "var")
        home = (home if home.is_absolute() else base / home).resolve()
        data = home / "data"
        return cls(
            home=home,
            database_url=source.get("CALLVAULT_DATABASE_URL") or f"sqlite:///{data / 'vault.db'}",
            blobstore_url=source.get("CALLVAULT_BLOBSTORE_URL") or (data / "blobs").as_uri(),
            keys_url=source.get("CALLVAULT_KEYS_URL")
            or "keyfile://" + str(home / "keys" / "callvault.key"),
            max_ingest_bytes=_positive_int(source, "CALLVAULT_MAX_INGEST_BYTES", 4 * 1024**3),
            env={k: v for k, v in source.items() if k.startswith(PREFIX)},
        )

    @property
    def data_dir(self) -> Path:
        return self.home / "data"


def _positive_int(source: Mapping[str, str], name: str, default: int) -> int:
    text = source.get(name)
    if not text:
        return default
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(f"{name} must be a whole number of bytes")
    value = int(text)
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value
