"""BlobStore on a local POSIX directory (the embedded default).

Layout under ``root`` (every directory 0700, every file 0600)::

    root/
      objects/<first 2 hex of name>/<name>   complete objects only
      tmp/<random>                           in-flight puts, never listed

A put writes a fresh temp file in ``tmp/``, fsyncs it, then publishes it with
``link(2)`` under its final name.  ``link`` fails with EEXIST instead of
replacing, so an object is never overwritten, not even by a racing put, and
the final name appears only once every byte is on disk.  ``tmp/`` and
``objects/`` share a filesystem (both under ``root``), which ``link`` needs.

The store only ever sees ciphertext: callers hand it sealed ``cv1`` objects,
so neither ``objects/`` nor the temp files in ``tmp/`` can hold plaintext
audio.  Object names are random and carry no personal data; error messages
carry neither names nor paths, only the operation and the OS reason.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from callvault.core.errors import AlreadyExists, ConfigError, InvalidInput, NotFound, StorageError
from callvault.core.recordings import OBJECT_NAME_RE, validate_object_name

_DIR_MODE = 0o700
_FILE_MODE = 0o600
_FANOUT_RE = re.compile(r"\A[0-9a-f]{2}\Z")
_TEMP_ATTEMPTS = 3

# O_NONBLOCK: opening a FIFO planted under an object name must not hang a reader.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalBlobStore:
    """A :class:`callvault.core.ports.BlobStore` in a private local directory.

    ``root`` must be an absolute path.  It is created (0700) if missing; an
    existing root must be a real directory (not a symlink) owned by this user
    and closed to group and others, else ``ConfigError``.  The filesystem must
    support hard links.
    """

    def __init__(self, root: Path) -> None:
        self.root = _prepare_private_dir(Path(root), "blob store root")
        self._objects = _prepare_private_dir(self.root / "objects", "blob store objects directory")
        self._tmp = _prepare_private_dir(self.root / "tmp", "blob store temp directory")

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    # -- BlobStore ---------------------------------------------------------

    def put(self, name: str, chunks: Iterable[bytes]) -> int:
        validate_object_name(name)
        # Cheap early refusal so a taken name does not cost a whole upload;
        # the link below is what actually guarantees no overwrite.
        if self._exists(name):
            raise AlreadyExists("object")
        fd, temp = self._create_temp()
        try:
            size = _fill(fd, chunks)
            with _storage_errors("put"):
                os.fsync(fd)
                self._publish(temp, name)
            return size
        finally:
            # Closing releases the flock; after a successful link the temp
            # name is only a second link to the published inode.
            os.close(fd)
            _unlink_quietly(temp)

    def read(self, name: str, offset: int, length: int) -> bytes:
        validate_object_name(name)
        _check_range(offset, length)
        fd = self._open_object(name)
        try:
            with _storage_errors("read"):
                return _pread_upto(fd, offset, length)
        finally:
            os.close(fd)

    def size(self, name: str) -> int:
        validate_object_name(name)
        try:
            st = os.lstat(self._path(name))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("object") from None
        except OSError as exc:
            raise _storage_error("size", exc) from exc
        if not stat.S_ISREG(st.st_mode):
            raise StorageError("size failed: not a regular file")
        return st.st_size

    def delete(self, name: str) -> None:
        validate_object_name(name)
        with _storage_errors("delete"):
            try:
                dir_fd = os.open(self._objects / name[:2], _DIR_FLAGS)
            except FileNotFoundError:
                return
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                return
            else:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def names(self) -> Iterator[str]:
        return self._scan_objects()

    def discard_incomplete(self) -> int:
        """Remove temp files of crashed puts; temp files of live puts are kept.

        A put holds an exclusive ``flock`` on its temp file for its whole
        life, and the kernel drops it when the process dies.  A temp file we
        can lock is therefore abandoned and safe to remove, even while other
        processes are writing.
        """
        removed = 0
        with _storage_errors("discard_incomplete"):
            with os.scandir(self._tmp) as entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False) and _discard_temp(entry):
                        removed += 1
            if removed:
                _fsync_dir(self._tmp)
        return removed

    # -- helpers -----------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self._objects / name[:2] / name

    def _exists(self, name: str) -> bool:
        try:
            os.lstat(self._path(name))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _storage_error("put", exc) from exc
        return True

    def _open_object(self, name: str) -> int:
        try:
            fd = os.open(self._path(name), _READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("object") from None
        except OSError as exc:
            raise _storage_error("read", exc) from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StorageError("read failed: not a regular file")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _create_temp(self) -> tuple[int, Path]:
        """Create and lock a fresh temp file; return its fd and path.

        ``discard_incomplete`` may remove a file between our create and our
        lock; the inode check notices that and we start over with a new name.
        """
        for _ in range(_TEMP_ATTEMPTS):
            temp = self._tmp / secrets.token_hex(16)
            with _storage_errors("put"):
                fd = os.open(temp, _TEMP_FLAGS, _FILE_MODE)
            try:
                with _storage_errors("put"):
                    os.fchmod(fd, _FILE_MODE)  # independent of the umask
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    if _same_file(fd, temp):
                        return fd, temp
            except BaseException:
                os.close(fd)
                _unlink_quietly(temp)
                raise
            os.close(fd)
        raise StorageError("put failed: temp files keep disappearing")

    def _publish(self, temp: Path, name: str) -> None:
        """Link ``temp`` to its final name, durably, never replacing anything."""
        dir_fd = self._open_fanout(name[:2])
        try:
            try:
                os.link(temp, name, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                raise AlreadyExists("object") from None
            try:
                os.fsync(dir_fd)
            except BaseException:
                # Raising means "nothing stored": take the name back.
                _unlink_quietly(name, dir_fd=dir_fd)
                raise
        finally:
            os.close(dir_fd)

    def _open_fanout(self, prefix: str) -> int:
        path = self._objects / prefix
        try:
            os.mkdir(path, _DIR_MODE)
        except FileExistsError:
            pass
        else:
            os.chmod(path, _DIR_MODE)
            _fsync_dir(self._objects)  # the new directory entry must survive a crash too
        return os.open(path, _DIR_FLAGS)

    def _scan_objects(self) -> Iterator[str]:
        try:
            with os.scandir(self._objects) as fanouts:
                for fanout in fanouts:
                    if _FANOUT_RE.match(fanout.name) and fanout.is_dir(follow_symlinks=False):
                        yield from _scan_fanout(fanout.path, fanout.name)
        except OSError as exc:
            raise _storage_error("names", exc) from exc


def _scan_fanout(path: str, prefix: str) -> Iterator[str]:
    # Anything that read() would not find under its name is not an object.
    with os.scandir(path) as entries:
        for entry in entries:
            if (
                OBJECT_NAME_RE.match(entry.name)
                and entry.name.startswith(prefix)
                and entry.is_file(follow_symlinks=False)
            ):
                yield entry.name


def _fill(fd: int, chunks: Iterable[bytes]) -> int:
    """Write every chunk to ``fd``; return the byte count.

    Exceptions raised by ``chunks`` itself propagate unchanged (they are the
    caller's); only our own writes are translated.
    """
    total = 0
    for chunk in chunks:
        view = _byte_view(chunk)
        with _storage_errors("put"):
            _write_all(fd, view)
        total += len(view)
    return total


def _byte_view(chunk: object) -> memoryview:
    if not isinstance(chunk, bytes | bytearray | memoryview):
        raise InvalidInput("object chunks must be bytes")
    try:
        return memoryview(chunk).cast("B")
    except TypeError:
        raise InvalidInput("object chunks must be contiguous bytes") from None


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _pread_upto(fd: int, offset: int, length: int) -> bytes:
    # Clamp to the file size first: a huge ``length`` must not become a huge
    # allocation.
    remaining = max(0, min(length, os.fstat(fd).st_size - offset))
    parts: list[bytes] = []
    while remaining > 0:
        part = os.pread(fd, remaining, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
        remaining -= len(part)
    return b"".join(parts)


def _check_range(offset: int, length: int) -> None:
    for value in (offset, length):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput("offset and length must be integers")
        if value < 0:
            raise InvalidInput("offset and length must not be negative")


def _discard_temp(entry: os.DirEntry[str]) -> bool:
    """Remove one temp file unless a live put holds its lock."""
    if not entry.is_file(follow_symlinks=False):
        # A symlink or special file never came from put: no lock to respect.
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            return False
        return True
    try:
        fd = os.open(entry.path, _READ_FLAGS)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            return False
        return True
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, _DIR_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str | Path, dir_fd: int | None = None) -> None:
    # Cleanup must not mask the error being raised; a leftover temp file is
    # removed later by discard_incomplete.
    with suppress(OSError):
        os.unlink(path, dir_fd=dir_fd)


def _prepare_private_dir(path: Path, what: str) -> Path:
    """Create ``path`` as 0700 if missing, then insist it is private."""
    if not path.is_absolute():
        raise ConfigError(f"{what} must be an absolute path")
    try:
        os.mkdir(path, _DIR_MODE)
    except FileExistsError:
        pass
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: parent directory does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {what} {path}: {exc.strerror}") from None
    else:
        os.chmod(path, _DIR_MODE)
    _check_private_dir(path, what)
    return path


def _check_private_dir(path: Path, what: str) -> None:
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ConfigError(f"cannot inspect {what} {path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"{what} {path} is a symbolic link; give the real directory instead")
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{what} {path} is not a directory")
    if st.st_uid != os.geteuid():
        raise ConfigError(f"{what} {path} is owned by another user")
    if st.st_mode & 0o077:
        mode = oct(stat.S_IMODE(st.st_mode))
        raise ConfigError(
            f"{what} {path} is accessible by group or others (mode {mode}); run chmod 700 on it"
        )


def _storage_error(op: str, exc: OSError) -> StorageError:
    # strerror only: the OSError's own text would carry the path.
    return StorageError(f"{op} failed: {exc.strerror or type(exc).__name__}")


@contextmanager
def _storage_errors(op: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise _storage_error(op, exc) from exc
