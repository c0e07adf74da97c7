"""Scanning a directory tree: recordings by content, identifiers in names, modes.

Every regular file's first :data:`SNIFF_BYTES` are read (opened without
following symlinks); symlinks are neither followed nor read.  A file counts
as readable by others when its mode grants "other" read, and a folder when it
grants "other" read and search.  Only folders holding recordings or personal
names, and those files themselves, are reported for their modes: a world-
readable tree of nothing sensitive is not a finding.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from callvault.core.errors import InvalidInput
from callvault.services.exposure.model import HIGH, MEDIUM, Budget, BudgetSpent, TargetResult, mask
from callvault.services.exposure.names import check_name, has_audio_extension
from callvault.services.exposure.ports import SNIFF_BYTES, Limits, Sniff, Tools

AUDIO = "audio-files"
_READABLE = "readable-by-others"


def read_head(path: Path) -> bytes | None:
    """The first bytes of a regular file, or ``None`` if it cannot be opened as one."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, SNIFF_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)


def is_vault_home(path: Path) -> bool:
    """A callvault home (``data/vault.db`` or ``keys/callvault.key``) or its data folder."""
    return (
        (path / "data" / "vault.db").exists()
        or (path / "keys" / "callvault.key").exists()
        or ((path / "vault.db").exists() and (path / "blobs").is_dir())
    )


@dataclass
class AudioFile:
    path: Path
    kind: str


def plaintext_audio(
    root: Path, sniff: Sniff, max_files: int, skip: frozenset[Path] = frozenset()
) -> tuple[list[AudioFile], bool]:
    """Audio files under ``root`` by content, not descending into ``skip``; the flag
    says the walk stopped at ``max_files``."""
    found: list[AudioFile] = []
    seen = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if Path(folder) / d not in skip)
        for name in sorted(files):
            seen += 1
            if seen > max_files:
                return found, True
            path = Path(folder) / name
            head = read_head(path)
            kind = sniff(head) if head else None
            if kind is not None:
                found.append(AudioFile(path, kind))
    return found, False


class DirectoryScan:
    def __init__(self, path: str, limits: Limits, tools: Tools) -> None:
        self.root = Path(path).expanduser().absolute()
        if not self.root.is_dir():
            raise InvalidInput("a directory target must be an existing folder")
        self.limits, self.tools = limits, tools
        # Local reads need no rate limit; the count still bounds the walk.
        self.budget = Budget(limits.max_requests, 1e9, tools.sleep, tools.monotonic)
        self.result = TargetResult(mask(str(self.root), tools.today), "directory")
        self.result.max_examples = limits.max_examples

    def _shown(self, path: Path) -> str:
        return mask(str(path.relative_to(self.root)), self.tools.today)

    def run(self) -> TargetResult:
        sensitive_dirs: set[Path] = set()
        try:
            for folder, dirs, files in os.walk(self.root, followlinks=False):
                here = Path(folder)
                depth = len(here.relative_to(self.root).parts)
                if depth >= self.limits.max_depth:
                    self.result.bump("folders_beyond_max_depth", len(dirs))
                    dirs.clear()
                dirs.sort()
                for name in dirs:
                    if check_name(self.result, name, self._shown(here / name), self.tools.today):
                        sensitive_dirs.add(here / name)
                for name in sorted(files):
                    if self._check_file(here / name, name):
                        sensitive_dirs.add(here)
        except BudgetSpent:
            self.result.error = (
                f"stopped after {self.budget.used} files (--max-requests); results are partial"
            )
        for sensitive in sorted(sensitive_dirs):
            self._check_mode(sensitive, folder_mode=True)
        self._near_vault()
        return self.result

    def _check_file(self, path: Path, name: str) -> bool:
        self.budget.spend()
        self.result.bump("files")
        sensitive = check_name(self.result, name, self._shown(path), self.tools.today)
        head = read_head(path)
        if head is None:
            self.result.bump("unreadable_or_special")
            return sensitive
        kind = self.tools.sniff(head)
        if kind is not None:
            sensitive = True
            self.result.bump(f"audio_{kind}")
            self.result.add(AUDIO, HIGH, "plaintext recordings stored here", self._shown(path))
            if not has_audio_extension(name):
                self.result.bump("audio_under_other_names")
        if sensitive:
            self._check_mode(path, folder_mode=False)
        return sensitive

    def _check_mode(self, path: Path, *, folder_mode: bool) -> None:
        try:
            mode = path.lstat().st_mode
        except OSError:
            return
        wanted = stat.S_IROTH | (stat.S_IXOTH if folder_mode else 0)
        if mode & wanted == wanted:
            self.result.add(
                _READABLE,
                MEDIUM,
                "recordings or personal names readable by every local user",
                self._shown(path) + ("/" if folder_mode else ""),
            )

    def _near_vault(self) -> None:
        if not self.result.has(AUDIO):
            return
        candidates = [self.root, *list(self.root.parents)[:3]]
        near = any(is_vault_home(c) for c in candidates)
        near = near or any(is_vault_home(p) for p in self.root.iterdir() if p.is_dir())
        if near:
            self.result.add(
                "plaintext-near-vault",
                HIGH,
                "plaintext recordings beside a callvault vault (import them, then remove them)",
                mask(str(self.root), self.tools.today),
            )
