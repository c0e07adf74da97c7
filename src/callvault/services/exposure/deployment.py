"""Where a vault keeps its things, read from its settings once, for ``doctor``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

#: Written by the operator's backup job after each successful run, one line,
#: an ISO 8601 time (``date -u +%Y-%m-%dT%H:%M:%SZ > $CALLVAULT_HOME/last-backup``).
BACKUP_MARKER = "last-backup"


def _file_url_path(url: str, scheme: str) -> Path | None:
    if not url.startswith(scheme):
        return None
    if scheme == "sqlite:///":
        return Path(url.removeprefix("sqlite:///"))
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.path else None


@dataclass(frozen=True)
class Deployment:
    home: Path
    data_dir: Path
    database_file: Path | None
    blob_dir: Path | None
    key_file: Path | None
    passphrase_file: Path | None
    passphrase_in_environment: bool
    tls_cert: Path
    tls_key: Path
    bind_host: str

    @classmethod
    def from_settings(cls, s: Any) -> Deployment:
        """From a ``callvault.config.Settings`` (read by attribute, not imported)."""
        key_file = _file_url_path(s.keys_url, "keyfile:")
        env = dict(s.env)
        passphrase = env.get("CALLVAULT_PASSPHRASE_FILE")
        return cls(
            home=Path(s.home),
            data_dir=Path(s.data_dir),
            database_file=_file_url_path(s.database_url, "sqlite:///"),
            blob_dir=_file_url_path(s.blobstore_url, "file:"),
            key_file=key_file,
            passphrase_file=Path(passphrase) if passphrase else None,
            passphrase_in_environment=bool(env.get("CALLVAULT_PASSPHRASE")),
            tls_cert=Path(s.tls_cert_file or Path(s.tls_dir) / "cert.pem"),
            tls_key=Path(s.tls_key_file or Path(s.tls_dir) / "key.pem"),
            bind_host=str(s.bind_host),
        )

    def data_folders(self) -> list[Path]:
        """Folders holding the vault's data (database, objects)."""
        folders = [self.data_dir]
        if self.database_file is not None:
            folders.append(self.database_file.parent)
        if self.blob_dir is not None:
            folders.append(self.blob_dir)
        return folders

    def audio_roots(self) -> list[Path]:
        """Where plaintext audio would be "in or near" the data: the home and data folders."""
        return [self.home, *self.data_folders()]

    @property
    def backup_marker(self) -> Path:
        return self.home / BACKUP_MARKER
