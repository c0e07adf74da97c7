"""BlobStore in process memory, for tests and throw-away demos.

Same contract as every other adapter: names validated before anything else,
an object exists only once its iterator is exhausted, never overwritten.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from callvault.core.errors import AlreadyExists, InvalidInput, NotFound
from callvault.core.recordings import validate_object_name


class MemoryBlobStore:
    """A :class:`callvault.core.ports.BlobStore` backed by a dict; thread-safe."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryBlobStore()"

    def put(self, name: str, chunks: Iterable[bytes]) -> int:
        validate_object_name(name)
        with self._lock:
            if name in self._objects:
                raise AlreadyExists("object")
        # Chunks are drawn outside the lock: a slow producer must not stall
        # other callers, and the object is only inserted once it is whole.
        buffer = bytearray()
        for chunk in chunks:
            buffer += _byte_view(chunk)
        data = bytes(buffer)
        del buffer
        with self._lock:
            if name in self._objects:
                raise AlreadyExists("object")
            self._objects[name] = data
        return len(data)

    def read(self, name: str, offset: int, length: int) -> bytes:
        validate_object_name(name)
        _check_range(offset, length)
        data = self._get(name)
        return data[offset : offset + length]

    def size(self, name: str) -> int:
        validate_object_name(name)
        return len(self._get(name))

    def delete(self, name: str) -> None:
        validate_object_name(name)
        with self._lock:
            self._objects.pop(name, None)

    def names(self) -> Iterator[str]:
        with self._lock:
            snapshot = list(self._objects)
        return iter(snapshot)

    def discard_incomplete(self) -> int:
        # Incomplete puts never reach the dict, so there is nothing to discard.
        return 0

    def _get(self, name: str) -> bytes:
        with self._lock:
            try:
                return self._objects[name]
            except KeyError:
                raise NotFound("object") from None


def _byte_view(chunk: object) -> memoryview:
    if not isinstance(chunk, bytes | bytearray | memoryview):
        raise InvalidInput("object chunks must be bytes")
    try:
        return memoryview(chunk).cast("B")
    except TypeError:
        raise InvalidInput("object chunks must be contiguous bytes") from None


def _check_range(offset: int, length: int) -> None:
    for value in (offset, length):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput("offset and length must be integers")
        if value < 0:
            raise InvalidInput("offset and length must not be negative")
