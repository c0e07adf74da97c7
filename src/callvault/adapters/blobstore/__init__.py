"""BlobStore adapters, chosen by URL scheme.

=====================  ==========================================
``file:///abs/path``   :class:`LocalBlobStore` in that directory
``memory:``            :class:`MemoryBlobStore` (tests, demos)
``s3://bucket?...``    :class:`~callvault.adapters.blobstore.s3.S3BlobStore`
=====================  ==========================================

URLs are never echoed in errors.  ``s3://`` credentials come from ``env`` (the
CALLVAULT_S3_* settings), never from the URL; see ``s3_url``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from callvault.adapters.blobstore.local import LocalBlobStore
from callvault.adapters.blobstore.memory import MemoryBlobStore
from callvault.core.errors import ConfigError
from callvault.core.ports import BlobStore

__all__ = ["LocalBlobStore", "MemoryBlobStore", "open_blobstore"]


def open_blobstore(
    url: str, env: Mapping[str, str] | None = None, *, check: bool = True
) -> BlobStore:
    """Open the blob store named by ``url``; ``ConfigError`` for anything unusable.

    ``env`` holds the CALLVAULT_* settings (S3 credentials); with ``check`` an
    S3 bucket is contacted once, so a bad endpoint or secret fails at start-up.
    """
    if not isinstance(url, str) or not url:
        raise ConfigError("blob store URL is empty")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError("blob store URL is malformed") from None
    if parts.scheme == "file":
        return LocalBlobStore(_local_path(url))
    if parts.scheme == "memory":
        if url.lower() not in ("memory:", "memory://"):
            raise ConfigError("the memory blob store URL takes no path or options: use memory:")
        return MemoryBlobStore()
    if parts.scheme == "s3":
        # Imported here: boto3 costs memory that file: vaults need not pay.
        from callvault.adapters.blobstore.s3_url import open_s3

        return open_s3(url, env or {}, check=check)
    raise ConfigError(
        "CALLVAULT_BLOBSTORE_URL: unsupported scheme "
        "(use file:///absolute/path, s3://bucket?endpoint=https://host or memory:)"
    )


def _local_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc:
        raise ConfigError("blob store file URL must be file:///absolute/path")
    if parts.query or parts.fragment:
        raise ConfigError("blob store file URL takes no query or fragment")
    raw = unquote(parts.path)
    if "\x00" in raw:
        raise ConfigError("blob store path contains a NUL byte")
    path = Path(raw)
    # Refuse rather than resolve '.' and '..': the configured path should be
    # the path used, with nothing for a reader of the config to work out.
    if not path.is_absolute() or any(part in (".", "..") for part in raw.split("/")):
        raise ConfigError("blob store path must be absolute and normalised (no . or ..)")
    return path
