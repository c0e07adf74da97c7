"""Run the API with uvicorn, over TLS only (R5).

Refusals come before anything listens: a non-loopback address without an
explicitly configured certificate (the self-signed localhost one would
teach people to click through warnings), and any key the TLS adapter
refuses.  The server socket is bound here, not by uvicorn, so a busy port
is a clear ``ConfigError`` rather than an exit from inside the server.

uvicorn is told to add no ``Server`` header, to trust no proxy headers and
to write no access log: the application writes its own PHI-free request
line (see ``middleware.GuardMiddleware``).  Every log record leaves through
a filter that drops tracebacks, whose text may quote request data.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from callvault.core.errors import ConfigError
from callvault.entrypoints.http.app import create_app
from callvault.services.context import Vault

log = logging.getLogger("callvault.http")

GRACEFUL_SHUTDOWN_SECONDS = 10
# Request line and headers together; h11's own default, stated.
MAX_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True)
class BindAddress:
    """A resolved listening address: what ``socket.bind`` takes, and for which family."""

    family: socket.AddressFamily
    sockaddr: tuple[Any, ...]

    @property
    def host(self) -> str:
        return str(self.sockaddr[0])

    @property
    def port(self) -> int:
        return int(self.sockaddr[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if self.family == socket.AF_INET6 else self.host
        return f"https://{host}:{self.port}"


def resolve_bind(host: str, port: int, *, certificate_configured: bool) -> BindAddress:
    """Resolve ``host``; ``ConfigError`` if it is not loopback and no certificate
    was configured (CALLVAULT_TLS_CERT_FILE)."""
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
    except OSError as exc:
        raise ConfigError(f"cannot resolve the bind address {host}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    address = BindAddress(socket.AddressFamily(family), tuple(sockaddr))
    if not certificate_configured and not ipaddress.ip_address(address.host).is_loopback:
        raise ConfigError(
            f"refusing to listen on {address.host}, which is not a loopback address, with the "
            "self-signed localhost certificate: set CALLVAULT_TLS_CERT_FILE and "
            "CALLVAULT_TLS_KEY_FILE to a certificate for this host"
        )
    return address


def open_listener(address: BindAddress) -> socket.socket:
    """A bound TCP socket (uvicorn calls ``listen``); ``ConfigError`` if busy or denied."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if address.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address.sockaddr)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {address.url}: {exc.strerror}") from None
    return sock


class DropAll(logging.Filter):
    """Silence a logger for good.

    uvicorn turns its access log back on as soon as ``uvicorn.access`` has a
    handler, and that log carries raw paths and query strings; a filter on
    the logger itself holds whatever handlers are added later.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return False


class DropTracebacks(logging.Filter):
    """Replace a record's traceback by the exception's type name.

    Exception texts may quote what a client sent (a path, a header, a body
    field); the type and our own message are enough to act on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            record.msg = f"{record.getMessage()} ({record.exc_info[0].__name__})"
            record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def log_config() -> dict[str, Any]:
    """``logging.config.dictConfig`` for the service: one stderr stream, no access log."""
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "plain",
        "filters": ["drop_tracebacks"],
    }
    quiet = {"handlers": ["stderr"], "level": "WARNING", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"drop_tracebacks": {"()": DropTracebacks}, "drop_all": {"()": DropAll}},
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "callvault": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {
                "handlers": [],
                "filters": ["drop_all"],
                "level": "CRITICAL",
                "propagate": False,
            },
            "asyncio": quiet,
        },
    }


def server_config(app: Any, context: ssl.SSLContext, address: BindAddress) -> uvicorn.Config:
    """The uvicorn configuration, with ``context`` as the only TLS setup."""
    return uvicorn.Config(
        app,
        host=address.host,
        port=address.port,
        # Our context, not one uvicorn builds: only ours has the TLS 1.2 floor.
        ssl_context_factory=lambda _config, _default: context,
        http="h11",
        ws="none",
        loop="asyncio",
        lifespan="off",
        server_header=False,
        date_header=True,
        proxy_headers=False,
        access_log=False,
        log_config=log_config(),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Stop on SIGINT or SIGTERM and return normally.

        uvicorn re-raises the signal after its shutdown, and a re-raised
        SIGTERM ends the process before the caller can seal the audit log.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run(vault: Vault, context: ssl.SSLContext, sock: socket.socket) -> None:
    """Serve ``vault`` on the bound ``sock`` with ``context`` until SIGINT or SIGTERM."""
    family = socket.AddressFamily(sock.family)
    address = BindAddress(family, tuple(sock.getsockname()))
    config = server_config(create_app(vault), context, address)
    log.info("listening on %s", address.url)
    _Server(config).run(sockets=[sock])
    log.info("stopped")
