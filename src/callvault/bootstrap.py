"""The one place that wires adapters to services, from Settings."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from callvault.adapters.keys.keyfile import KeyfileProvider, read_passphrase
from callvault.config import Settings
from callvault.core.errors import ConfigError, VaultNotInitialised
from callvault.core.ports import KeyProvider, SystemClock
from callvault.services import vault as vault_service
from callvault.services.context import Vault

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


def _wire(settings: Settings, keys: KeyProvider, origin: str) -> Vault:
    # Imported only after the key file is open: the KDF's memory and these
    # modules' then never add up, which keeps a vault process under 150 MB.
    from callvault.adapters.audio import analyse
    from callvault.adapters.blobstore import open_blobstore
    from callvault.adapters.db.store import SqlMetadataStore

    _prepare_local_dirs(settings)
    return Vault(
        store=SqlMetadataStore.open(settings.database_url),
        blobs=open_blobstore(settings.blobstore_url),
        keys=keys,
        clock=SystemClock(),
        probe=analyse,
        origin=origin,
        max_ingest_bytes=settings.max_ingest_bytes,
    )


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
    """Create keys, schema and the vault's first audit entries."""
    _refuse_existing(settings)
    keys = open_keys(settings, prompt, create=True)
    vault = _wire(settings, keys, origin=vault_service.origin_for(str(uuid.uuid4())))
    return vault


def _refuse_existing(settings: Settings) -> None:
    """Never make new keys beside an existing vault: they would open nothing."""
    if settings.keys_url.startswith("keyfile:") and keyfile_path(settings).exists():
        raise ConfigError(
            f"a key file already exists at {keyfile_path(settings)}; refusing to overwrite"
        )
    from callvault.adapters.db.store import SqlMetadataStore

    _prepare_local_dirs(settings)
    store = SqlMetadataStore.open(settings.database_url)
    try:
        with store.transaction() as tx:
            existing = tx.get_info(vault_service.VAULT_ID)
    finally:
        store.close()
    if existing is not None:
        raise ConfigError(
            "the database already holds a vault; restore its key file instead of running init"
        )


class App:
    """What entry points get from bootstrap: settings and ways to open the vault."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open_vault(self, prompt: Prompt | None) -> Vault:
        return open_vault(self.settings, prompt)

    def create_vault(self, prompt: Prompt | None) -> Vault:
        return create_vault(self.settings, prompt)


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
