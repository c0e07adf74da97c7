"""The S3 blob store beyond the shared contract: races, retries, parts, errors (R23, R28).

Runs against a real SeaweedFS S3 gateway (the session's ``seaweedfs`` fixture).
Faults are injected by a small HTTP relay in front of it, never by mocks.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import os
import random
import socket
import sys
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callvault.adapters.blobstore.s3 import MIB, S3BlobStore, S3Options
from callvault.core import format as cv1
from callvault.core.errors import AlreadyExists, ConfigError, NotFound, StorageError
from callvault.core.recordings import new_object_name
from callvault.testing.blobstore import ProducerFailed, Tripwire, failing_after, payload
from callvault.testing.seaweedfs import PUBLIC_BUCKET, SeaweedFS

PART = 5 * MIB


@pytest.fixture(scope="module")
def bucket(seaweedfs: SeaweedFS) -> str:
    return seaweedfs.make_bucket()


@pytest.fixture
def prefix() -> str:
    return f"s{new_object_name()[:12]}/"


@pytest.fixture
def opened() -> Iterator[list[S3BlobStore]]:
    """Stores a test made, closed after it (pooled sockets, else ResourceWarnings)."""
    stores: list[S3BlobStore] = []
    yield stores
    for store in stores:
        store.close()


@pytest.fixture
def store(seaweedfs: SeaweedFS, bucket: str, prefix: str, opened: list) -> S3BlobStore:
    opened.append(seaweedfs.blobstore(bucket, prefix, part_size=PART))
    return opened[-1]


def key_of(store: S3BlobStore, name: str) -> str:
    return store.prefix + name


def uploads_in_flight(seaweedfs: SeaweedFS, bucket: str, prefix: str) -> list[dict]:
    listed = seaweedfs.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return listed.get("Uploads") or []


# -- a fault-injecting relay in front of the server ------------------------------


class _QuietServer(http.server.ThreadingHTTPServer):
    """A client closing its keep-alive connection is routine here, not an error to print."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class Relay:
    """Forwards HTTP to the S3 gateway; can lose answers or fail requests.

    ``lose_answer`` requests are forwarded (the server acts on them) but the
    client gets a 503 instead of the answer, as when a connection drops after
    the server committed.  ``fail`` requests are refused with 503 unforwarded.
    The Host header is passed through unchanged, so signatures stay valid.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.lose_answer: dict[str, int] = {}  # method -> how many more times
        self.fail: dict[str, int] = {}
        self.log: list[tuple[str, str, str | None, int]] = []  # method, path, range, bytes out
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                method = self.command
                if relay._take(relay.fail, method):
                    self._reply(503, {}, b"<Error><Code>SlowDown</Code></Error>")
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", relay.upstream_port, timeout=30)
                try:
                    upstream.request(method, self.path, body=body, headers=dict(self.headers))
                    response = upstream.getresponse()
                    data = response.read()
                    # A HEAD answer's Content-Length is the object's: keep it.
                    dropped = ("transfer-encoding", "connection") + (
                        () if method == "HEAD" else ("content-length",)
                    )
                    headers = {k: v for k, v in response.getheaders() if k.lower() not in dropped}
                finally:
                    upstream.close()
                relay.log.append((method, self.path, self.headers.get("Range"), len(data)))
                if relay._take(relay.lose_answer, method):
                    self._reply(503, {}, b"<Error><Code>ServiceUnavailable</Code></Error>")
                    return
                self._reply(response.status, headers, data, head=method == "HEAD")

            def _reply(
                self, status: int, headers: dict[str, str], data: bytes, head: bool = False
            ) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _take(self, table: dict[str, int], method: str) -> bool:
        if table.get(method, 0) > 0:
            table[method] -= 1
            return True
        return False

    def __enter__(self) -> Relay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def relay(seaweedfs: SeaweedFS) -> Iterator[Relay]:
    with Relay(int(seaweedfs.endpoint.rsplit(":", 1)[1])) as r:
        yield r


@pytest.fixture
def relayed(
    seaweedfs: SeaweedFS, relay: Relay, bucket: str, prefix: str, opened: list
) -> S3BlobStore:
    """A store that talks to the server through the relay."""
    opened.append(
        S3BlobStore(
            bucket=bucket,
            endpoint=f"http://127.0.0.1:{relay.port}",
            region=seaweedfs.region,
            access_key=seaweedfs.access_key,
            secret_key=seaweedfs.secret_key,
            prefix=prefix,
            options=S3Options(part_size=PART),
        )
    )
    return opened[-1]


# -- create without replace ---------------------------------------------------------


@pytest.mark.parametrize("size", [1_000, 12 * MIB], ids=["single", "multipart"])
def test_a_writer_that_wins_the_race_mid_upload_is_never_overwritten(
    seaweedfs: SeaweedFS, bucket: str, store: S3BlobStore, size: int
) -> None:
    """R23: the server's If-None-Match refuses the loser, even after the early HEAD passed."""
    name, winner = new_object_name(), b"the other writer got here first"

    def produce() -> Iterator[bytes]:
        data = payload(size, seed=3)
        yield data[: size // 2]
        # Another process publishes the same name while our upload is in flight.
        seaweedfs.client().put_object(Bucket=bucket, Key=key_of(store, name), Body=winner)
        yield data[size // 2 :]

    with pytest.raises(AlreadyExists):
        store.put(name, produce())
    assert store.read(name, 0, 1000) == winner
    assert uploads_in_flight(seaweedfs, bucket, store.prefix) == []


def test_put_of_taken_name_is_refused_before_reading_chunks(store: S3BlobStore) -> None:
    name = new_object_name()
    store.put(name, [b"first"])
    tripwire = Tripwire()
    with pytest.raises(AlreadyExists):
        store.put(name, tripwire)
    assert not tripwire.touched


@pytest.mark.parametrize(
    ("method", "size"), [("PUT", 2_000), ("POST", 11 * MIB)], ids=["single", "multipart"]
)
def test_lost_answer_to_a_committed_put_is_retried_and_succeeds(
    relay: Relay, relayed: S3BlobStore, method: str, size: int
) -> None:
    """The retry of a write that landed is recognised by its token, not reported as taken."""
    store = relayed
    name, data = new_object_name(), payload(size, seed=4)
    # Single puts end with PUT; multipart uploads end with POST (complete).
    relay.lose_answer[method] = 1
    assert store.put(name, [data]) == size
    assert relay.lose_answer[method] == 0  # the fault did happen
    assert store.read(name, 0, size) == data


def test_transient_server_errors_are_retried_with_backoff(
    relay: Relay, relayed: S3BlobStore
) -> None:
    store = relayed
    name = new_object_name()
    store.put(name, [b"ciphertext"])
    relay.fail["GET"] = 2
    assert store.read(name, 0, 100) == b"ciphertext"
    relay.fail["HEAD"] = 10  # more than the retry budget
    with pytest.raises(StorageError, match="size failed"):
        store.size(name)


# -- multipart: streamed, flat memory, aborted on failure ------------------------------


def test_large_object_goes_up_in_parts_with_flat_memory(
    seaweedfs: SeaweedFS, bucket: str, store: S3BlobStore
) -> None:
    chunk, count = payload(64 * 1024), 640  # 40 MiB through one reused chunk
    name = new_object_name()
    tracemalloc.start()
    try:
        assert store.put(name, (chunk for _ in range(count))) == 40 * MIB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * PART, peak  # a part being filled and one being sent, not 40 MiB
    head = seaweedfs.client().head_object(Bucket=bucket, Key=key_of(store, name))
    assert head["ETag"].strip('"').endswith("-8")  # eight 5 MiB parts
    assert store.read(name, 40 * MIB - 3, 10) == chunk[-3:]


def test_producer_failing_mid_multipart_aborts_the_upload(
    seaweedfs: SeaweedFS, bucket: str, store: S3BlobStore
) -> None:
    name = new_object_name()
    with pytest.raises(ProducerFailed):
        store.put(name, failing_after(payload(16 * MIB), chunks=4))
    assert uploads_in_flight(seaweedfs, bucket, store.prefix) == []
    with pytest.raises(NotFound):
        store.size(name)


def test_discard_incomplete_aborts_only_stale_uploads(
    seaweedfs: SeaweedFS, bucket: str, prefix: str, store: S3BlobStore, opened: list
) -> None:
    """An upload abandoned by a crashed process is removed; a young one may be live."""
    seaweedfs.client().create_multipart_upload(Bucket=bucket, Key=prefix + new_object_name())
    assert store.discard_incomplete() == 0
    assert len(uploads_in_flight(seaweedfs, bucket, prefix)) == 1
    eager = seaweedfs.blobstore(bucket, prefix, stale_upload_age=timedelta(0))
    opened.append(eager)
    assert eager.discard_incomplete() == 1
    assert uploads_in_flight(seaweedfs, bucket, prefix) == []
    # Ingest calls it before every file: the LIST runs at most once per interval.
    seaweedfs.client().create_multipart_upload(Bucket=bucket, Key=prefix + new_object_name())
    assert eager.discard_incomplete() == 0
    every_time = seaweedfs.blobstore(
        bucket, prefix, stale_upload_age=timedelta(0), discard_interval=0.0
    )
    opened.append(every_time)
    assert every_time.discard_incomplete() == 1


# -- ranged reads for playback ------------------------------------------------------------


def test_playback_range_fetches_only_the_segments_it_decrypts(
    relay: Relay, relayed: S3BlobStore
) -> None:
    store = relayed
    dek, ad = os.urandom(32), cv1.associated_data(uuid.uuid4(), os.urandom(16), "audio/wav")
    plaintext = random.Random(5).randbytes(6 * MIB)
    name = new_object_name()
    size = store.put(name, cv1.encrypt_stream(dek, ad, [plaintext]))
    relay.log.clear()

    def read(offset: int, length: int) -> bytes:
        return store.read(name, offset, length)

    offset = 4 * MIB + 12_345
    got = cv1.decrypt_range(dek, ad, read, size, offset, 100_000)
    assert got == plaintext[offset : offset + 100_000]
    fetched = sum(entry[3] for entry in relay.log if entry[0] == "GET")
    assert all(entry[2] for entry in relay.log if entry[0] == "GET")  # every GET ranged
    assert fetched <= 4 * cv1.SEGMENT_SIZE, fetched  # header + the 2-3 covering segments


# -- errors are ours, clear, and carry no secret -------------------------------------------


def test_wrong_secret_is_a_clear_error_without_the_secret(
    seaweedfs: SeaweedFS, bucket: str, opened: list
) -> None:
    wrong = "not-the-secret-" + os.urandom(6).hex()
    store = S3BlobStore(
        bucket=bucket,
        endpoint=seaweedfs.endpoint,
        region=seaweedfs.region,
        access_key=seaweedfs.access_key,
        secret_key=wrong,
    )
    opened.append(store)
    with pytest.raises(ConfigError, match="refused the credentials") as checked:
        store.check()
    with pytest.raises(StorageError, match="access denied") as put:
        store.put(new_object_name(), [b"x"])
    with pytest.raises(StorageError, match="access denied"):
        list(store.names())
    for error in (checked.value, put.value):
        assert wrong not in str(error) and seaweedfs.secret_key not in str(error)


def test_missing_bucket_is_named_at_check_and_a_storage_error_later(
    seaweedfs: SeaweedFS, opened: list
) -> None:
    store = seaweedfs.blobstore("cv-no-such-bucket")
    opened.append(store)
    with pytest.raises(ConfigError, match="bucket cv-no-such-bucket does not exist"):
        store.check()
    with pytest.raises(StorageError, match="bucket does not exist"):
        store.put(new_object_name(), [b"x"])


def test_dead_endpoint_fails_in_bounded_time(opened: list) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    store = S3BlobStore(
        bucket="cv-any",
        endpoint=f"http://127.0.0.1:{port}",
        region="us-east-1",
        access_key="AKID",
        secret_key="secret-never-shown",
        options=S3Options(connect_timeout=1, read_timeout=1, max_attempts=2),
    )
    opened.append(store)
    started = time.monotonic()
    with pytest.raises(StorageError, match="not answering") as error:
        store.check()
    with pytest.raises(StorageError, match="read failed: object store connection failed"):
        store.read(new_object_name(), 0, 10)
    assert time.monotonic() - started < 10
    assert "secret-never-shown" not in str(error.value)


def test_anonymous_requests_get_nothing(seaweedfs: SeaweedFS, store: S3BlobStore) -> None:
    name = new_object_name()
    store.put(name, [b"ciphertext"])
    for path in (f"/{store.bucket}/{store.prefix}{name}", f"/{store.bucket}"):
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(seaweedfs.endpoint + path, timeout=5)
        denied.value.close()  # it holds the response's socket
        assert denied.value.code == 403
    # The server's bucket list is refused or, where an anonymous identity
    # exists for a public bucket, filtered: it never names ours.
    try:
        with urllib.request.urlopen(seaweedfs.endpoint + "/", timeout=5) as response:
            assert store.bucket.encode() not in response.read()
    except urllib.error.HTTPError as denied:
        denied.close()
        assert denied.code == 403


def test_the_fixtures_public_bucket_is_readable_anonymously(seaweedfs: SeaweedFS) -> None:
    """For scanner tests: only PUBLIC_BUCKET is exposed, and only once it exists."""
    if PUBLIC_BUCKET not in {b["Name"] for b in seaweedfs.client().list_buckets()["Buckets"]}:
        seaweedfs.make_bucket(PUBLIC_BUCKET)
    seaweedfs.client().put_object(Bucket=PUBLIC_BUCKET, Key="exposed.bin", Body=b"exposed")
    url = f"{seaweedfs.endpoint}/{PUBLIC_BUCKET}/exposed.bin"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == b"exposed"


# -- object lock ----------------------------------------------------------------------------


def test_compliance_locked_objects_survive_delete(seaweedfs: SeaweedFS, opened: list) -> None:
    """With Object Lock (compliance) on the bucket, delete only hides an object:
    the locked version stays, and even the administrator cannot remove it."""
    locked = seaweedfs.make_bucket(object_lock=True)
    client = seaweedfs.client()
    client.put_object_lock_configuration(
        Bucket=locked,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    store = seaweedfs.blobstore(locked)
    opened.append(store)
    name, data = new_object_name(), payload(3_000)
    store.put(name, [data])
    head = client.head_object(Bucket=locked, Key=name)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(hours=23)
    store.delete(name)
    with pytest.raises(NotFound):
        store.size(name)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        client.delete_object(Bucket=locked, Key=name, VersionId=head["VersionId"])
    kept = client.get_object(Bucket=locked, Key=name, VersionId=head["VersionId"])
    assert hashlib.sha256(kept["Body"].read()).digest() == hashlib.sha256(data).digest()


# -- the play path, end to end over S3 ----------------------------------------------------


def test_playback_of_a_range_streams_from_s3_reading_only_what_it_needs(
    tmp_path: Path, relay: Relay, relayed: S3BlobStore
) -> None:
    """Ingest a 2-minute call, open a playback grant, play one range (R9, R23)."""
    from callvault.adapters.audio import analyse
    from callvault.adapters.db.store import SqlMetadataStore
    from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
    from callvault.core.access import Principal, Role
    from callvault.services import accounts, ingest, playback
    from callvault.services import vault as vault_service
    from callvault.services.context import Vault
    from callvault.services.details import CallDetails
    from callvault.testing.audio import make_tone_wav
    from callvault.testing.clock import FakeClock
    from callvault.testing.http import ensure_care_units

    operator = Principal("tester", Role.OPERATOR)
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    (tmp_path / "keys").mkdir(mode=0o700)
    vault = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{tmp_path / 'vault.db'}"),
        blobs=relayed,
        keys=KeyfileProvider.create(
            tmp_path / "keys" / "k", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
        ),
        clock=clock,
        probe=analyse,
        origin=vault_service.origin_for(str(uuid.uuid4())),
    )
    try:
        vault_service.initialise(vault, operator)
        ensure_care_units(vault, ["unit-a"])
        accounts.create_user(vault, operator, "nurse.a", "call_handler", ["unit-a"])
        wav = make_tone_wav(tmp_path / "call.wav", 120.0, frequency=440)
        details = CallDetails.parse(
            care_unit="unit-a", started_at="2026-03-01T10:22:00+01:00", today=clock.now().date(),
            agent="nurse.a",
        )  # fmt: skip
        recording = ingest.ingest(vault, operator, wav, details).recording_id
        nurse = Principal("nurse.a", Role("call_handler"), care_units=("unit-a",), session="5e55")
        playback.open_playback(vault, nurse, recording, "Caller rang back about the advice")
        relay.log.clear()
        stream = playback.audio(vault, nurse, recording, "bytes=1000000-1099999")
        assert stream.status == 206
        original = wav.read_bytes()
        assert b"".join(stream.chunks) == original[1_000_000:1_100_000]
    finally:
        vault.close()
    fetched = sum(entry[3] for entry in relay.log if entry[0] == "GET")
    assert 0 < fetched < len(original) // 4, (fetched, len(original))
