"""The one place that wires adapters to services, from Settings."""

from __future__ import annotations

import datetime as dt
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from callvault.adapters.keys.keyfile import KeyfileProvider
from callvault.adapters.keys.securefile import read_passphrase
from callvault.config import Settings
from callvault.core.errors import ConfigError, StorageError, VaultNotInitialised
from callvault.core.ports import BlobStore, Clock, JobDataRepo, JobQueue, KeyProvider, SystemClock
from callvault.services import vault as vault_service
from callvault.services.context import Vault

if TYPE_CHECKING:
    from callvault.adapters.db.store import SqlMetadataStore
    from callvault.adapters.tls import TlsFiles
    from callvault.services.exposure.ports import HttpClient, Sniff

Prompt = Callable[[], str]


def keyfile_path(settings: Settings) -> Path:
    parsed = urlparse(settings.keys_url)
    path = Path(unquote(parsed.path))
    if parsed.netloc or not path.is_absolute():
        raise ConfigError("CALLVAULT_KEYS_URL must be keyfile:///absolute/path or pkcs11:...")
    return path


def open_keys(settings: Settings, prompt: Prompt | None, *, create: bool = False) -> KeyProvider:
    scheme = settings.keys_url.split(":", 1)[0]
    if scheme == "keyfile":
        path = keyfile_path(settings)
        if create:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            return KeyfileProvider.create(path, read_passphrase(settings.env, prompt))
        if not path.exists():
            raise VaultNotInitialised(f"no key file at {path}")
        return KeyfileProvider.open(path, read_passphrase(settings.env, prompt))
    if scheme == "pkcs11":
        from callvault.adapters.keys.pkcs11 import open_from_url

        return open_from_url(settings.keys_url, settings.env, create=create)
    raise ConfigError("CALLVAULT_KEYS_URL must start with keyfile: or pkcs11:")


def _wire(
    settings: Settings, keys: KeyProvider, origin: str, blobs: BlobStore | None = None
) -> Vault:
    # Imported only after the key file is open: the KDF's memory and these
    # modules' then never add up, which keeps a vault process under 150 MB.
    from callvault.adapters.audio import analyse

    _prepare_local_dirs(settings)
    if blobs is None:
        blobs = _open_blobs(settings)
    vault = Vault(
        store=_open_metadata(settings),
        blobs=blobs,
        keys=keys,
        clock=SystemClock(),
        probe=analyse,
        origin=origin,
        max_ingest_bytes=settings.max_ingest_bytes,
    )
    vault.jobs, vault.job_data = open_jobs(settings, vault.clock)
    return vault


def open_jobs(settings: Settings, clock: Clock) -> tuple[JobQueue, JobDataRepo]:
    """The job queue: procrastinate on PostgreSQL, the embedded runner on SQLite
    (docs/jobs.md).  Opens no connection until a job is queued or run."""
    from callvault.adapters.db.store import create_engine_for
    from callvault.adapters.jobs.sql import SqlJobQueue
    from callvault.adapters.jobs.sql_data import SqlJobData

    engine = create_engine_for(settings.database_url)
    if engine.dialect.name == "postgresql":
        from callvault.adapters.jobs.procrastinate_queue import ProcrastinateJobQueue

        stall = float(settings.jobs_lease_seconds)
        # A live worker must beat at least three times per stall window, or a
        # tick could hand its job to another worker while it still runs.
        queue = ProcrastinateJobQueue(
            engine, clock, stalled_seconds=stall, heartbeat_seconds=min(5.0, stall / 3)
        )
        return queue, SqlJobData(engine)
    lease = dt.timedelta(seconds=settings.jobs_lease_seconds)
    return SqlJobQueue(engine, clock, lease=lease), SqlJobData(engine)


def _open_blobs(settings: Settings) -> BlobStore:
    """The blob store, contacted once: a typo or a dead server fails here, naming the setting."""
    from callvault.adapters.blobstore import open_blobstore

    return open_blobstore(settings.blobstore_url, settings.env)


def _open_metadata(settings: Settings) -> SqlMetadataStore:
    """The metadata store; every failure is one message naming CALLVAULT_DATABASE_URL.

    Driver messages are not passed on: they can quote the URL and its password.
    """
    from callvault.adapters.db.store import SqlMetadataStore

    setting = "CALLVAULT_DATABASE_URL"
    try:
        return SqlMetadataStore.open(settings.database_url)
    except ModuleNotFoundError:
        raise ConfigError(
            f"{setting}: unsupported database driver (use sqlite:///path or postgresql+psycopg://)"
        ) from None
    except VaultNotInitialised:
        raise
    except ConfigError as exc:
        if setting in str(exc):
            raise
        raise ConfigError(f"{setting}: {exc.params['detail']}") from None
    except StorageError:
        raise StorageError(
            f"{setting}: cannot open the metadata database "
            "(server not answering, connection refused, or no such database)"
        ) from None


def _prepare_local_dirs(settings: Settings) -> None:
    """Create the parents of an embedded database and a local object store."""
    parents = []
    if settings.database_url.startswith("sqlite:///"):
        parents.append(Path(settings.database_url.removeprefix("sqlite:///")).parent)
    if settings.blobstore_url.startswith("file:"):
        parents.append(Path(unquote(urlparse(settings.blobstore_url).path)).parent)
    for parent in parents:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def open_vault(settings: Settings, prompt: Prompt | None = None) -> Vault:
    """Open an initialised vault; ``VaultNotInitialised`` if there is none."""
    keys = open_keys(settings, prompt)
    vault = _wire(settings, keys, origin="")
    with vault.store.transaction() as tx:
        vault_id = tx.get_info(vault_service.VAULT_ID)
    if vault_id is None:
        vault.close()
        raise VaultNotInitialised("the database has no vault")
    vault.origin = vault_service.origin_for(vault_id)
    return vault


def create_vault(settings: Settings, prompt: Prompt | None = None) -> Vault:
    """Create keys, schema and the vault's first audit entries, and the self-signed
    localhost TLS pair unless a certificate is configured."""
    _refuse_existing(settings)
    # The blob store is checked before any key is made: a misconfigured
    # init must leave nothing behind that a corrected rerun would refuse.
    blobs = _open_blobs(settings)
    keys = open_keys(settings, prompt, create=True)
    vault = _wire(settings, keys, origin=vault_service.origin_for(str(uuid.uuid4())), blobs=blobs)
    try:
        prepare_tls(settings)  # so `callvault serve` works on localhost from the start
    except BaseException:
        vault.close()
        raise
    return vault


def _refuse_existing(settings: Settings) -> None:
    """Never make new keys beside an existing vault: they would open nothing."""
    if settings.keys_url.startswith("keyfile:") and keyfile_path(settings).exists():
        raise ConfigError(
            f"a key file already exists at {keyfile_path(settings)}; refusing to overwrite"
        )
    _prepare_local_dirs(settings)
    store = _open_metadata(settings)
    try:
        with store.transaction() as tx:
            existing = tx.get_info(vault_service.VAULT_ID)
    finally:
        store.close()
    if existing is not None:
        raise ConfigError(
            "the database already holds a vault; restore its key file instead of running init"
        )


def tls_files(settings: Settings) -> TlsFiles:
    """The configured certificate and key, or else the self-signed pair ``init`` made."""
    from callvault.adapters.tls import TlsFiles, default_files

    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        return default_files(settings.tls_dir)
    if cert is None or key is None:
        raise ConfigError("set both CALLVAULT_TLS_CERT_FILE and CALLVAULT_TLS_KEY_FILE, or neither")
    return TlsFiles(cert, key)


def prepare_tls(settings: Settings) -> TlsFiles | None:
    """Make the self-signed localhost pair when no certificate is configured.

    Returns the pair made or kept, or None when a certificate is configured
    (then it is the operator's, and nothing is written).
    """
    if settings.tls_cert_file is not None or settings.tls_key_file is not None:
        return None
    from callvault.adapters.tls import ensure_self_signed

    return ensure_self_signed(settings.tls_dir)


def server_tls(settings: Settings) -> ssl.SSLContext:
    """The service's TLS context; ``ConfigError`` if no usable certificate and key."""
    from callvault.adapters.tls import server_context

    files = tls_files(settings)
    if settings.tls_cert_file is None and not files.cert.exists():
        raise ConfigError(
            f"no TLS certificate at {files.cert}: `callvault init` makes a self-signed one "
            "for localhost, or set CALLVAULT_TLS_CERT_FILE and CALLVAULT_TLS_KEY_FILE"
        )
    return server_context(files)


def tls_fingerprint(settings: Settings) -> str:
    """SHA-256 fingerprint of the service's certificate, for people to compare."""
    from callvault.adapters.tls import fingerprint

    return fingerprint(tls_files(settings).cert)


class App:
    """What entry points get from bootstrap: settings and ways to open the vault."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open_vault(self, prompt: Prompt | None) -> Vault:
        return open_vault(self.settings, prompt)

    def create_vault(self, prompt: Prompt | None) -> Vault:
        return create_vault(self.settings, prompt)

    def server_tls(self) -> ssl.SSLContext:
        """See :func:`server_tls`: what ``callvault serve`` listens with."""
        return server_tls(self.settings)

    def http_probe(self, timeout: float, cafile: str | None) -> HttpClient:
        """The bounded HTTP client the exposure scanner probes other servers with."""
        from callvault.adapters.http_probe import HttpProbe

        return HttpProbe(timeout=timeout, cafile=cafile)

    def audio_sniffer(self) -> Sniff:
        """What kind of audio a file's first bytes announce, if any (needs no vault)."""
        from callvault.adapters.audio.magic import sniff

        return sniff


def run_cli(argv: list[str]) -> int:
    """Run one ``callvault`` command with settings from the environment."""
    from callvault.core.errors import CallvaultError
    from callvault.entrypoints.cli.main import main, report_error

    try:
        app = App(Settings.from_env())
    except CallvaultError as exc:
        return report_error(exc)
    return main(argv, app)


def cli() -> int:
    """The ``callvault`` console script."""
    import sys

    return run_cli(sys.argv[1:])
