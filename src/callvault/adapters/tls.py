"""TLS material for the HTTPS service: a self-signed localhost certificate and
the server's ``ssl.SSLContext``.

``init`` makes the self-signed pair when no certificate is configured, so the
service never has a reason to speak plain HTTP (R5)::

    $CALLVAULT_HOME/tls/      0700
      cert.pem                0644   X.509 v3, EC P-256 key, ECDSA-SHA-256 signature,
                                     CN=localhost, SAN DNS:localhost IP:127.0.0.1 IP:::1,
                                     valid from 5 minutes ago for 365 days,
                                     CA:FALSE, keyUsage digitalSignature, EKU serverAuth
      key.pem                 0600   PKCS#8 PEM, unencrypted (the service starts unattended)

The private key is written to a temporary name opened ``O_EXCL`` with mode
0600 and renamed into place after the certificate, so a crash leaves either
no pair or a whole one, never a key readable by others.

The server context accepts TLS 1.2 and 1.3 only; on 1.2 it offers ECDHE key
exchange with AEAD ciphers only (forward secrecy, no CBC, no RSA key
transport), no compression and no renegotiation.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from callvault.core.errors import ConfigError

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
VALIDITY = dt.timedelta(days=365)
# A client whose clock is a little behind must not see a "not yet valid" certificate.
BACKDATE = dt.timedelta(minutes=5)
# TLS 1.2 suites: ephemeral ECDH and an AEAD only.  TLS 1.3 suites are all
# AEAD with ephemeral key exchange already, and OpenSSL keeps them apart.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!PSK:!SRP"


@dataclass(frozen=True)
class TlsFiles:
    """A PEM certificate chain and its PEM private key."""

    cert: Path
    key: Path


def default_files(directory: Path) -> TlsFiles:
    return TlsFiles(directory / CERT_NAME, directory / KEY_NAME)


def ensure_self_signed(directory: Path, *, now: dt.datetime | None = None) -> TlsFiles:
    """Return the self-signed pair in ``directory``, making it if it is missing.

    An existing whole pair is kept (its fingerprint may already be trusted);
    half a pair is replaced.  ``directory`` is created 0700.
    """
    files = default_files(directory)
    if files.cert.is_file() and files.key.is_file():
        return files
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    cert_pem, key_pem = self_signed_pem(now or dt.datetime.now(dt.UTC))
    _write_atomically(files.key, key_pem, 0o600)
    _write_atomically(files.cert, cert_pem, 0o644)
    return files


def self_signed_pem(now: dt.datetime) -> tuple[bytes, bytes]:
    """A fresh (certificate PEM, PKCS#8 key PEM) for localhost, valid from ``now``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
    )
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits we want (cert 0644)
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def check_key_file(path: Path) -> None:
    """Refuse a private key that is missing, not a regular file, or that group or
    others may read or write (``ConfigError``, naming the path and mode only)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"no TLS private key at {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS private key at {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"the TLS private key {path} is not a regular file")
    if st.st_mode & 0o077:
        raise ConfigError(
            f"refusing TLS private key {path} (mode {stat.S_IMODE(st.st_mode):04o}): "
            "only its owner may read it (chmod 600)"
        )


def fingerprint(cert: Path) -> str:
    """SHA-256 fingerprint of the first certificate in ``cert``, as ``AB:CD:…``."""
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the TLS certificate at {cert}") from exc
    return loaded.fingerprint(hashes.SHA256()).hex(":").upper()


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """An ``SSLContext`` for the service: TLS 1.2+, AEAD suites, the pair loaded.

    ``ConfigError`` when the certificate is missing, the key fails
    :func:`check_key_file`, or the two do not load (wrong format, not a pair).
    """
    if not files.cert.is_file():
        raise ConfigError(f"no TLS certificate at {files.cert}")
    check_key_file(files.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Python's default is 1.2 too, but a system OpenSSL configuration may
    # lower it; the floor is ours to set, never inherited.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= (
        ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    )
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(files.cert, files.key, password=_no_prompt)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {files.cert} with key {files.key} "
            "(PEM files of one pair expected)"
        ) from exc
    return context


def _no_prompt() -> str:
    # Without a callback OpenSSL would ask for a passphrase on the terminal.
    raise ConfigError(
        "the TLS private key is encrypted; the service needs it unencrypted, mode 0600"
    )
