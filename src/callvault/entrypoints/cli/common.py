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

Prompt = Callable[[], str]


class VaultApp(Protocol):
    """Provided by bootstrap, so the CLI never wires adapters itself."""

    @property
    def settings(self) -> object: ...

    def open_vault(self, prompt: Prompt | None) -> Vault: ...

    def create_vault(self, prompt: Prompt | None) -> Vault: ...

    def server_tls(self) -> ssl.SSLContext: ...


def _prompt() -> str:
    return getpass.getpass("callvault passphrase: ")


def passphrase_prompt() -> Prompt | None:
    """Ask interactively only when someone is at the terminal."""
    return _prompt if sys.stdin.isatty() else None


@contextmanager
def opened(args: argparse.Namespace) -> Iterator[Vault]:
    vault = args.app.open_vault(passphrase_prompt())
    try:
        yield vault
    finally:
        try:
            audit.seal(vault)
        finally:
            vault.close()
