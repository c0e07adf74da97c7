"""The import journal: what each source file has come to, durable line by line.

One file per import source under ``<vault home>/import/``, named by a keyed
hash of the source, holding one JSON line per step of a file::

    {"k": "<keyed hash of the relative path>", "s": "rejected|verified|done",
     "o": outcome, "r": reason, "b": bytes, "id": recording id, "x": originals}

No name, number or path is written in clear: a file is known only by an
HMAC of its relative path under a key derived from the vault's index key,
so the journal cannot be read back into names without the vault's keys.

Every line is appended with one ``write`` on an ``O_APPEND`` descriptor, so
worker processes can share the file; a kill -9 can tear only the last line,
which reading ignores.  The last line of a key wins.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REJECTED = "rejected"
VERIFIED = "verified"
DONE = "done"

_DOMAIN = b"callvault/import-journal/v1"


def journal_secret(index_key: bytes) -> bytes:
    """A key of its own for the journal, so its hashes match no blind index."""
    return hmac.new(index_key, _DOMAIN, hashlib.sha256).digest()


def keyed(secret: bytes, kind: str, text: str) -> str:
    data = kind.encode() + b"\x00" + text.encode("utf-8", "surrogateescape")
    return hmac.new(secret, data, hashlib.sha256).hexdigest()[:32]


def journal_path(home: Path, secret: bytes, source: str) -> Path:
    return home / "import" / f"{keyed(secret, 'source', source)}.journal"


@dataclass(frozen=True)
class Entry:
    key: str
    stage: str
    outcome: str
    reason: str = ""
    size: int = 0
    recording_id: str = ""
    originals: str = ""

    def to_line(self) -> bytes:
        record = {
            "k": self.key,
            "s": self.stage,
            "o": self.outcome,
            "r": self.reason,
            "b": self.size,
            "id": self.recording_id,
            "x": self.originals,
        }
        return (json.dumps(record, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Entry:
        return cls(
            key=str(record["k"]),
            stage=str(record["s"]),
            outcome=str(record["o"]),
            reason=str(record.get("r", "")),
            size=int(record.get("b", 0)),
            recording_id=str(record.get("id", "")),
            originals=str(record.get("x", "")),
        )


class Journal:
    """Appends entries; any number of processes may hold one on the same file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        self._fd = os.open(path, flags, 0o600)

    def append(self, entry: Entry) -> None:
        os.write(self._fd, entry.to_line())
        # Only ``verified`` must be on disk before the next step (an original is
        # then moved or shredded).  A lost ``done`` or ``rejected`` line costs a
        # re-run one more ingest, which finds the stored record: same end state.
        if entry.stage == VERIFIED:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_state(path: Path) -> dict[str, Entry]:
    """The latest entry of every key; a torn or foreign line is skipped."""
    state: dict[str, Entry] = {}
    for record in _records(path):
        try:
            entry = Entry.from_record(record)
        except (KeyError, TypeError, ValueError):
            continue
        state[entry.key] = entry
    return state


def _records(path: Path) -> Iterator[Mapping[str, Any]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for line in data.split(b"\n"):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record
