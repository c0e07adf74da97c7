"""BlobStore on an S3-compatible object store (tested on SeaweedFS 4.48).

Objects live under ``<prefix><name>`` in one bucket.  The store only ever sees
sealed ``cv1`` ciphertext under random names, so neither keys nor bodies carry
personal data; error messages name the operation and the S3 error code only,
never an object key, a server message or a credential.

* **Never overwritten.**  Every write is conditional (``If-None-Match: *``), on
  ``PutObject`` and on ``CompleteMultipartUpload``: a taken name is refused by
  the server itself, also when two writers race.  A cheap ``HEAD`` first
  refuses a taken name before any chunk is read.
* **Idempotent retries.**  Each put tags its object with a random token in its
  metadata.  If a retried request is refused because the name is taken, the
  object is read back: carrying our token, it is the earlier attempt that
  landed (its answer was lost), and the put succeeded.
* **Atomic and streamed.**  Objects below ``part_size`` go up in one request;
  larger ones in parts of ``part_size`` bytes, so memory stays flat whatever
  the object size.  Nothing is visible until the upload completes, and a
  failing producer aborts the upload (``discard_incomplete`` removes uploads
  abandoned by a crashed process).
* **Ranged reads.**  ``read`` is one ranged ``GET``: playback fetches only the
  segments it decrypts.
* **Retries and timeouts** come from botocore's ``standard`` retry mode
  (exponential backoff with jitter on throttling, 5xx and connection errors)
  and fixed connect/read timeouts, so a dead server fails in bounded time.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from callvault.adapters.blobstore.s3_errors import (
    DENIED,
    MISSING,
    error_code,
    is_missing,
    is_precondition,
    storage_errors,
    transport_reason,
)
from callvault.core.errors import (
    AlreadyExists,
    ConfigError,
    InvalidInput,
    NotFound,
    StorageError,
)
from callvault.core.recordings import OBJECT_NAME_RE, validate_object_name

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # the S3 minimum for every part but the last
_TOKEN_KEY = "cv-put"  # noqa: S105 - a metadata name, sent as x-amz-meta-cv-put


@dataclass(frozen=True)
class S3Options:
    """Tuning that rarely needs changing; defaults suit a LAN object store."""

    part_size: int = 8 * MIB
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 4  # first try included
    stale_upload_age: timedelta = timedelta(hours=6)
    # Ingest calls discard_incomplete before every file; on S3 that is a LIST
    # request, and uploads only become stale after hours, so once a minute is plenty.
    discard_interval: float = 60.0
    max_pool_connections: int = 16


class S3BlobStore:
    """A :class:`callvault.core.ports.BlobStore` in one S3 bucket (see the module docstring)."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint: str,
        region: str,
        access_key: str,
        secret_key: str,
        prefix: str = "",
        path_style: bool = True,
        options: S3Options | None = None,
    ) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        self.prefix = prefix
        self.options = options or S3Options()
        self._last_discard: float | None = None
        if self.options.part_size < MIN_PART_SIZE:
            raise ConfigError("S3 part size must be at least 5 MiB")
        self._client: Any = _new_client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                s3={"addressing_style": "path" if path_style else "virtual"},
                retries={"total_max_attempts": self.options.max_attempts, "mode": "standard"},
                connect_timeout=self.options.connect_timeout,
                read_timeout=self.options.read_timeout,
                max_pool_connections=self.options.max_pool_connections,
                tcp_keepalive=True,
            ),
        )

    def close(self) -> None:
        """Close pooled connections (the store is unusable afterwards)."""
        self._client.close()

    def __repr__(self) -> str:  # no credentials
        return f"S3BlobStore(bucket={self.bucket!r}, endpoint={self.endpoint!r})"

    # -- start-up check -----------------------------------------------------------

    def check(self) -> None:
        """Prove the bucket is reachable with these credentials; errors name the setting."""
        setting = "CALLVAULT_BLOBSTORE_URL"
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code, status = error_code(exc)
            if code in DENIED or status == 403:
                raise ConfigError(
                    f"{setting}: the object store at {self.endpoint} refused the credentials "
                    "(check CALLVAULT_S3_ACCESS_KEY_ID and CALLVAULT_S3_SECRET_ACCESS_KEY)"
                ) from None
            if code in MISSING or code == "NoSuchBucket" or status == 404:
                raise ConfigError(
                    f"{setting}: bucket {self.bucket} does not exist at {self.endpoint} "
                    "(create it first, see docs/deploy.md)"
                ) from None
            if status in (301, 400):
                raise ConfigError(f"{setting}: bucket {self.bucket} is in another region") from None
            raise StorageError(f"{setting}: the object store answered HTTP {status}") from None
        except BotoCoreError as exc:
            raise StorageError(
                f"{setting}: the object store at {self.endpoint} is not answering "
                f"({transport_reason(exc)})"
            ) from None

    # -- BlobStore ----------------------------------------------------------------

    def put(self, name: str, chunks: Iterable[bytes]) -> int:
        validate_object_name(name)
        key = self.prefix + name
        # Cheap early refusal so a taken name does not cost a whole upload;
        # the conditional write below is what guarantees no overwrite.
        if self._head(key, "put") is not None:
            raise AlreadyExists("object")
        token = secrets.token_hex(16)
        part_size = self.options.part_size
        # Chunks are copied into one part-sized buffer: a producer may reuse
        # its own buffer after yielding it.
        buffer = bytearray()
        upload: _Multipart | None = None
        try:
            for chunk in chunks:
                buffer += _byte_view(chunk)
                while len(buffer) >= part_size:
                    if upload is None:
                        upload = _Multipart.start(self, key, token)
                    upload.add(bytes(buffer[:part_size]))
                    del buffer[:part_size]
            if upload is None:
                return self._put_single(key, bytes(buffer), token)
            if buffer:
                upload.add(bytes(buffer))
            return upload.complete()
        except BaseException:
            if upload is not None:
                upload.abort()
            raise

    def read(self, name: str, offset: int, length: int) -> bytes:
        validate_object_name(name)
        _check_range(offset, length)
        key = self.prefix + name
        if length == 0:
            if self._head(key, "read") is None:
                raise NotFound("object")
            return b""
        with storage_errors("read"):
            try:
                response = self._client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}"
                )
            except ClientError as exc:
                code, status = error_code(exc)
                if code == "InvalidRange" or status == 416:
                    return b""  # the object exists and ends at or before offset
                raise
            status = response["ResponseMetadata"]["HTTPStatusCode"]
            body = response["Body"]
            try:
                if status != 206 or response.get("ContentLength", 0) > length:
                    # A server that ignored the Range header would send the wrong
                    # bytes, or all of them: refuse before reading the body.
                    raise StorageError("read failed: the object store ignored the byte range")
                # At most ``length`` bytes (checked above); read() without a size,
                # since a huge ``length`` must not become an allocation.
                return bytes(body.read())
            finally:
                body.close()

    def size(self, name: str) -> int:
        validate_object_name(name)
        head = self._head(self.prefix + name, "size")
        if head is None:
            raise NotFound("object")
        return int(head["ContentLength"])

    def delete(self, name: str) -> None:
        validate_object_name(name)
        with storage_errors("delete"):
            self._client.delete_object(Bucket=self.bucket, Key=self.prefix + name)

    def names(self) -> Iterator[str]:
        with storage_errors("names"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for entry in page.get("Contents") or []:
                    name = entry["Key"][len(self.prefix) :]
                    if OBJECT_NAME_RE.match(name):
                        yield name

    def discard_incomplete(self) -> int:
        """Abort multipart uploads older than ``stale_upload_age``.

        Younger ones may belong to a put still running in another process, so
        they are kept, as the local store keeps temp files that are locked.
        At most one scan per ``discard_interval`` seconds; calls between return 0.
        """
        now = time.monotonic()
        if (
            self._last_discard is not None
            and now - self._last_discard < self.options.discard_interval
        ):
            return 0
        self._last_discard = now
        cutoff = datetime.now(UTC) - self.options.stale_upload_age
        removed = 0
        with storage_errors("discard_incomplete"):
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            stale = [
                (upload["Key"], upload["UploadId"])
                for page in pages
                for upload in page.get("Uploads") or []
                if upload["Initiated"] <= cutoff
            ]
            for key, upload_id in stale:
                with suppress(ClientError):  # finished or aborted meanwhile
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
                    removed += 1
        return removed

    # -- helpers ------------------------------------------------------------------

    def _head(self, key: str, op: str) -> dict[str, Any] | None:
        with storage_errors(op):
            try:
                head: dict[str, Any] = self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if is_missing(exc):
                    return None
                raise
        return head

    def _put_single(self, key: str, data: bytes, token: str) -> int:
        with storage_errors("put"):
            try:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    IfNoneMatch="*",
                    Metadata={_TOKEN_KEY: token},
                )
            except ClientError as exc:
                if not is_precondition(exc):
                    raise
                self._claim(key, token)
        return len(data)

    def _claim(self, key: str, token: str) -> None:
        """After a refused conditional write: ours (a lost answer) or someone else's?"""
        head = self._head(key, "put")
        if head is None or (head.get("Metadata") or {}).get(_TOKEN_KEY) != token:
            raise AlreadyExists("object")


class _Multipart:
    """One multipart upload in progress; parts are sent one at a time (flat memory)."""

    def __init__(self, store: S3BlobStore, key: str, token: str, upload_id: str) -> None:
        self.store, self.key, self.token, self.upload_id = store, key, token, upload_id
        self.parts: list[dict[str, Any]] = []
        self.size = 0

    @classmethod
    def start(cls, store: S3BlobStore, key: str, token: str) -> _Multipart:
        with storage_errors("put"):
            response = store._client.create_multipart_upload(
                Bucket=store.bucket, Key=key, Metadata={_TOKEN_KEY: token}
            )
        return cls(store, key, token, response["UploadId"])

    def add(self, data: bytes) -> None:
        number = len(self.parts) + 1
        with storage_errors("put"):
            # Re-sending a part number replaces that part: safe to retry.
            response = self.store._client.upload_part(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
            )
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self.size += len(data)

    def complete(self) -> int:
        with storage_errors("put"):
            try:
                self.store._client.complete_multipart_upload(
                    Bucket=self.store.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": self.parts},
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if not is_precondition(exc):
                    raise
                self.store._claim(self.key, self.token)
        return self.size

    def abort(self) -> None:
        # Best effort: a failed abort is found later by discard_incomplete.
        with suppress(ClientError, BotoCoreError):
            self.store._client.abort_multipart_upload(
                Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id
            )


_session_lock = threading.Lock()
_session: boto3.session.Session | None = None


def _new_client(*args: Any, **kwargs: Any) -> Any:
    # One session for the process: it caches the parsed service model, which
    # makes each further client cheap.  Sessions are not thread-safe, clients are.
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(*args, **kwargs)


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
