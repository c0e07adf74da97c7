"""``s3://bucket?endpoint=...&region=...&prefix=...``: parse, find credentials, open.

Credentials never come from the URL (it is printed in logs and process
listings) nor from the AWS default chain (a stray ``~/.aws`` must not decide
where recordings go): only from ``CALLVAULT_S3_ACCESS_KEY_ID`` and
``CALLVAULT_S3_SECRET_ACCESS_KEY`` or ``CALLVAULT_S3_SECRET_ACCESS_KEY_FILE``.
Error messages name the setting and the part that is wrong; they never echo
the URL whole, nor any credential.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from callvault.core.errors import ConfigError, InvalidInput, KeyUnavailable

if TYPE_CHECKING:
    from callvault.adapters.blobstore.s3 import S3BlobStore

SETTING = "CALLVAULT_BLOBSTORE_URL"
ACCESS_KEY = "CALLVAULT_S3_ACCESS_KEY_ID"
SECRET_KEY = "CALLVAULT_S3_SECRET_ACCESS_KEY"  # noqa: S105 - a setting name
DEFAULT_REGION = "us-east-1"

# S3 bucket naming rules (no dots: they break TLS for virtual-hosted buckets).
_BUCKET_RE = re.compile(r"\A[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z")
_REGION_RE = re.compile(r"\A[a-z0-9-]{1,32}\Z")
_PREFIX_RE = re.compile(r"\A(?:[a-z0-9_-]+/)+\Z")
_OPTIONS = ("endpoint", "region", "prefix")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    endpoint: str
    region: str
    prefix: str
    path_style: bool


def parse_s3_url(url: str) -> S3Location:
    """The bucket, endpoint, region and prefix named by an ``s3://`` URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"{SETTING} is malformed") from None
    if parts.scheme != "s3":
        raise ConfigError(f"{SETTING} must start with s3://")
    if "@" in parts.netloc:
        raise ConfigError(
            f"{SETTING} must not carry credentials: set {ACCESS_KEY} and "
            f"{SECRET_KEY} (or {SECRET_KEY}_FILE) instead"
        )
    bucket = parts.netloc
    if not bucket:
        raise ConfigError(f"{SETTING} names no bucket: use s3://bucket?endpoint=https://host")
    if not _BUCKET_RE.match(bucket):
        raise ConfigError(
            f"{SETTING}: not a valid bucket name (3-63 lowercase letters, digits, hyphens)"
        )
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigError(f"{SETTING}: put a key prefix in ?prefix=, not in the path")
    options = _options(parts.query)
    region = options.get("region", DEFAULT_REGION)
    if not _REGION_RE.match(region):
        raise ConfigError(f"{SETTING}: region must be like eu-north-1")
    prefix = options.get("prefix", "")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if prefix and not _PREFIX_RE.match(prefix):
        raise ConfigError(
            f"{SETTING}: prefix must be lowercase words of letters, digits, - and _ separated by /"
        )
    if "endpoint" in options:
        endpoint, path_style = _endpoint(options["endpoint"]), True
    else:
        # Explicit, so AWS_ENDPOINT_URL and friends cannot redirect us.
        endpoint, path_style = f"https://s3.{region}.amazonaws.com", False
    return S3Location(bucket, endpoint, region, prefix, path_style)


def _options(query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(f"{SETTING}: the query part is malformed") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in _OPTIONS:
            # The option's name is ours to show only if it is one we know.
            raise ConfigError(f"{SETTING}: unknown option (known: {', '.join(_OPTIONS)})")
        if key in options:
            raise ConfigError(f"{SETTING}: option {key} given twice")
        if not value:
            raise ConfigError(f"{SETTING}: option {key} is empty")
        options[key] = value
    return options


def _endpoint(text: str) -> str:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{SETTING}: endpoint is not a URL like https://host:port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{SETTING}: endpoint must be http(s)://host[:port]")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{SETTING}: endpoint must not carry credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{SETTING}: endpoint must be http(s)://host[:port] with no path")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def credentials(env: Mapping[str, str]) -> tuple[str, str]:
    """The access key id and secret from the settings; ``ConfigError`` if missing."""
    from callvault.adapters.keys.securefile import read_secret_setting

    access = env.get(ACCESS_KEY, "")
    if not access:
        raise ConfigError(f"the s3 blob store needs {ACCESS_KEY}")
    if SECRET_KEY not in env and f"{SECRET_KEY}_FILE" not in env:
        raise ConfigError(f"the s3 blob store needs {SECRET_KEY} or {SECRET_KEY}_FILE")
    try:
        secret = read_secret_setting(env, SECRET_KEY, None, what="S3 secret access key")
    except (KeyUnavailable, InvalidInput) as exc:  # unreadable, insecure or empty
        raise ConfigError(str(exc)) from None
    try:
        return access, secret.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{SECRET_KEY} is not UTF-8 text") from None


def open_s3(url: str, env: Mapping[str, str], *, check: bool = True) -> S3BlobStore:
    """An :class:`S3BlobStore` for ``url``, checked against the server unless told not to."""
    location = parse_s3_url(url)
    access, secret = credentials(env)
    from callvault.adapters.blobstore.s3 import S3BlobStore

    store = S3BlobStore(
        bucket=location.bucket,
        endpoint=location.endpoint,
        region=location.region,
        access_key=access,
        secret_key=secret,
        prefix=location.prefix,
        path_style=location.path_style,
    )
    if check:
        try:
            store.check()
        except BaseException:
            store.close()
            raise
    return store
