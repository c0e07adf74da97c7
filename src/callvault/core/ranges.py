"""HTTP ``Range`` requests for one representation of known size (RFC 9110 §14).

Exactly one byte range is served per request; what the vault does with every
other ``Range`` header::

    header                      answer
    (none)                      200, the whole representation
    bytes=0-499                 206, bytes 0..499 (a last position past the end is clipped)
    bytes=500-                  206, from 500 to the end
    bytes=-500                  206, the last 500 bytes (all of them if there are fewer)
    bytes=N- / bytes=N-M        416 if N is at or past the end (Content-Range: bytes */size)
    bytes=-0                    416 (an empty suffix selects nothing)
    bytes=0-1,5-9               416: several ranges are never served (no multipart/byteranges)
    bytes=5-2, bytes=abc,       400: malformed
    items=0-1, bytes=           400: malformed (an unknown unit is refused, not ignored)

RFC 9110 lets a server ignore a Range it does not understand and send the
whole representation; the vault refuses instead, so a client that asked for
a slice never receives more audio than it asked for.  Numbers may be as long
as the header allows (``MAX_HEADER_LENGTH``): a last position beyond the end
is clipped, a first position beyond the end is unsatisfiable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from callvault.core.errors import InvalidInput, RangeNotSatisfiable

MAX_HEADER_LENGTH = 256
_UNIT = "bytes"
# ASCII digits only: str.isdigit() would also accept other scripts' digits.
_SPEC = re.compile(r"\A([0-9]*)-([0-9]*)\Z")


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``[start, stop)`` of a representation of ``size`` bytes; never empty."""

    start: int
    stop: int
    size: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop <= self.size:
            raise InvalidInput("byte range out of bounds")

    @property
    def length(self) -> int:
        return self.stop - self.start

    def content_range(self) -> str:
        """The ``Content-Range`` value of a 206 answer: ``bytes first-last/size``."""
        return f"bytes {self.start}-{self.stop - 1}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single range ``header`` asks for, or None for the whole representation.

    Raises ``InvalidInput`` (400) for a malformed header and
    ``RangeNotSatisfiable`` (416, carrying ``size``) for a well-formed one the
    vault will not serve; the table in the module docstring is the contract.
    Messages never quote the header.
    """
    if size < 0:
        raise InvalidInput("negative representation size")
    if header is None:
        return None
    if len(header) > MAX_HEADER_LENGTH:
        raise InvalidInput("malformed Range header")
    unit, sep, spec_list = header.strip().partition("=")
    if not sep or unit.strip().lower() != _UNIT:
        raise InvalidInput("malformed Range header")
    # A list may hold empty elements and spaces around commas (RFC 9110 §5.6.1).
    specs = [part.strip() for part in spec_list.split(",") if part.strip()]
    if not specs:
        raise InvalidInput("malformed Range header")
    bounds = [_bounds(spec) for spec in specs]
    if len(bounds) > 1:
        raise RangeNotSatisfiable(size)
    first, last = bounds[0]
    return _resolve(first, last, size)


def _bounds(spec: str) -> tuple[int | None, int | None]:
    """``(first, last)`` of one range spec; ``first`` None means a suffix length in ``last``."""
    match = _SPEC.match(spec)
    if not match or match.group(0) == "-":
        raise InvalidInput("malformed Range header")
    first_text, last_text = match.groups()
    first = int(first_text) if first_text else None
    last = int(last_text) if last_text else None
    if first is not None and last is not None and last < first:
        raise InvalidInput("malformed Range header")
    return first, last


def _resolve(first: int | None, last: int | None, size: int) -> ByteRange:
    if first is None:
        assert last is not None  # "-" alone was refused by _bounds
        if last == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(size - last, 0), size, size)
    if first >= size:
        raise RangeNotSatisfiable(size)
    stop = size if last is None else min(last + 1, size)
    return ByteRange(first, stop, size)
