"""Shared CLI plumbing: what bootstrap hands in, opening the vault, the prompt."""

from __future__ import annotations

import argparse
import getpass
import ssl
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from callvault.services import audit
from callvault.services.context import Vault
from callvault.services.exposure.ports import HttpClient, Sniff

Prompt = Callable[[], str]


class VaultApp(Protocol):
    """Provided by bootstrap, so the CLI never wires adapters itself."""

    @property
    def settings(self) -> object: ...

    def open_vault(self, prompt: Prompt | None) -> Vault: ...

    def create_vault(self, prompt: Prompt | None) -> Vault: ...

    def server_tls(self) -> ssl.SSLContext: ...

    def http_probe(self, timeout: float, cafile: str | None) -> HttpClient: ...

    def audio_sniffer(self) -> Sniff: ...


def _prompt() -> str:
    return getpass.getpass("callvault passphrase: ")


def passphrase_prompt() -> Prompt | None:
    """Ask interactively only when someone is at the terminal."""
    return _prompt if sys.stdin.isatty() else None


@contextmanager
def opened(args: argparse.Namespace, *, interactive: bool = True) -> Iterator[Vault]:
    """The vault, sealed and closed afterwards; ``interactive=False`` never prompts
    (server workers, which share one terminal)."""
    vault = args.app.open_vault(passphrase_prompt() if interactive else None)
    try:
        yield vault
    finally:
        try:
            audit.seal(vault)
        finally:
            vault.close()
