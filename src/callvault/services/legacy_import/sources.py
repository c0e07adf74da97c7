"""Where an import reads from: a directory tree, or an exposed web server's listings.

Both give the same ``SourceFile`` list, in a stable order (sorted paths), so
the index of a file is the same in every run over an unchanged source and
can stand in for its name in reports.

A directory walk never follows symbolic links (a link could lead out of the
tree) and reports what it cannot take instead of stopping.  A listing walk
reads nginx and Apache autoindex pages and follows only links that stay
below the starting URL; it never writes anything to disk.
"""

from __future__ import annotations

import html.parser
import os
import stat
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from callvault.core.errors import InvalidInput

CHUNK = 1024 * 1024
HTTP_TIMEOUT = 30.0
MAX_LISTING_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """One file of the source: ``location`` is a local path or a URL."""

    index: int
    relative: str
    location: str
    size: int | None
    is_url: bool
    problem: tuple[str, str] | None = None  # (reason, message) found while walking


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def walk(source: str) -> list[SourceFile]:
    """Every file under ``source`` (a directory or an http(s) listing URL)."""
    found = list(_walk_url(source) if is_url(source) else _walk_dir(Path(source)))
    found.sort(key=lambda f: f.relative)
    return [
        SourceFile(i, f.relative, f.location, f.size, f.is_url, f.problem)
        for i, f in enumerate(found)
    ]


# --- directories ----------------------------------------------------------------------


def _walk_dir(root: Path) -> Iterator[SourceFile]:
    if not root.is_dir():
        raise InvalidInput("the import source is not a directory or an http(s) URL")
    problems: list[OSError] = []
    for folder, dirs, files in os.walk(root, onerror=problems.append, followlinks=False):
        base = Path(folder)
        dirs.sort()
        for name in [*files, *(d for d in dirs if (base / d).is_symlink())]:
            yield _dir_entry(root, base / name)
    for error in problems:
        where = Path(error.filename) if error.filename else root
        rel = where.relative_to(root).as_posix() if where != root else "."
        yield SourceFile(
            0, rel + "/", str(where), None, False, ("unreadable", "cannot list folder")
        )


def _dir_entry(root: Path, path: Path) -> SourceFile:
    rel = path.relative_to(root).as_posix()
    try:
        info = path.lstat()
    except OSError:
        return SourceFile(0, rel, str(path), None, False, ("unreadable", "cannot stat file"))
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = ("symlink", "symbolic links are not followed")
    elif not stat.S_ISREG(info.st_mode):
        problem = ("not_a_file", "not a regular file")
    elif info.st_size == 0:
        problem = ("empty", "zero-length file")
    return SourceFile(0, rel, str(path), info.st_size, False, problem)


# --- web listings ---------------------------------------------------------------------


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def _walk_url(base: str) -> Iterator[SourceFile]:
    if not base.endswith("/"):
        base += "/"
    parsed = urllib.parse.urlsplit(base)
    if parsed.query or parsed.fragment or not parsed.netloc:
        raise InvalidInput("the listing URL must be a plain http(s) folder URL")
    pending, seen = [base], {base}
    while pending:
        folder = pending.pop()
        for href in _links(folder):
            target = urllib.parse.urljoin(folder, href)
            split = urllib.parse.urlsplit(target)
            if split.query or split.fragment or not target.startswith(base) or target in seen:
                continue  # sort links (?C=N;O=D), parents and other hosts
            seen.add(target)
            rel = urllib.parse.unquote(target[len(base) :])
            if not rel or "\x00" in rel or any(p in ("..", ".") for p in rel.split("/")):
                continue
            if target.endswith("/"):
                pending.append(target)
            else:
                yield SourceFile(0, rel, target, None, True)


def _links(url: str) -> list[str]:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            body = response.read(MAX_LISTING_BYTES)
            charset = response.headers.get_content_charset() or "utf-8"
    except (urllib.error.URLError, OSError, ValueError):
        raise InvalidInput("cannot read the listing at the source URL") from None
    parser = _Links()
    parser.feed(body.decode(charset, errors="replace"))
    return parser.hrefs


def open_url(url: str) -> Iterator[bytes]:
    """The body of ``url`` in chunks, straight from the socket (never to disk)."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            while chunk := response.read(CHUNK):
                yield chunk
    except (urllib.error.URLError, OSError) as exc:
        raise OSError("download failed") from exc


def read_file(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
