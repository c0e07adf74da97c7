"""A small, bounded HTTP(S) client for the exposure scanner, on the stdlib.

Every request opens its own connection, sends no credentials and no cookies,
follows no redirects and reads at most ``max_body`` bytes of the answer (the
connection is then closed, so a server that ignores ``Range`` still sends us
no more than that).  TLS certificates are not verified by default: the
scanner asks "what does an anonymous client get", and an attacker does not
verify either; pass ``cafile`` to verify.  Failures to connect, TLS
handshake failures and malformed answers all raise :class:`ProbeFailed`.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

USER_AGENT = "callvault-scan/1 (exposure check by the owner)"


class ProbeFailed(OSError):
    """No HTTP answer: refused, timed out, TLS failed or not HTTP."""


@dataclass(frozen=True)
class Answer:
    """What came back: status, headers (lower-case names) and the first body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes
    tls: bool


class HttpProbe:
    """One-shot requests with a timeout and a body cap; see the module docstring."""

    def __init__(self, timeout: float = 10.0, cafile: str | None = None) -> None:
        self.timeout = timeout
        if cafile:
            self._context = ssl.create_default_context(cafile=cafile)
        else:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE
        # Old servers must still be reachable, so that the scan can say they are old.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._context.minimum_version = ssl.TLSVersion.TLSv1
        self._context.set_ciphers("DEFAULT:@SECLEVEL=0")

    def get(
        self, url: str, headers: dict[str, str] | None = None, max_body: int = 1 << 20
    ) -> Answer:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProbeFailed(f"not an http(s) URL: {parts.scheme}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        conn: http.client.HTTPConnection
        if tls:
            conn = http.client.HTTPSConnection(
                parts.hostname, port, timeout=self.timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, port, timeout=self.timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
        sent.update(headers or {})
        try:
            conn.request("GET", target, headers=sent)
            response = conn.getresponse()
            body = response.read(max_body) if max_body > 0 else b""
            return Answer(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                body,
                tls,
            )
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            raise ProbeFailed(type(exc).__name__) from None
        finally:
            conn.close()

    def old_tls(self, host: str, port: int) -> str | None:
        """The protocol if ``host:port`` agrees to TLS 1.1 or older, else ``None``."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only asks which protocol is spoken
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        try:
            with (
                socket.create_connection((host, port), timeout=self.timeout) as raw,
                context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                return tls.version()
        except (OSError, ssl.SSLError):
            return None
