"""One error tree for the whole vault.

Every class carries a message template and a stable ``code``.  Entry points map
errors to exit codes (CLI) and HTTP statuses (API) in exactly one place each,
using ``exit_code`` and ``http_status``.  Messages never contain personal data:
templates are filled only with values the caller chose to show (ids, counts,
file kinds), never with phone numbers, personnummer or audio content.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CallvaultError(Exception):
    """Root of every error the vault raises on purpose."""

    code: ClassVar[str] = "error"
    template: ClassVar[str] = "{detail}"
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(self, detail: str = "", **params: Any) -> None:
        self.params = {"detail": detail, **params}
        try:
            message = self.template.format(**self.params)
        except (KeyError, IndexError):
            message = detail or self.code
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(CallvaultError):
    """The caller gave something we refuse; nothing was changed."""

    code = "invalid_input"
    exit_code = 2
    http_status = 400


class InvalidIdentifier(InvalidInput):
    code = "invalid_identifier"
    template = "not a valid {kind}: {detail}"


class UnsupportedAudio(InvalidInput):
    """Not audio we can decode: non-audio, truncated, empty, mislabelled, too large."""

    code = "unsupported_audio"
    template = "refused audio input: {detail}"
    http_status = 415


class NotFound(CallvaultError):
    code = "not_found"
    template = "{what} not found"
    exit_code = 3
    http_status = 404

    def __init__(self, what: str = "object", detail: str = "") -> None:
        super().__init__(detail, what=what)


class AlreadyExists(CallvaultError):
    code = "already_exists"
    template = "{what} already exists"
    exit_code = 4
    http_status = 409

    def __init__(self, what: str = "object", detail: str = "") -> None:
        super().__init__(detail, what=what)


class Conflict(CallvaultError):
    code = "conflict"
    exit_code = 4
    http_status = 409


class NoRecordingPolicy(Conflict):
    """Ingest refused: no active recording policy for the unit and class (R19)."""

    code = "no_recording_policy"
    template = (
        "no active recording policy for care unit {unit}, retention class {klass}: "
        "an administrator must set one first (callvault policies set)"
    )


class IntegrityError(CallvaultError):
    """Authentication of stored data failed.

    Deliberately opaque: it never says which check failed or where, so it
    cannot be used as an oracle.
    """

    code = "integrity"
    template = "integrity check failed"
    exit_code = 5
    http_status = 500

    def __init__(self) -> None:
        super().__init__("")


class KeyUnavailable(CallvaultError):
    """A key is missing, destroyed, sealed or the key provider is unreachable."""

    code = "key_unavailable"
    template = "key unavailable: {detail}"
    exit_code = 6
    http_status = 503


class WrongPassphrase(KeyUnavailable):
    code = "wrong_passphrase"
    template = "the passphrase does not open the key file"


class InsecureKeyFile(KeyUnavailable):
    code = "insecure_key_file"
    template = "refusing key file {detail}: only its owner may read it (chmod 600)"


class AuditUnavailable(CallvaultError):
    """The audit entry could not be made durable; the access must not happen (R15)."""

    code = "audit_unavailable"
    template = "audit log unavailable, access refused: {detail}"
    exit_code = 7
    http_status = 503


class AuditTampered(CallvaultError):
    code = "audit_tampered"
    template = "audit log verification failed: {detail}"
    exit_code = 8
    http_status = 500


class Unauthenticated(CallvaultError):
    """No valid session or token; the same answer whatever was wrong with it."""

    code = "unauthenticated"
    template = "sign-in required"
    exit_code = 9
    http_status = 401

    def __init__(self) -> None:
        super().__init__("")


class RateLimited(CallvaultError):
    code = "rate_limited"
    template = "too many requests: {detail}"
    exit_code = 12
    http_status = 429


class TooLarge(InvalidInput):
    code = "too_large"
    template = "request too large: {detail}"
    http_status = 413


class RangeNotSatisfiable(InvalidInput):
    code = "range_not_satisfiable"
    template = "range not satisfiable"
    http_status = 416

    def __init__(self, size: int = 0) -> None:
        super().__init__("")
        self.size = size


class AccessDenied(CallvaultError):
    code = "access_denied"
    template = "access denied: {detail}"
    exit_code = 9
    http_status = 403


class StorageError(CallvaultError):
    """A backend (disk, database, object store) failed; translated by adapters."""

    code = "storage"
    template = "storage failure: {detail}"
    exit_code = 10
    http_status = 503


class ConfigError(CallvaultError):
    code = "config"
    template = "configuration error: {detail}"
    exit_code = 11
    http_status = 500


class VaultNotInitialised(ConfigError):
    code = "not_initialised"
    template = "no vault here: {detail} (run `callvault init` first)"
