"""A throwaway SoftHSM2 token for tests.

:func:`softhsm_token` creates a token directory and its own ``softhsm2.conf``
under a directory the caller owns (pytest's ``tmp_path``), initialises one
token with random SO and user PINs, and points this process's SoftHSM2 at it.

SoftHSM2 reads ``SOFTHSM2_CONF`` and scans its token directory only in
``C_Initialize``, and python-pkcs11 keeps one loaded module per path for the
whole process.  So the helper sets the variable and re-initialises the module:
sessions opened before that become invalid, which is why every provider
opened on an earlier token must be closed first.  The previous value of
``SOFTHSM2_CONF`` is restored on exit.

Missing SoftHSM2 is an error, never a skip: the PKCS#11 adapter is tested on a
real token or not at all.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pkcs11

from callvault.core.errors import ConfigError

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
_INSTALL_HINT = "install SoftHSM2 (Debian: apt-get install softhsm2)"


@dataclass(frozen=True)
class SoftHsmToken:
    """Everything a test needs to open the token."""

    module_path: str
    label: str
    user_pin: str = field(repr=False)
    so_pin: str = field(repr=False)
    conf_path: Path
    token_dir: Path


def find_softhsm() -> tuple[str, str]:
    """Return (softhsm2-util path, libsofthsm2.so path); ``ConfigError`` if either is missing."""
    util = shutil.which("softhsm2-util")
    if util is None:
        raise ConfigError(f"softhsm2-util not found on PATH: {_INSTALL_HINT}")
    for candidate in MODULE_CANDIDATES:
        if os.path.exists(candidate):
            return util, candidate
    raise ConfigError(
        f"libsofthsm2.so not found in {', '.join(MODULE_CANDIDATES)}: {_INSTALL_HINT}"
    )


def _write_conf(root: Path) -> tuple[Path, Path]:
    token_dir = root / "tokens"
    token_dir.mkdir(mode=0o700, parents=True)
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    conf.chmod(0o600)
    return conf, token_dir


def _init_token(util: str, conf: Path, label: str, so_pin: str, user_pin: str) -> None:
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    argv = [util, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", user_pin]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise ConfigError(f"softhsm2-util --init-token failed: {done.stderr.strip()}")


@contextlib.contextmanager
def softhsm_token(directory: Path, label: str = "callvault-test") -> Iterator[SoftHsmToken]:
    """Create a fresh token under ``directory`` and make it the one this process sees."""
    util, module = find_softhsm()
    conf, token_dir = _write_conf(directory / "softhsm")
    token = SoftHsmToken(
        module_path=module,
        label=label,
        user_pin=secrets.token_hex(8),
        so_pin=secrets.token_hex(8),
        conf_path=conf,
        token_dir=token_dir,
    )
    _init_token(util, conf, label, token.so_pin, token.user_pin)
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        pkcs11.lib(module).reinitialize()
        yield token
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
