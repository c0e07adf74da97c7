"""Doctor checks that read only the file system: audio, key file, TLS, backups."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

from cryptography import x509

from callvault.services.exposure.deployment import Deployment
from callvault.services.exposure.directory import plaintext_audio
from callvault.services.exposure.model import HIGH, MEDIUM, TargetResult, mask
from callvault.services.exposure.ports import Sniff

#: Files examined for plaintext audio, at most, per folder checked.
MAX_FILES = 200_000
#: A certificate closer to its end than this is a finding: renew it now.
CERT_WARNING = dt.timedelta(days=30)
#: The newest backup may be at most this old (weekly backups plus a day).
MAX_BACKUP_AGE = dt.timedelta(days=8)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def check_audio(d: Deployment, sniff: Sniff, today: dt.date) -> TargetResult:
    result = TargetResult("plaintext audio in or near the data directory", "check")
    roots: list[Path] = []
    for root in d.audio_roots():
        if root.is_dir() and not any(_inside(root, r) for r in roots):
            roots.append(root)
    # The object store's own objects are ciphertext by construction and every one
    # is checked by `callvault verify`; walking millions of them here would only
    # make the check too slow to run often.
    skip = frozenset({d.blob_dir / "objects"} if d.blob_dir is not None else set())
    for root in roots:
        found, stopped = plaintext_audio(root, sniff, MAX_FILES, skip)
        result.bump("folders_checked")
        for item in found:
            result.add(
                "plaintext-audio",
                HIGH,
                "plaintext recordings beside the vault (import them, then delete them)",
                mask(str(item.path), today),
            )
        if stopped:
            result.error = f"stopped after {MAX_FILES} files in {root}"
    return result


def check_key_file(d: Deployment) -> TargetResult:
    result = TargetResult("key file", "check")
    if d.key_file is None:
        result.note("root keys are on a PKCS#11 token, not in a file")
        return result
    mode = _mode(d.key_file)
    if mode is None:
        result.add(
            "key-file-missing", HIGH, "no key file where CALLVAULT_KEYS_URL points", str(d.key_file)
        )
        return result
    if mode & 0o077:
        result.add(
            "key-file-readable",
            HIGH,
            "others may read or write the key file",
            f"{d.key_file} {mode:04o}",
        )
    folder_mode = _mode(d.key_file.parent) or 0
    if folder_mode & 0o022:
        result.add(
            "key-folder-writable",
            HIGH,
            "others may replace the key file",
            f"{d.key_file.parent} {folder_mode:04o}",
        )
    for data in d.data_folders():
        if _inside(d.key_file, data):
            result.add(
                "key-file-with-data",
                HIGH,
                "the key file lies inside the data it protects (one backup or theft takes both)",
                str(d.key_file),
            )
            break
    if d.passphrase_file is not None:
        pmode = _mode(d.passphrase_file)
        if pmode is not None and pmode & 0o077:
            result.add(
                "passphrase-readable",
                HIGH,
                "others may read the passphrase file",
                str(d.passphrase_file),
            )
        if any(_inside(d.passphrase_file, data) for data in d.data_folders()):
            result.add(
                "passphrase-with-data",
                HIGH,
                "the passphrase file lies inside the data",
                str(d.passphrase_file),
            )
    if d.passphrase_in_environment:
        result.note(
            "CALLVAULT_PASSPHRASE is set in the environment; prefer CALLVAULT_PASSPHRASE_FILE"
        )
    return result


def check_tls(d: Deployment, now: dt.datetime) -> TargetResult:
    result = TargetResult("TLS certificate and key", "check")
    try:
        cert = x509.load_pem_x509_certificate(d.tls_cert.read_bytes())
    except FileNotFoundError:
        result.add(
            "tls-cert-missing",
            HIGH,
            "no TLS certificate: the service cannot start",
            str(d.tls_cert),
        )
        return result
    except (OSError, ValueError):
        result.add(
            "tls-cert-unreadable",
            HIGH,
            "the TLS certificate cannot be read as PEM",
            str(d.tls_cert),
        )
        return result
    if cert.not_valid_after_utc <= now:
        result.add(
            "tls-cert-expired",
            HIGH,
            "the TLS certificate has expired",
            f"{d.tls_cert} {cert.not_valid_after_utc:%Y-%m-%d}",
        )
    elif cert.not_valid_after_utc - now < CERT_WARNING:
        result.add(
            "tls-cert-expiring",
            MEDIUM,
            "the TLS certificate expires within 30 days",
            f"{d.tls_cert} {cert.not_valid_after_utc:%Y-%m-%d}",
        )
    if cert.not_valid_before_utc > now:
        result.add(
            "tls-cert-not-yet-valid", HIGH, "the TLS certificate is not valid yet", str(d.tls_cert)
        )
    mode = _mode(d.tls_key)
    if mode is None:
        result.add("tls-key-missing", HIGH, "no TLS private key", str(d.tls_key))
    elif mode & 0o077:
        result.add(
            "tls-key-readable",
            HIGH,
            "others may read the TLS private key",
            f"{d.tls_key} {mode:04o}",
        )
    if cert.issuer == cert.subject and d.bind_host not in ("127.0.0.1", "::1", "localhost"):
        result.note("a self-signed certificate on a non-loopback address: clients cannot verify it")
    return result


def check_backups(d: Deployment, now: dt.datetime) -> TargetResult:
    result = TargetResult("backups", "check")
    marker = d.backup_marker
    try:
        text = marker.read_text(encoding="ascii").strip().splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        result.add(
            "backups-not-recorded",
            HIGH,
            "no backup recorded: the backup job must write the time of its last success",
            str(marker),
        )
        return result
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        result.add(
            "backups-marker-malformed",
            MEDIUM,
            "the backup marker holds no ISO 8601 time",
            str(marker),
        )
        return result
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if now - when > MAX_BACKUP_AGE:
        result.add(
            "backups-stale",
            HIGH,
            f"the last recorded backup is older than {MAX_BACKUP_AGE.days} days",
            f"{when:%Y-%m-%dT%H:%MZ}",
        )
    else:
        result.note(f"last backup {when:%Y-%m-%dT%H:%MZ}")
    return result
