"""Conformance suite that every :class:`~callvault.core.ports.BlobStore` must pass.

Subclass :class:`BlobStoreConformance` in a test module and override the
``make_store`` fixture.  It returns a zero-argument factory; every call opens
a new handle onto the *same* backend, which starts empty for each test::

    class TestLocalBlobStore(BlobStoreConformance):
        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda: LocalBlobStore(tmp_path / "blobs")

Being a fixture, ``make_store`` can depend on any other fixture (a temp
directory, a running S3 server).  The suite itself assumes no filesystem:
it talks to stores only through the port.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from callvault.core.errors import AlreadyExists, InvalidInput, NotFound
from callvault.core.ports import BlobStore
from callvault.core.recordings import new_object_name

StoreFactory = Callable[[], BlobStore]

KIB = 1024
MIB = 1024 * KIB

HOSTILE_NAMES: list[Any] = [
    "../x",
    "/etc/passwd",
    "AB..",
    "AB" + "0" * 30,  # uppercase hex: an alias on case-insensitive filesystems
    "0" * 31,
    "0" * 33,
    "",
    "0" * 31 + "\x00",
    "0" * 32 + "\x00",
    "0" * 32 + "\n",  # slips past a regex anchored with '$'
    "../" + "0" * 29,
    "0" * 15 + "/" + "0" * 16,
    "./" + "0" * 30,
    "g" * 32,
    " " + "0" * 31,
    "\u0661" * 32,  # Arabic-Indic digit one: a Unicode digit, not ASCII hex
    "\uff10" * 32,  # full-width zero
    "é" * 32,
    b"0" * 32,
    None,
    12345,
]

# Each call must raise before doing any I/O; ``put`` gets a tripwire iterator.
MethodCall = Callable[[BlobStore, Any, Iterable[bytes]], object]
METHODS: dict[str, MethodCall] = {
    "put": lambda store, name, chunks: store.put(name, chunks),
    "read": lambda store, name, _chunks: store.read(name, 0, 1),
    "size": lambda store, name, _chunks: store.size(name),
    "delete": lambda store, name, _chunks: store.delete(name),
}


class ProducerFailed(Exception):
    """Raised by a test's chunk iterator; must reach the caller unchanged."""


class Tripwire:
    """An iterable that records whether anyone started iterating it."""

    def __init__(self) -> None:
        self.touched = False

    def __iter__(self) -> Iterator[bytes]:
        self.touched = True
        yield b"should never be stored"


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def failing_after(data: bytes, chunks: int = 3) -> Iterator[bytes]:
    yield from list(chunked(data, max(1, len(data) // chunks)))[: chunks - 1]
    raise ProducerFailed("producer broke part-way")


def hostile_id(value: object) -> str:
    return repr(value)[:24]


class BlobStoreConformance:
    """Behaviour every BlobStore adapter shares; see the module docstring."""

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        pytest.fail("a BlobStoreConformance subclass must override the make_store fixture")

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> BlobStore:
        return make_store()

    # -- shape ---------------------------------------------------------------

    def test_store_satisfies_the_blobstore_protocol(self, store: BlobStore) -> None:
        assert isinstance(store, BlobStore)

    # -- put and read --------------------------------------------------------

    def test_put_returns_size_and_read_returns_whole_object(self, store: BlobStore) -> None:
        name, data = new_object_name(), payload(100_000)
        assert store.put(name, chunked(data, 7_000)) == len(data)
        assert store.read(name, 0, len(data)) == data

    def test_read_returns_exactly_the_requested_ranges(self, store: BlobStore) -> None:
        name, data = new_object_name(), payload(200_000, seed=1)
        store.put(name, chunked(data, 65_536))
        ranges = [(0, 1), (1, 1), (65_535, 2), (65_536, 65_536), (12_345, 100_000), (199_999, 1)]
        for offset, length in ranges:
            assert store.read(name, offset, length) == data[offset : offset + length]

    def test_read_at_or_past_end_returns_empty(self, store: BlobStore) -> None:
        name, data = new_object_name(), payload(1_000)
        store.put(name, [data])
        assert store.read(name, len(data), 10) == b""
        assert store.read(name, len(data) + 1, 10) == b""
        assert store.read(name, 10**12, 10) == b""

    def test_read_across_end_returns_short_result(self, store: BlobStore) -> None:
        name, data = new_object_name(), payload(1_000)
        store.put(name, [data])
        assert store.read(name, 997, 10) == data[997:]

    def test_read_of_zero_length_returns_empty(self, store: BlobStore) -> None:
        name = new_object_name()
        store.put(name, [b"abc"])
        assert store.read(name, 1, 0) == b""

    def test_huge_length_returns_rest_of_object(self, store: BlobStore) -> None:
        name, data = new_object_name(), payload(5_000)
        store.put(name, [data])
        assert store.read(name, 100, 2**62) == data[100:]

    def test_size_reports_object_length(self, store: BlobStore) -> None:
        name, data = new_object_name(), payload(12_345)
        store.put(name, chunked(data, 1_000))
        assert store.size(name) == 12_345

    def test_put_accepts_bytes_bytearray_memoryview_and_empty_chunks(
        self, store: BlobStore
    ) -> None:
        name = new_object_name()
        chunks: list[Any] = [b"ab", b"", bytearray(b"cd"), memoryview(b"xefx")[1:3], b"g"]
        assert store.put(name, chunks) == 7
        assert store.read(name, 0, 100) == b"abcdefg"

    def test_empty_object_round_trips(self, store: BlobStore) -> None:
        name = new_object_name()
        assert store.put(name, []) == 0
        assert store.size(name) == 0
        assert store.read(name, 0, 10) == b""
        assert name in set(store.names())

    def test_large_object_streams_in_many_chunks(self, store: BlobStore) -> None:
        name, chunk_size, count = new_object_name(), 64 * KIB, 320  # 20 MiB
        written = hashlib.sha256()

        def produce() -> Iterator[bytes]:
            # Generated on the fly so the test itself never holds the object.
            rng = random.Random(20)
            for _ in range(count):
                chunk = rng.randbytes(chunk_size)
                written.update(chunk)
                yield chunk

        assert store.put(name, produce()) == chunk_size * count
        assert store.size(name) == chunk_size * count
        read_back = hashlib.sha256()
        for offset in range(0, chunk_size * count, MIB):
            read_back.update(store.read(name, offset, MIB))
        assert read_back.digest() == written.digest()

    # -- never overwritten, never half-stored -------------------------------

    def test_second_put_raises_already_exists_and_keeps_first(self, store: BlobStore) -> None:
        name, first = new_object_name(), payload(3_000, seed=1)
        store.put(name, [first])
        with pytest.raises(AlreadyExists):
            store.put(name, [payload(5_000, seed=2)])
        assert store.size(name) == len(first)
        assert store.read(name, 0, 10_000) == first

    def test_failing_iterator_stores_nothing_and_propagates(self, store: BlobStore) -> None:
        name = new_object_name()
        with pytest.raises(ProducerFailed):
            store.put(name, failing_after(payload(300_000)))
        with pytest.raises(NotFound):
            store.size(name)
        with pytest.raises(NotFound):
            store.read(name, 0, 1)
        assert list(store.names()) == []

    def test_failed_put_leaves_name_free_for_retry(self, store: BlobStore) -> None:
        name, data = new_object_name(), payload(10_000)
        with pytest.raises(ProducerFailed):
            store.put(name, failing_after(data))
        assert store.put(name, chunked(data, 4_096)) == len(data)
        assert store.read(name, 0, len(data)) == data

    def test_non_bytes_chunk_raises_invalid_input_and_stores_nothing(
        self, store: BlobStore
    ) -> None:
        name = new_object_name()
        chunks: list[Any] = [b"fine", "not bytes"]
        with pytest.raises(InvalidInput):
            store.put(name, chunks)
        assert list(store.names()) == []

    def test_discard_incomplete_keeps_complete_objects(self, store: BlobStore) -> None:
        kept, lost = new_object_name(), new_object_name()
        store.put(kept, [b"complete"])
        with pytest.raises(ProducerFailed):
            store.put(lost, failing_after(payload(1_000)))
        assert store.discard_incomplete() >= 0
        assert store.read(kept, 0, 100) == b"complete"
        assert set(store.names()) == {kept}

    # -- delete and names ----------------------------------------------------

    def test_delete_removes_object(self, store: BlobStore) -> None:
        name = new_object_name()
        store.put(name, [b"x"])
        store.delete(name)
        with pytest.raises(NotFound):
            store.read(name, 0, 1)
        assert name not in set(store.names())

    def test_delete_is_idempotent(self, store: BlobStore) -> None:
        name = new_object_name()
        store.put(name, [b"x"])
        store.delete(name)
        store.delete(name)
        store.delete(new_object_name())  # never existed
        with pytest.raises(NotFound):
            store.size(name)

    def test_delete_touches_only_the_named_object(self, store: BlobStore) -> None:
        doomed, other = new_object_name(), new_object_name()
        store.put(doomed, [b"doomed"])
        store.put(other, [b"other"])
        store.delete(doomed)
        assert store.read(other, 0, 10) == b"other"

    def test_names_of_empty_store_is_empty(self, store: BlobStore) -> None:
        assert list(store.names()) == []

    def test_names_lists_exactly_the_stored_objects(self, store: BlobStore) -> None:
        stored = {new_object_name() for _ in range(12)}
        for name in stored:
            store.put(name, [name.encode()])
        removed = sorted(stored)[0]
        store.delete(removed)
        listed = list(store.names())
        assert len(listed) == len(stored) - 1
        assert set(listed) == stored - {removed}

    # -- hostile input -------------------------------------------------------

    @pytest.mark.parametrize("method", sorted(METHODS))
    @pytest.mark.parametrize("name", HOSTILE_NAMES, ids=hostile_id)
    def test_hostile_name_raises_invalid_input_before_any_io(
        self, store: BlobStore, method: str, name: Any
    ) -> None:
        tripwire = Tripwire()
        with pytest.raises(InvalidInput):
            METHODS[method](store, name, tripwire)
        assert not tripwire.touched
        assert list(store.names()) == []

    def test_uppercase_alias_of_stored_object_is_refused(self, store: BlobStore) -> None:
        name = "ab" * 16
        store.put(name, [b"secret"])
        for call in METHODS.values():
            with pytest.raises(InvalidInput):
                call(store, name.upper(), Tripwire())
        assert store.read(name, 0, 10) == b"secret"

    def test_missing_object_raises_not_found_without_naming_it(self, store: BlobStore) -> None:
        name = new_object_name()
        with pytest.raises(NotFound) as read_error:
            store.read(name, 0, 1)
        with pytest.raises(NotFound) as size_error:
            store.size(name)
        for error in (read_error.value, size_error.value):
            assert name not in str(error)

    @pytest.mark.parametrize(("offset", "length"), [(-1, 1), (0, -1), (-5, -5)])
    def test_negative_offset_or_length_raises_invalid_input(
        self, store: BlobStore, offset: int, length: int
    ) -> None:
        name = new_object_name()
        store.put(name, [b"0123456789"])
        with pytest.raises(InvalidInput):
            store.read(name, offset, length)
        # Checked before the lookup, so a missing object gives the same answer.
        with pytest.raises(InvalidInput):
            store.read(new_object_name(), offset, length)

    @pytest.mark.parametrize(("offset", "length"), [(1.0, 1), (0, "1"), (True, 1), (0, None)])
    def test_non_integer_offset_or_length_raises_invalid_input(
        self, store: BlobStore, offset: Any, length: Any
    ) -> None:
        name = new_object_name()
        store.put(name, [b"0123456789"])
        with pytest.raises(InvalidInput):
            store.read(name, offset, length)

    # -- sharing ---------------------------------------------------------------

    def test_second_handle_sees_objects_of_the_first(self, make_store: StoreFactory) -> None:
        first = make_store()
        name = new_object_name()
        first.put(name, [b"shared"])
        second = make_store()
        assert second.read(name, 0, 10) == b"shared"
        assert set(second.names()) == {name}
        with pytest.raises(AlreadyExists):
            second.put(name, [b"other"])

    def test_concurrent_puts_of_distinct_names_all_land(self, store: BlobStore) -> None:
        objects = {new_object_name(): payload(50_000, seed=i) for i in range(32)}

        def put(item: tuple[str, bytes]) -> int:
            return store.put(item[0], chunked(item[1], 8_192))

        with ThreadPoolExecutor(max_workers=8) as pool:
            sizes = list(pool.map(put, objects.items()))
        assert sizes == [50_000] * len(objects)
        assert set(store.names()) == set(objects)
        for name, data in objects.items():
            assert store.read(name, 0, len(data)) == data

    def test_concurrent_puts_of_one_name_store_exactly_one(self, store: BlobStore) -> None:
        name, contenders = new_object_name(), 8
        start = threading.Barrier(contenders)
        winners: list[bytes] = []

        def put(seed: int) -> None:
            data = payload(40_000, seed=seed)
            start.wait()
            try:
                store.put(name, chunked(data, 4_096))
            except AlreadyExists:
                return
            winners.append(data)

        with ThreadPoolExecutor(max_workers=contenders) as pool:
            list(pool.map(put, range(contenders)))
        assert len(winners) == 1
        assert store.read(name, 0, 100_000) == winners[0]
        assert list(store.names()) == [name]
