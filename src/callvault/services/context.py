"""What every use case needs, wired once by bootstrap."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from callvault.core.ports import (
    BlobStore,
    Clock,
    JobDataRepo,
    JobQueue,
    KeyProvider,
    MetadataStore,
)
from callvault.services.play_cache import PlayCache


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
    play_cache: PlayCache = field(default_factory=PlayCache, repr=False)
    # Background jobs (docs/jobs.md); None where no queue is wired.
    jobs: JobQueue | None = field(default=None, repr=False)
    job_data: JobDataRepo | None = field(default=None, repr=False)

    def now(self) -> dt.datetime:
        return self.clock.now()

    def close(self) -> None:
        self._bucket_kek_cache.clear()
        self.play_cache.clear()
        try:
            if self.jobs is not None:
                self.jobs.close()
            self.store.close()
        finally:
            # Stores that hold connections (S3's pool) release them; local ones have nothing.
            close = getattr(self.blobs, "close", None)
            if callable(close):
                close()
