"""What the exposure checks need from outside: an HTTP client, a content sniffer, time.

The scanner reaches other machines only through :class:`HttpClient`;
bootstrap (or the command line) hands in the stdlib adapter.  ``sniff`` is
the audio adapter's content check (``"wav"``, ``"mp3"`` or ``None`` from the
first bytes of a file), so a recording is known by what it holds, never by
its name.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

Sniff = Callable[[bytes], str | None]
#: Enough bytes for ``sniff`` (RIFF....WAVE, an ID3 header, an MPEG frame header).
SNIFF_BYTES = 64


class HttpAnswer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Lower-case header names."""

    @property
    def body(self) -> bytes:
        """At most the ``max_body`` first bytes."""

    @property
    def tls(self) -> bool: ...


class HttpClient(Protocol):
    def get(
        self, url: str, headers: dict[str, str] | None = None, max_body: int = 1 << 20
    ) -> HttpAnswer:
        """One anonymous GET, no redirects; ``OSError`` when no HTTP answer came."""

    def old_tls(self, host: str, port: int) -> str | None:
        """The protocol name if ``host:port`` agrees to TLS 1.1 or older, else ``None``."""


@dataclass(frozen=True)
class Limits:
    """Bounds of one scan: it is a check of the owner's own servers, not a crawler."""

    max_requests: int = 1000
    rate: float = 10.0  # requests (or files read) per second
    max_depth: int = 8
    max_examples: int = 5


@dataclass
class Tools:
    http: HttpClient
    sniff: Sniff
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
