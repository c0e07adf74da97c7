"""The real service over TLS: `callvault init` makes the certificate, `callvault
serve` listens on loopback, and clients check what goes over the wire (R1, R5, R6)."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from callvault.adapters.tls import check_key_file, ensure_self_signed, server_context
from callvault.core.errors import ConfigError
from callvault.entrypoints.http.serve import open_listener, resolve_bind

PNR = "19121212-1212"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    home: Path
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def cafile(self) -> Path:
        return self.home / "tls" / "cert.pem"

    def callvault(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "callvault", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def client_context(self, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.cafile))
        if version is not None:
            context.minimum_version = context.maximum_version = version
        return context

    def get(self, path: str) -> http.client.HTTPResponse:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.client_context(), timeout=10
        )
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response


def _wait_until_listening(service: Service) -> None:
    deadline = time.monotonic() + 30
    assert service.process is not None
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(f"callvault serve exited: {service.log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", service.port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail("callvault serve did not listen within 30 s")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("tls")
    secret = root / "passphrase"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env.update(
        CALLVAULT_HOME=str(root / "home"),
        CALLVAULT_PASSPHRASE_FILE=str(secret),
        CALLVAULT_BIND=f"127.0.0.1:{port}",
        TMPDIR=str(root),
        PYTHONDONTWRITEBYTECODE="1",
    )
    svc = Service(root / "home", env, port, root / "serve.log")
    init = svc.callvault("init")
    assert init.returncode == 0, init.stderr
    with svc.log.open("wb") as log:
        svc.process = subprocess.Popen(
            [sys.executable, "-m", "callvault", "serve"], env=env, stdout=log, stderr=log
        )
    try:
        _wait_until_listening(svc)
        yield svc
    finally:
        svc.process.send_signal(signal.SIGTERM)
        code = svc.process.wait(timeout=30)
    # A clean stop, so the audit log was sealed on the way out.
    assert code == 0, svc.log.read_text()


# --- the certificate init made ------------------------------------------------------


def test_init_makes_a_private_self_signed_localhost_certificate(service):
    tls = service.home / "tls"
    assert tls.stat().st_mode & 0o777 == 0o700
    assert (tls / "key.pem").stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((tls / "cert.pem").read_bytes())
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"
    assert cert.subject.rfc4514_string() == "CN=localhost"
    assert cert.issuer == cert.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=365) <= lifetime <= dt.timedelta(days=366)
    assert cert.not_valid_before_utc <= dt.datetime.now(dt.UTC)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is False


def test_an_existing_pair_is_kept_and_half_a_pair_replaced(tmp_path):
    first = ensure_self_signed(tmp_path / "tls")
    pem = first.cert.read_bytes()
    assert ensure_self_signed(tmp_path / "tls").cert.read_bytes() == pem
    first.key.unlink()
    again = ensure_self_signed(tmp_path / "tls")
    assert again.cert.read_bytes() != pem
    assert again.key.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == ["cert.pem", "key.pem"]


# --- protocol versions --------------------------------------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13_connect_and_verify_the_localhost_certificate(service, version):
    context = service.client_context(version)
    with (
        socket.create_connection(("127.0.0.1", service.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == version.name.replace("_", ".")
        cipher, _, _ = tls.cipher()
        if version is ssl.TLSVersion.TLSv1_2:
            assert cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher)


def legacy_client() -> ssl.SSLContext:
    """A client that offers only TLS 1.0 and 1.1, with every old cipher allowed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _permissive_server(cert: Path, key: Path) -> tuple[int, threading.Thread]:
    """A one-shot TLS server that would accept TLS 1.1: proves the probe can connect."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def accept_once() -> None:
        with listener:
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=accept_once, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_tls_11_client_is_refused(service):
    # Control: the same client does get TLS 1.1 from a server that allows it.
    port, thread = _permissive_server(service.cafile, service.home / "tls" / "key.pem")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        legacy_client().wrap_socket(raw) as tls,
    ):
        assert tls.version() == "TLSv1.1"
    thread.join(10)

    with (
        socket.create_connection(("127.0.0.1", service.port), timeout=10) as raw,
        pytest.raises((ssl.SSLError, ConnectionResetError)),
    ):
        legacy_client().wrap_socket(raw).close()


def test_plain_http_to_the_port_gets_no_http_response(service):
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert b"HTTP/" not in received
    assert b"status" not in received
    assert len(received) < 16  # at most a TLS alert record


# --- what a TLS client sees ------------------------------------------------------


def test_responses_carry_hsts_and_security_headers_and_no_server_banner(service):
    response = service.get("/healthz")
    assert response.status == 200
    headers = {k.lower(): v for k, v in response.getheaders()}
    assert headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    assert headers["content-security-policy"].startswith("default-src 'none';")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert "server" not in headers
    assert "x-powered-by" not in headers
    assert "date" in headers


def test_health_check_answers_200_with_no_data(service):
    conn = http.client.HTTPSConnection(
        "localhost", service.port, context=service.client_context(), timeout=10
    )
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read()) == {"status": "ok"}
    conn.close()


def test_api_without_credentials_is_401_json(service):
    conn = http.client.HTTPSConnection(
        "127.0.0.1", service.port, context=service.client_context(), timeout=10
    )
    conn.request("GET", "/api/v1/openapi.json")
    response = conn.getresponse()
    assert response.status == 401
    assert response.getheader("content-type") == "application/json"
    assert json.loads(response.read()) == {
        "error": "unauthenticated",
        "message": "sign-in required",
    }
    conn.close()


def test_service_log_has_no_raw_paths_and_no_access_log(service):
    service.get(f"/api/v1/recordings/{PNR}/nothing")
    service.get(f"/x/{PNR}")
    time.sleep(0.2)
    log = service.log.read_text()
    assert PNR not in log
    assert "GET - 404" in log
    assert '"GET ' not in log  # uvicorn's access-log format


# --- refusals ----------------------------------------------------------------------


def test_refuses_a_non_loopback_address_without_a_configured_certificate(service):
    port = free_port()
    result = service.callvault("serve", CALLVAULT_BIND=f"0.0.0.0:{port}")
    assert result.returncode == 11
    assert "not a loopback address" in result.stderr
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_refuses_a_key_file_that_others_can_read(service, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(service.cafile, cert)
    shutil.copy(service.home / "tls" / "key.pem", key)
    key.chmod(0o644)
    result = service.callvault(
        "serve",
        CALLVAULT_BIND=f"127.0.0.1:{free_port()}",
        CALLVAULT_TLS_CERT_FILE=str(cert),
        CALLVAULT_TLS_KEY_FILE=str(key),
    )
    assert result.returncode == 11
    assert "chmod 600" in result.stderr


def test_refuses_to_start_without_a_certificate(service, tmp_path):
    result = service.callvault(
        "serve",
        CALLVAULT_BIND=f"127.0.0.1:{free_port()}",
        CALLVAULT_HOME=str(tmp_path / "elsewhere"),
    )
    assert result.returncode == 11
    assert "no TLS certificate" in result.stderr


def test_refuses_a_certificate_without_its_key_setting(service):
    result = service.callvault("serve", CALLVAULT_TLS_CERT_FILE=str(service.cafile))
    assert result.returncode == 11
    assert "CALLVAULT_TLS_KEY_FILE" in result.stderr


def test_a_busy_port_is_a_configuration_error(service):
    address = resolve_bind("127.0.0.1", service.port, certificate_configured=False)
    with pytest.raises(ConfigError, match="cannot listen"):
        open_listener(address)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_need_no_configured_certificate(host):
    assert ipaddress.ip_address(
        resolve_bind(host, 8443, certificate_configured=False).host
    ).is_loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "2001:db8::1"])
def test_other_addresses_need_a_configured_certificate(host):
    with pytest.raises(ConfigError, match="not a loopback address"):
        resolve_bind(host, 8443, certificate_configured=False)
    assert resolve_bind(host, 8443, certificate_configured=True).port == 8443


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o606])
def test_key_files_group_or_others_can_access_are_refused(tmp_path, mode):
    files = ensure_self_signed(tmp_path / "tls")
    files.key.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        check_key_file(files.key)
    with pytest.raises(ConfigError, match="chmod 600"):
        server_context(files)


def test_server_context_sets_its_own_tls_12_floor(tmp_path):
    context = server_context(ensure_self_signed(tmp_path / "tls"))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    names = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names and all(n.startswith("ECDHE-") for n in names)
    assert not any("CBC" in n or n.endswith("-SHA") for n in names)
