"""A throwaway nginx (Debian package) serving a directory, for tests.

    with NginxServer(tree, tmp_path / "nginx") as web:
        web.base_url        # http://127.0.0.1:<free port>/

One worker, run as the current user, ``daemon off``; the pid file, logs and
every temp path live under ``workdir``.  ``autoindex=True`` lists every
folder, ``False`` none, and a sequence of URL prefixes (``["/orkweb/"]``)
lists only those.  An ``index.html`` in a folder is served instead of the
listing, which is how tests serve captured listing pages of other servers.

Options for particular tests: ``deny`` regexes (``[r"\\.wav$"]``) answer 403;
``tls=(cert, key)`` serves HTTPS, with ``tls_protocols`` as nginx spells them
(to stand in for an old server); ``log_requests=True`` keeps an access log that
:meth:`NginxServer.requests` reads.  A missing nginx is an error, never a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

_HINT = "nginx is missing: apt-get install nginx (Debian package)"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError(_HINT)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class NginxServer:
    """nginx over one directory; see the module docstring."""

    def __init__(
        self,
        root: Path,
        workdir: Path,
        *,
        autoindex: bool | Sequence[str] = True,
        tls: tuple[Path, Path] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_requests: bool = False,
        tls_protocols: str = "TLSv1.2 TLSv1.3",
        deny: Sequence[str] = (),
    ) -> None:
        self.root = Path(root).resolve()
        self.workdir = Path(workdir)
        self.autoindex = autoindex
        self.tls = tls
        self.host = host
        self.port = port or free_port(host)
        self.log_requests = log_requests
        self.tls_protocols = tls_protocols
        self.deny = tuple(deny)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/"

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    @property
    def access_log(self) -> Path:
        """With ``log_requests``: one line per request, ``URI|Range|status|body bytes``."""
        return self.workdir / "access.log"

    def requests(self) -> list[tuple[str, str, int, int]]:
        """The logged requests as ``(uri, range header, status, body bytes sent)``."""
        if not self.access_log.exists():
            return []
        rows = []
        for line in self.access_log.read_text().splitlines():
            uri, rng, status, sent = line.rsplit("|", 3)
            rows.append((uri, "" if rng == "-" else rng, int(status), int(sent)))
        return rows

    def _locations(self) -> str:
        # Regex locations win over prefix ones, so a denied pattern holds everywhere.
        lines = [f'        location ~ "{pattern}" {{ deny all; }}' for pattern in self.deny]
        if self.autoindex is True:
            lines.append("        location / { autoindex on; }")
        elif self.autoindex is False:
            lines.append("        location / { autoindex off; }")
        else:
            lines.append("        location / { autoindex off; }")
            lines += [f"        location {prefix} {{ autoindex on; }}" for prefix in self.autoindex]
        return "\n".join(lines)

    def _access_log(self) -> str:
        if not self.log_requests:
            return "    access_log off;"
        return (
            "    log_format probe '$request_uri|$http_range|$status|$body_bytes_sent';\n"
            f"    access_log {self.access_log} probe;"
        )

    def config(self) -> Path:
        w = self.workdir
        temps = "\n".join(
            f"    {kind}_temp_path {w / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, workers would otherwise switch to an account that may not read the tree.
        user = "user root;\n" if os.geteuid() == 0 else ""
        listen = f"{self.host}:{self.port}" + (" ssl" if self.tls else "")
        tls = ""
        if self.tls:
            tls = (
                f"        ssl_certificate {self.tls[0]};\n"
                f"        ssl_certificate_key {self.tls[1]};\n"
                f"        ssl_protocols {self.tls_protocols};\n"
            )
            if "TLSv1 " in self.tls_protocols + " " or "TLSv1.1" in self.tls_protocols:
                # OpenSSL 3 refuses the old protocols at its default security level.
                tls += "        ssl_ciphers DEFAULT:@SECLEVEL=0;\n"
        conf = w / "nginx.conf"
        conf.write_text(
            f"""{user}worker_processes 1;
daemon off;
pid {w / "nginx.pid"};
error_log {self.error_log} warn;
events {{ worker_connections 64; }}
http {{
{self._access_log()}
    types {{ text/html html; audio/wav wav; audio/mpeg mp3; text/plain txt; }}
    default_type application/octet-stream;
{temps}
    server {{
        listen {listen};
        root {self.root};
{tls}{self._locations()}
    }}
}}
"""
        )
        return conf

    def start(self, timeout: float = 15.0) -> NginxServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.config()
        argv = [nginx_binary(), "-p", str(self.workdir), "-e", str(self.error_log), "-c", str(conf)]
        self._proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen within {timeout:.0f} s: {self._log_tail()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def _log_tail(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")[-2000:]
        except FileNotFoundError:
            return "(no error log)"

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
