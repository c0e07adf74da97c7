"""Translation of botocore errors into the vault's error tree, for the S3 blob store.

Server messages and object keys never reach our messages: only the operation,
the S3 error code or the kind of transport failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError

from callvault.core.errors import NotFound, StorageError

DENIED = {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "403", "Forbidden"}
MISSING = {"NoSuchKey", "NotFound", "404"}


def error_code(exc: ClientError) -> tuple[str, int]:
    """The S3 error code (letters and digits only, as S3 defines them) and HTTP status."""
    error = exc.response.get("Error") or {}
    status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
    code = str(error.get("Code") or "")
    return (code if code.isascii() and code.isalnum() else "")[:64], int(status)


def is_missing(exc: ClientError) -> bool:
    code, status = error_code(exc)
    return code in MISSING or (status == 404 and code != "NoSuchBucket")


def is_precondition(exc: ClientError) -> bool:
    code, status = error_code(exc)
    # 409 ConditionalRequestConflict (AWS): a concurrent conditional write is under way.
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412


def transport_reason(exc: BotoCoreError) -> str:
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return "timed out"
    if isinstance(exc, BotoConnectionError):
        return "connection failed"
    return type(exc).__name__


@contextmanager
def storage_errors(op: str) -> Iterator[None]:
    """Translate driver errors; server messages and keys never reach ours."""
    try:
        yield
    except ClientError as exc:
        code, status = error_code(exc)
        if is_missing(exc):
            raise NotFound("object") from None
        if code == "NoSuchBucket":
            raise StorageError(f"{op} failed: the bucket does not exist") from None
        if code in DENIED or status == 403:
            raise StorageError(
                f"{op} failed: the object store refused the credentials (access denied)"
            ) from None
        raise StorageError(f"{op} failed: object store error {code or status}") from None
    except BotoCoreError as exc:
        raise StorageError(f"{op} failed: object store {transport_reason(exc)}") from None
