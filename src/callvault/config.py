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
    "CALLVAULT_AUDIT_RETENTION_DAYS",
    "CALLVAULT_BIND",
    "CALLVAULT_TLS_CERT_FILE",
    "CALLVAULT_TLS_KEY_FILE",
    "CALLVAULT_S3_ACCESS_KEY_ID",
    "CALLVAULT_S3_SECRET_ACCESS_KEY",
    "CALLVAULT_S3_SECRET_ACCESS_KEY_FILE",
    "CALLVAULT_JOBS_SCRUB_HOURS",
    "CALLVAULT_JOBS_SWEEP_MINUTES",
    "CALLVAULT_JOBS_LEASE_SECONDS",
)


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    blobstore_url: str
    keys_url: str
    max_ingest_bytes: int
    bind_host: str
    bind_port: int
    tls_cert_file: Path | None
    tls_key_file: Path | None
    env: Mapping[str, str]  # only the CALLVAULT_* secrets, for the key provider
    # How long audit entries are kept (R16): never below five years.
    audit_retention_days: int = 1826
    # Periodic background jobs (docs/jobs.md); 0 turns one off.
    jobs_scrub_hours: int = 24
    jobs_sweep_minutes: int = 60
    jobs_lease_seconds: int = 60

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
        bind = _bind(source.get("CALLVAULT_BIND") or "127.0.0.1:8443")
        return cls(
            home=home,
            database_url=source.get("CALLVAULT_DATABASE_URL") or f"sqlite:///{data / 'vault.db'}",
            blobstore_url=source.get("CALLVAULT_BLOBSTORE_URL") or (data / "blobs").as_uri(),
            keys_url=source.get("CALLVAULT_KEYS_URL")
            or "keyfile://" + str(home / "keys" / "callvault.key"),
            max_ingest_bytes=_positive_int(source, "CALLVAULT_MAX_INGEST_BYTES", 4 * 1024**3),
            bind_host=bind[0],
            bind_port=bind[1],
            tls_cert_file=_optional_path(source, "CALLVAULT_TLS_CERT_FILE", base),
            tls_key_file=_optional_path(source, "CALLVAULT_TLS_KEY_FILE", base),
            env={k: v for k, v in source.items() if k.startswith(PREFIX)},
            audit_retention_days=_audit_retention(source),
            jobs_scrub_hours=_interval(source, "CALLVAULT_JOBS_SCRUB_HOURS", 24),
            jobs_sweep_minutes=_interval(source, "CALLVAULT_JOBS_SWEEP_MINUTES", 60),
            jobs_lease_seconds=max(2, _interval(source, "CALLVAULT_JOBS_LEASE_SECONDS", 60)),
        )

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def tls_dir(self) -> Path:
        """Where init puts the self-signed localhost certificate when none is configured."""
        return self.home / "tls"


def _bind(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ConfigError("CALLVAULT_BIND must be host:port, e.g. 127.0.0.1:8443")
    return host, int(port)


def _optional_path(source: Mapping[str, str], name: str, base: Path) -> Path | None:
    text = source.get(name)
    if not text:
        return None
    path = Path(text)
    return path if path.is_absolute() else base / path


def _interval(source: Mapping[str, str], name: str, default: int) -> int:
    """A schedule interval: a whole number from 0 (off) to 100000."""
    text = (source.get(name) or "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) > 100_000:
        raise ConfigError(f"{name} must be a whole number from 0 (off) to 100000")
    return int(text)


AUDIT_RETENTION_MIN_DAYS = 1826  # five years, whatever the leap days (R16)


def _audit_retention(source: Mapping[str, str]) -> int:
    name = "CALLVAULT_AUDIT_RETENTION_DAYS"
    text = source.get(name)
    if not text:
        return AUDIT_RETENTION_MIN_DAYS
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(f"{name} must be a whole number of days")
    days = int(text)
    if days < AUDIT_RETENTION_MIN_DAYS:
        raise ConfigError(
            f"{name} is {days} days: the audit log must be kept at least five years "
            f"({AUDIT_RETENTION_MIN_DAYS} days)"
        )
    return days


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
