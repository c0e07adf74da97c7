"""Blob stores: the shared conformance suite on every adapter, then local-only checks."""

from __future__ import annotations

import os
import shutil
import stat
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callvault.adapters.blobstore import (
    LocalBlobStore,
    MemoryBlobStore,
    local,
    open_blobstore,
)
from callvault.adapters.blobstore.s3 import S3BlobStore
from callvault.core.errors import AlreadyExists, ConfigError, InvalidInput, NotFound, StorageError
from callvault.core.recordings import new_object_name
from callvault.testing.blobstore import (
    HOSTILE_NAMES,
    METHODS,
    BlobStoreConformance,
    ProducerFailed,
    StoreFactory,
    Tripwire,
    chunked,
    failing_after,
    hostile_id,
    payload,
)
from callvault.testing.seaweedfs import SeaweedFS


class TestMemoryBlobStore(BlobStoreConformance):
    @pytest.fixture
    def make_store(self) -> StoreFactory:
        store = MemoryBlobStore()  # one process, one dict: every handle is the same
        return lambda: store


class TestLocalBlobStore(BlobStoreConformance):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        return lambda: LocalBlobStore(tmp_path / "blobs")


@pytest.fixture(scope="module")
def s3_bucket(seaweedfs: SeaweedFS) -> str:
    return seaweedfs.make_bucket()


class TestS3BlobStore(BlobStoreConformance):
    """The same contract on SeaweedFS's S3 gateway: one bucket, a fresh prefix per test."""

    @pytest.fixture
    def make_store(self, seaweedfs: SeaweedFS, s3_bucket: str) -> Iterator[StoreFactory]:
        prefix = f"t{new_object_name()[:12]}/"
        opened: list[S3BlobStore] = []

        def make() -> S3BlobStore:
            opened.append(seaweedfs.blobstore(s3_bucket, prefix))
            return opened[-1]

        yield make
        for store in opened:
            store.close()  # pooled connections, else ResourceWarnings at some later GC


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def store(root: Path) -> LocalBlobStore:
    return LocalBlobStore(root)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def temp_files(root: Path) -> list[str]:
    return os.listdir(root / "tmp")


# -- permissions and refusing unsafe roots -----------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_files_are_0600_and_directories_0700_whatever_the_umask(root: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        store = LocalBlobStore(root)
        name = new_object_name()
        store.put(name, [b"ciphertext"])
    finally:
        os.umask(old)
    for directory in (root, root / "objects", root / "tmp", root / "objects" / name[:2]):
        assert mode_of(directory) == 0o700, directory
    assert mode_of(root / "objects" / name[:2] / name) == 0o600


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o701, 0o770, 0o777])
def test_refuses_root_open_to_group_or_others(root: Path, mode: int) -> None:
    root.mkdir()
    root.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 700"):
        LocalBlobStore(root)


def test_refuses_root_that_is_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(ConfigError, match="symbolic link"):
        LocalBlobStore(link)


def test_refuses_dangling_symlink_root(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="symbolic link"):
        LocalBlobStore(link)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("subdir", ["objects", "tmp"])
def test_refuses_symlinked_subdirectory(root: Path, tmp_path: Path, subdir: str) -> None:
    LocalBlobStore(root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    shutil.rmtree(root / subdir)
    (root / subdir).symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="symbolic link"):
        LocalBlobStore(root)


def test_refuses_root_that_is_a_file(root: Path) -> None:
    root.write_bytes(b"")
    with pytest.raises(ConfigError, match="not a directory"):
        LocalBlobStore(root)


def test_refuses_relative_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="absolute"):
        LocalBlobStore(Path("blobs"))
    assert not (tmp_path / "blobs").exists()


def test_refuses_root_whose_parent_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="parent directory does not exist"):
        LocalBlobStore(tmp_path / "missing" / "blobs")


def test_refuses_root_owned_by_another_user(root: Path) -> None:
    root.mkdir(mode=0o700)
    os.chown(root, 65534, 65534)
    if os.lstat(root).st_uid == os.geteuid():
        pytest.fail("test needs to run as root to give the directory away")
    with pytest.raises(ConfigError, match="another user"):
        LocalBlobStore(root)


# -- crashes and interrupted puts ----------------------------------------------


def test_crash_leftover_is_not_listed_and_is_discarded(root: Path, store: LocalBlobStore) -> None:
    kept = new_object_name()
    store.put(kept, [b"complete"])
    leftover = root / "tmp" / "deadbeef"
    leftover.write_bytes(b"half an object")
    (root / "tmp" / new_object_name()).write_bytes(b"looks like a name")
    assert list(store.names()) == [kept]
    assert store.discard_incomplete() == 2
    assert temp_files(root) == []
    assert store.read(kept, 0, 100) == b"complete"


def test_crash_between_link_and_unlink_keeps_object(root: Path, store: LocalBlobStore) -> None:
    name = new_object_name()
    store.put(name, [b"published"])
    # The temp name of a put that died after linking is a second link to the object.
    os.link(root / "objects" / name[:2] / name, root / "tmp" / "orphan")
    assert store.discard_incomplete() == 1
    assert store.read(name, 0, 100) == b"published"


def test_discard_incomplete_spares_a_put_in_flight(root: Path, store: LocalBlobStore) -> None:
    name, data = new_object_name(), payload(200_000)
    discarded: list[int] = []

    def produce() -> Iterator[bytes]:
        pieces = list(chunked(data, 50_000))
        yield pieces[0]
        discarded.append(store.discard_incomplete())  # as if from another process
        yield from pieces[1:]

    assert store.put(name, produce()) == len(data)
    assert discarded == [0]
    assert store.read(name, 0, len(data)) == data
    assert temp_files(root) == []


def test_interrupted_put_leaves_tmp_empty(root: Path, store: LocalBlobStore) -> None:
    with pytest.raises(ProducerFailed):
        store.put(new_object_name(), failing_after(payload(500_000)))
    assert temp_files(root) == []
    assert os.listdir(root / "objects") == []


def test_put_of_taken_name_is_refused_before_reading_chunks(store: LocalBlobStore) -> None:
    name = new_object_name()
    store.put(name, [b"first"])
    tripwire = Tripwire()
    with pytest.raises(AlreadyExists):
        store.put(name, tripwire)
    assert not tripwire.touched


def test_successful_put_leaves_tmp_empty(root: Path, store: LocalBlobStore) -> None:
    store.put(new_object_name(), chunked(payload(100_000), 10_000))
    assert temp_files(root) == []


def test_disk_error_becomes_storage_error_and_leaves_nothing(
    root: Path, store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int, view: memoryview) -> None:
        raise OSError(28, "No space left on device", str(root / "tmp" / "x"))

    monkeypatch.setattr(local, "_write_all", disk_full)
    name = new_object_name()
    with pytest.raises(StorageError) as error:
        store.put(name, [b"ciphertext"])
    assert "No space left" in str(error.value)
    assert str(root) not in str(error.value)
    assert temp_files(root) == []
    assert list(store.names()) == []


def test_put_streams_without_holding_the_object_in_memory(store: LocalBlobStore) -> None:
    chunk, count = payload(64 * 1024), 320  # 20 MiB through one reused chunk

    tracemalloc.start()
    try:
        store.put(new_object_name(), (chunk for _ in range(count)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, peak


# -- durability across handles, stray files -----------------------------------


def test_objects_are_found_after_reopening(root: Path) -> None:
    objects = {new_object_name(): payload(10_000, seed=i) for i in range(5)}
    first = LocalBlobStore(root)
    for name, data in objects.items():
        first.put(name, [data])
    del first
    reopened = LocalBlobStore(root)
    assert set(reopened.names()) == set(objects)
    for name, data in objects.items():
        assert reopened.read(name, 0, len(data)) == data


def test_names_ignores_stray_entries(root: Path, store: LocalBlobStore, tmp_path: Path) -> None:
    real = new_object_name()
    store.put(real, [b"real"])
    objects = root / "objects"
    other = new_object_name()
    wrong_fanout = "00" if not other.startswith("00") else "ff"
    (objects / "README").write_text("stray")
    (objects / "zz").mkdir()
    (objects / "zz" / ("zz" + "0" * 30)).write_bytes(b"")
    (objects / "AB").mkdir()
    (objects / "AB" / ("AB" + "0" * 30)).write_bytes(b"")
    (objects / wrong_fanout).mkdir(exist_ok=True)
    (objects / wrong_fanout / other).write_bytes(b"misplaced")
    (objects / real[:2] / (real[:31])).write_bytes(b"short")
    (objects / real[:2] / (real + ".bak")).write_bytes(b"backup")
    (objects / real[:2] / (real[:2] + "1" * 30)).mkdir()
    (tmp_path / "target").write_bytes(b"outside")
    (objects / real[:2] / (real[:2] + "2" * 30)).symlink_to(tmp_path / "target")
    linked = "cd" if real[:2] != "cd" else "ce"
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / (linked + "3" * 30)).write_bytes(b"outside")
    (objects / linked).symlink_to(tmp_path / "outside")
    assert list(store.names()) == [real]


def test_planted_symlink_is_not_followed(root: Path, store: LocalBlobStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"outside the store")
    name = new_object_name()
    (root / "objects" / name[:2]).mkdir(mode=0o700)
    (root / "objects" / name[:2] / name).symlink_to(secret)
    with pytest.raises(StorageError):
        store.read(name, 0, 100)
    with pytest.raises(StorageError):
        store.size(name)


def test_hostile_names_are_refused_before_touching_the_disk(root: Path) -> None:
    store = LocalBlobStore(root)
    shutil.rmtree(root)  # any I/O would now fail with NotFound or StorageError
    for name in HOSTILE_NAMES:
        for method, call in METHODS.items():
            with pytest.raises(InvalidInput):
                call(store, name, Tripwire())
            assert not root.exists(), (method, hostile_id(name))


def test_missing_store_directory_is_a_storage_error_not_oserror(root: Path) -> None:
    store = LocalBlobStore(root)
    shutil.rmtree(root)
    with pytest.raises(StorageError):
        store.put(new_object_name(), [b"x"])
    with pytest.raises(StorageError):
        list(store.names())
    with pytest.raises(NotFound):
        store.read(new_object_name(), 0, 1)


# -- open_blobstore -------------------------------------------------------------


def test_open_file_url_gives_local_store(tmp_path: Path) -> None:
    store = open_blobstore((tmp_path / "blobs").as_uri())
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "blobs"


def test_open_file_url_decodes_percent_escapes(tmp_path: Path) -> None:
    store = open_blobstore(f"file://{tmp_path}/call%20vault")
    assert isinstance(store, LocalBlobStore)
    assert (tmp_path / "call vault").is_dir()


@pytest.mark.parametrize("url", ["memory:", "memory://", "MEMORY:"])
def test_open_memory_url_gives_memory_store(url: str) -> None:
    assert isinstance(open_blobstore(url), MemoryBlobStore)


def test_open_s3_url_with_credentials_in_it_is_refused_without_echoing_them() -> None:
    url = "s3://AKIDEXAMPLE:wJalrXUtnFEMI@bucket?endpoint=http://127.0.0.1:8333"
    with pytest.raises(ConfigError, match="must not carry credentials") as error:
        open_blobstore(url)
    assert "wJalrXUtnFEMI" not in str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "file:blobs",
        "file://blobs",
        "file://host/var/lib/blobs",
        "file:///var/lib/../../etc",
        "file:///var/lib/./blobs",
        "file:///var/lib/blobs%00x",
        "file:///var/lib/blobs?mode=777",
        "memory:extra",
        "http://example.org/blobs",
        "ftp://user:hunter2@example.org/",
        "/var/lib/blobs",
        "blobs",
    ],
)
def test_open_refuses_unusable_urls_without_echoing_them(url: str) -> None:
    with pytest.raises(ConfigError) as error:
        open_blobstore(url)
    assert "hunter2" not in str(error.value)


def test_open_refuses_non_string_url() -> None:
    bad: Any = b"memory:"
    with pytest.raises(ConfigError):
        open_blobstore(bad)
