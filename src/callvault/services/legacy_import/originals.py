"""What happens to an original once its record is verified: kept, moved or shredded.

Shredding overwrites the file's bytes with random data, flushes them to the
device and unlinks the file.  On SSDs (wear levelling, spare blocks) and on
copy-on-write or journalling file systems (btrfs, ZFS, APFS, data=journal
ext4), snapshots and backups, the old blocks may survive the overwrite:
shredding then only removes the name.  Only full-disk encryption with a
destroyed key, or destroying the medium, is certain.  ``SHRED_WARNING``
says so wherever shredding is offered.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

KEEP = "kept"
MOVE = "moved"
SHRED = "shredded"

SHRED_WARNING = (
    "shredding overwrites each original once and unlinks it, but on SSDs, copy-on-write "
    "file systems (btrfs, ZFS, APFS), snapshots and backups the old blocks can survive; "
    "only destroying the disk or its encryption key is certain"
)
_CHUNK = 1024 * 1024


def move(source: Path, relative: str, destination_root: Path) -> None:
    """Move ``source`` to ``destination_root/relative``; safe to repeat after a crash.

    Across file systems the copy is fsynced before the original is removed, so
    there is never a moment with neither copy durable.
    """
    target = destination_root / relative
    if not source.exists() and target.exists():
        return  # moved by an earlier, interrupted run
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # another file system: copy, then remove
            raise
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(source, partial)
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
        source.unlink()
    _fsync_dir(target.parent)
    _fsync_dir(source.parent)


def shred(path: Path) -> None:
    """Overwrite ``path`` with random bytes, fsync, unlink; a missing file is done."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        written = 0
        while written < size:
            written += os.write(fd, os.urandom(min(_CHUNK, size - written)))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
