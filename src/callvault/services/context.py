"""What every use case needs, wired once by bootstrap."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from callvault.core.ports import BlobStore, Clock, KeyProvider, MetadataStore


class AudioFacts(Protocol):
    """What the audio probe learned from decoding a whole input file."""

    @property
    def media_type(self) -> str: ...

    @property
    def container(self) -> str: ...

    @property
    def codec(self) -> str: ...

    @property
    def sample_rate(self) -> int: ...

    @property
    def channels(self) -> int: ...

    @property
    def frames(self) -> int: ...

    @property
    def duration_seconds(self) -> float: ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def peaks(self) -> bytes: ...


class AudioProbe(Protocol):
    def __call__(self, path: Path | BinaryIO, *, max_bytes: int) -> AudioFacts:
        """Decode the whole file (a path, or a seekable binary file object read
        from its start); ``UnsupportedAudio`` for anything we refuse."""
        ...


@dataclass
class Vault:
    """The ports and settings a use case runs against."""

    store: MetadataStore
    blobs: BlobStore
    keys: KeyProvider
    clock: Clock
    probe: AudioProbe
    origin: str
    max_ingest_bytes: int = 4 * 1024**3
    _bucket_kek_cache: dict[int, bytes] = field(default_factory=dict, repr=False)

    def now(self) -> dt.datetime:
        return self.clock.now()

    def close(self) -> None:
        self._bucket_kek_cache.clear()
        self.store.close()
