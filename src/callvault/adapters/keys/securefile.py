"""Owner-only secret files: the key file on disk and secrets named by settings.

Reading refuses a file another local user could have planted or can read:
a non-regular file or one with group or other permission bits; for the key
file also a symlink, another owner, or a directory others can write.
Writing is atomic and durable: a temp file in the same directory, fsynced,
then renamed or linked into place and the directory fsynced, so readers see
the old or the new file and never a torn one.  Failures are core errors
(``InsecureKeyFile``, ``KeyUnavailable``, ``AlreadyExists``, ``StorageError``,
``InvalidInput``) whose messages name the path, never the contents.
"""

from __future__ import annotations

import errno
import glob
import os
import secrets
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from callvault.core.errors import (
    AlreadyExists,
    InsecureKeyFile,
    InvalidInput,
    KeyUnavailable,
    StorageError,
)

_MAX_FILE_BYTES = 1 << 20
_MAX_SECRET_FILE = 64 * 1024
_TEMP_SUFFIX = ".tmp"


def check_key_directory(path: Path) -> None:
    """Refuse a key file whose parent is not a directory owned by this user (or root)
    and closed to group and other writes: ``InsecureKeyFile``, or ``KeyUnavailable``
    if it cannot be examined."""
    directory = path.parent
    try:
        st = os.stat(directory)
    except OSError as exc:
        raise KeyUnavailable(f"key file directory {directory}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InsecureKeyFile(f"{path} (its parent is not a directory)")
    # Anyone who can write the directory can swap the key file for their own.
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or st.st_uid not in (os.geteuid(), 0):
        raise InsecureKeyFile(f"{path} (its directory {directory} is writable by others)")


def read_key_file(path: Path) -> bytes:
    """Read the key file after refusing anything but an owner-only regular file."""
    check_key_directory(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise InsecureKeyFile(f"{path} (symbolic link)")
        fd = os.open(path, flags)  # O_NOFOLLOW: a link swapped in after lstat fails too
    except FileNotFoundError:
        raise KeyUnavailable(f"key file {path} not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InsecureKeyFile(f"{path} (symbolic link)") from None
        raise KeyUnavailable(f"cannot read key file {path}: {exc.strerror}") from None

    def check(st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise InsecureKeyFile(f"{path} (not a regular file)")
        if st.st_mode & 0o077 or st.st_uid != os.geteuid():
            raise InsecureKeyFile(f"{path} (mode {stat.S_IMODE(st.st_mode):04o})")

    data = _read_fd(fd, _MAX_FILE_BYTES, check)
    if len(data) > _MAX_FILE_BYTES:
        raise KeyUnavailable("key file is too large to be a callvault key file")
    return data


def _read_fd(fd: int, limit: int, check: Callable[[os.stat_result], None]) -> bytes:
    """Vet the open file with ``check`` before reading up to ``limit + 1`` bytes; closes ``fd``."""
    try:
        check(os.fstat(fd))
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0 and (chunk := os.read(fd, remaining)):
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise KeyUnavailable(f"cannot read secret file: {exc.strerror}") from None
    finally:
        os.close(fd)


def write_key_file(path: Path, data: bytes, *, replace: bool) -> None:
    """Atomically publish ``data`` at ``path`` (mode 0600), durable on return.

    ``replace=False`` refuses an existing file (``AlreadyExists``) without a
    window in which two creators could both win.
    """
    directory = path.parent
    temp = directory / f".{path.name}.{secrets.token_hex(8)}{_TEMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)
            os.unlink(temp)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except FileExistsError:
        raise AlreadyExists("key file", str(path)) from None
    except OSError as exc:
        raise StorageError(f"cannot write key file {path}: {exc.strerror}") from None
    finally:
        temp.unlink(missing_ok=True)
    _remove_stale_temps(path)


def _remove_stale_temps(path: Path) -> None:
    # Temp files of an interrupted rewrite hold sealed, possibly retired keys:
    # harmless to ``open``, but they should not outlive the next good write.
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*{_TEMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)


def read_passphrase(env: Mapping[str, str], prompt: Callable[[], str] | None) -> bytes:
    """The key file passphrase: ``read_secret_setting`` for ``CALLVAULT_PASSPHRASE``."""
    return read_secret_setting(env, "CALLVAULT_PASSPHRASE", prompt, what="passphrase")


def read_secret_setting(
    env: Mapping[str, str], name: str, prompt: Callable[[], str] | None, *, what: str
) -> bytes:
    """A secret from, in order: ``env[name]``, the file named by ``env[name + "_FILE"]``
    (one trailing newline stripped; it must be a regular file only its owner
    can read or write), the interactive ``prompt``.

    ``InvalidInput`` if the secret is empty; ``InsecureKeyFile`` for a file
    others can access; ``KeyUnavailable`` if no source is available.
    """
    if name in env:
        value = env[name].encode("utf-8")
    elif f"{name}_FILE" in env:
        value = _read_secret_file(Path(env[f"{name}_FILE"]), what)
    elif prompt is not None:
        value = prompt().encode("utf-8")
    else:
        raise KeyUnavailable(f"no {what}: set {name}_FILE or run interactively")
    if not value:
        raise InvalidInput(f"empty {what} refused")
    return value


def _read_secret_file(path: Path, what: str) -> bytes:
    # Symlinks are followed (container secret mounts use them); the file they
    # reach must still be an owner-only regular file.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise KeyUnavailable(f"cannot read {what} file {path}: {exc.strerror}") from None

    def check(st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
            raise InsecureKeyFile(f"{path} ({what} file)")

    data = _read_fd(fd, _MAX_SECRET_FILE, check)
    if len(data) > _MAX_SECRET_FILE:
        raise InvalidInput(f"{what} file is too large")
    if data.endswith(b"\r\n"):
        return data[:-2]
    return data.removesuffix(b"\n")
