"""KeyProvider on a PKCS#11 token (an HSM; tested on SoftHSM2 2.6).

Objects on the token, all ``CKA_TOKEN`` and ``CKA_PRIVATE`` (visible only after
user login), named by a label prefix so one token can hold several vaults::

    <prefix>-v<N>          AES-256 root KEK version N.  Generated inside the token,
                           CKA_SENSITIVE, not CKA_EXTRACTABLE, not modifiable, usable for
                           ENCRYPT/DECRYPT only.  The current version is the highest N.
    <prefix>-index-key     GENERIC_SECRET, 32 bytes: the blind-index HMAC key.
    <prefix>-audit-seed    GENERIC_SECRET, 32 bytes: the Ed25519 audit signing seed.

The two secrets are generated inside the token as well, but are extractable:
HMAC and Ed25519 run in this process, so it must be able to read them.  The
token still keeps them behind the user PIN, off the database and the host's
disks, and backed up with the token; they are independent random values, not
derived from any root KEK.  They are read once, at :meth:`Pkcs11Provider.open`.

A root wrap is ``nonce(12) ‖ ciphertext ‖ tag(16)``, computed in the token with
CKM_AES_GCM (python-pkcs11's ``GCMParams``), a 96-bit nonce drawn here with
``secrets`` and AAD :func:`callvault.core.keys.root_wrap_aad`.  The root key
itself never leaves the token.

One R/W session per provider, logged in as the user; calls are serialised by a
lock because a PKCS#11 session must not be used by two threads at once.  Login
is per process and token, so a second provider on the same token in the same
process is refused until the first is closed.  Rotation from two processes at
once could create two keys with one label; ``open`` and every lookup refuse
duplicates, and rotation is meant to run from one administrative command.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import unquote

import pkcs11
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11

from callvault.adapters.keys.securefile import read_secret_setting
from callvault.core.errors import (
    AlreadyExists,
    ConfigError,
    Conflict,
    IntegrityError,
    InvalidInput,
    KeyUnavailable,
    NotFound,
)
from callvault.core.keys import KEY_LEN, NONCE_LEN, TAG_LEN, root_wrap_aad

DEFAULT_PREFIX = "callvault-root"
_PREFIX_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,47}\Z")

_STORED: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.MODIFIABLE: False,
}
_ROOT_TEMPLATE = {**_STORED, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}
_SECRET_TEMPLATE = {**_STORED, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True}

# Errors meaning "the token or session is gone", as opposed to "this
# ciphertext is wrong".  SoftHSM2 reports a failed GCM tag as CKR_GENERAL_ERROR,
# so during a decrypt everything outside this list is an integrity failure.
_UNAVAILABLE = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.DeviceMemory,
    p11.HostMemory,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.UserNotLoggedIn,
    p11.KeyHandleInvalid,
    p11.ObjectHandleInvalid,
    p11.MechanismInvalid,
    p11.MechanismParamInvalid,
    p11.FunctionNotSupported,
)


@contextlib.contextmanager
def _token_errors(operation: str) -> Iterator[None]:
    """Translate every PKCS#11 failure into ``KeyUnavailable``."""
    try:
        yield
    except p11.PKCS11Error as exc:
        raise KeyUnavailable(f"{operation} failed on the token ({type(exc).__name__})") from None


class _SharedLogin:
    """One user login per (module, token) per process, shared by its providers.

    PKCS#11 login state belongs to the process, not to a session: a second
    C_Login fails and any C_Logout logs every session out.  So the first
    provider logs in through an anchor session, later ones open plain sessions
    that inherit the login (after their PIN is compared with the one that
    worked), and the last one to close logs out.
    """

    _registry: ClassVar[dict[tuple[str, bytes], _SharedLogin]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, key: tuple[str, bytes], anchor: Any, pin_digest: bytes) -> None:
        self.key = key
        self.anchor = anchor
        self.pin_digest = pin_digest
        self.users = 0

    @classmethod
    def session(cls, module_path: str, token_label: str, user_pin: str) -> tuple[Any, _SharedLogin]:
        """A new R/W session, logged in as the user, and the login to release with it."""
        token = _get_token(module_path, token_label)
        digest = hashlib.sha256(user_pin.encode("utf-8")).digest()
        with cls._registry_lock:
            with _token_errors("reading the token serial"):
                key = (module_path, bytes(token.serial))
            login = cls._registry.get(key)
            if login is None:
                login = cls(key, _log_in(token, token_label, user_pin), digest)
                cls._registry[key] = login
            elif not hmac.compare_digest(login.pin_digest, digest):
                raise KeyUnavailable(f"token {token_label!r} refused the PIN")
            login.users += 1
            try:
                with _token_errors("opening a session"):
                    return token.open(rw=True), login
            except KeyUnavailable:
                login._drop_user()
                raise

    def release(self, session: Any) -> None:
        with self._registry_lock:
            _close_quietly(session)
            self._drop_user()

    def _drop_user(self) -> None:
        # Called with the registry lock held.
        self.users -= 1
        if self.users <= 0:
            self._registry.pop(self.key, None)
            _close_quietly(self.anchor)  # logs the process out of the token


def _get_token(module_path: str, token_label: str) -> Any:
    try:
        lib = pkcs11.lib(module_path)
    except (p11.PKCS11Error, OSError) as exc:
        raise KeyUnavailable(f"cannot load PKCS#11 module {module_path}: {exc}") from None
    try:
        return lib.get_token(token_label=token_label)
    except p11.NoSuchToken:
        raise KeyUnavailable(f"no PKCS#11 token labelled {token_label!r}") from None
    except p11.MultipleTokensReturned:
        raise KeyUnavailable(f"more than one PKCS#11 token labelled {token_label!r}") from None
    except p11.PKCS11Error as exc:
        raise KeyUnavailable(f"cannot list PKCS#11 tokens ({type(exc).__name__})") from None


def _log_in(token: Any, token_label: str, user_pin: str) -> Any:
    try:
        # A refused PIN leaves one unauthenticated session open inside the
        # module; python-pkcs11 offers no separate login call to avoid it.
        return token.open(rw=True, user_pin=user_pin)
    except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
        raise KeyUnavailable(f"token {token_label!r} refused the PIN") from None
    except p11.PinLocked:
        raise KeyUnavailable(f"the user PIN of token {token_label!r} is locked") from None
    except p11.UserAlreadyLoggedIn:
        raise KeyUnavailable(
            f"token {token_label!r} was logged in by other code in this process"
        ) from None
    except p11.PKCS11Error as exc:
        raise KeyUnavailable(
            f"cannot log in to token {token_label!r} ({type(exc).__name__})"
        ) from None


def _find(session: Any, key_type: KeyType, label: str | None = None) -> list[Any]:
    attrs: dict[Attribute, Any] = {
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: key_type,
    }
    if label is not None:
        attrs[Attribute.LABEL] = label
    with _token_errors("object search"):
        return list(session.get_objects(attrs))  # drained: no search left open


def _roots(session: Any, prefix: str) -> dict[int, Any]:
    """Root KEK objects by version; ``KeyUnavailable`` on a duplicated label."""
    pattern = re.compile(rf"\A{re.escape(prefix)}-v([1-9][0-9]{{0,9}})\Z")
    found: dict[int, Any] = {}
    for obj in _find(session, KeyType.AES):
        with _token_errors("reading a key label"):
            match = pattern.match(obj[Attribute.LABEL])
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise KeyUnavailable(f"two root KEKs labelled {prefix}-v{version} on the token")
        found[version] = obj
    return found


def _read_secret(session: Any, label: str) -> bytes | None:
    objects = _find(session, KeyType.GENERIC_SECRET, label)
    if not objects:
        return None
    if len(objects) > 1:
        raise KeyUnavailable(f"two secrets labelled {label} on the token")
    with _token_errors("reading a secret"):
        value = bytes(objects[0][Attribute.VALUE])
    if len(value) != KEY_LEN:
        raise KeyUnavailable(f"secret {label} on the token is not 32 bytes")
    return value


def _generate(session: Any, label: str, *, root: bool) -> None:
    """Generate a token object: a root KEK (AES) or one of the two secrets."""
    with _token_errors("generating a key"):
        session.generate_key(
            KeyType.AES if root else KeyType.GENERIC_SECRET,
            KEY_LEN * 8,
            label=label,
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
            if root
            else MechanismFlag(0),
            template=_ROOT_TEMPLATE if root else _SECRET_TEMPLATE,
        )


def _check_root_attributes(obj: Any, version: int) -> None:
    # A root KEK that was ever extractable or imported in the clear could
    # exist elsewhere; fail closed rather than trust it.
    with _token_errors("reading key attributes"):
        safe = (
            obj[Attribute.SENSITIVE]
            and obj[Attribute.ALWAYS_SENSITIVE]
            and not obj[Attribute.EXTRACTABLE]
            and obj[Attribute.NEVER_EXTRACTABLE]
        )
    if not safe:
        raise KeyUnavailable(f"root KEK v{version} on the token is or was extractable; refusing it")


class Pkcs11Provider:
    """Root KEKs inside a PKCS#11 token; see the module docstring for the layout."""

    def __init__(
        self, session: Any, login: _SharedLogin, prefix: str, index_key: bytes, audit_seed: bytes
    ) -> None:
        """Use :meth:`create` or :meth:`open`."""
        self._session = session
        self._login = login
        self._prefix = prefix
        self._index_key = index_key
        self._audit_seed = audit_seed
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def create(
        cls,
        module_path: str,
        token_label: str,
        user_pin: str,
        key_label_prefix: str = DEFAULT_PREFIX,
    ) -> Pkcs11Provider:
        """Generate root KEK v1, the index key and the audit seed in the token.

        ``AlreadyExists`` if a root KEK with this prefix exists.  A creation
        interrupted before its root KEK was made is completed (secrets already
        generated are kept: nothing can have used them yet).
        """
        prefix = _validate_prefix(key_label_prefix)
        session, login = _SharedLogin.session(module_path, token_label, _validate_pin(user_pin))
        try:
            if _roots(session, prefix):
                raise AlreadyExists("root KEKs with this label prefix on the token")
            for label in (f"{prefix}-index-key", f"{prefix}-audit-seed"):
                if _read_secret(session, label) is None:
                    _generate(session, label, root=False)
            _generate(session, f"{prefix}-v1", root=True)  # last: its presence marks creation done
            return cls._load(session, login, prefix)
        except BaseException:
            login.release(session)
            raise

    @classmethod
    def open(
        cls,
        module_path: str,
        token_label: str,
        user_pin: str,
        key_label_prefix: str = DEFAULT_PREFIX,
    ) -> Pkcs11Provider:
        """Log in and check that the root KEKs and both secrets are present.

        ``KeyUnavailable`` if the module, token or keys are missing, the PIN is
        refused, or a root KEK is (or ever was) extractable.
        """
        prefix = _validate_prefix(key_label_prefix)
        session, login = _SharedLogin.session(module_path, token_label, _validate_pin(user_pin))
        try:
            roots = _roots(session, prefix)
            if not roots:
                raise KeyUnavailable(f"no root KEK labelled {prefix}-v<N> on token {token_label!r}")
            for version, obj in roots.items():
                _check_root_attributes(obj, version)
            return cls._load(session, login, prefix)
        except BaseException:
            login.release(session)
            raise

    @classmethod
    def _load(cls, session: Any, login: _SharedLogin, prefix: str) -> Pkcs11Provider:
        index_key = _read_secret(session, f"{prefix}-index-key")
        audit_seed = _read_secret(session, f"{prefix}-audit-seed")
        if index_key is None or audit_seed is None:
            raise KeyUnavailable(f"index key or audit seed with prefix {prefix} missing on token")
        return cls(session, login, prefix, index_key, audit_seed)

    def current_version(self) -> int:
        with self._lock:
            return max(self._live_roots())

    def versions(self) -> list[int]:
        with self._lock:
            return sorted(self._live_roots())

    def wrap(self, plaintext: bytes, ad: bytes) -> tuple[int, bytes]:
        if not isinstance(plaintext, bytes):
            raise InvalidInput("plaintext must be bytes")
        with self._lock:
            roots = self._live_roots()
            version = max(roots)
            nonce = secrets.token_bytes(NONCE_LEN)
            params = GCMParams(nonce, root_wrap_aad(version, ad))
            with _token_errors("wrap"):
                sealed = roots[version].encrypt(
                    plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params
                )
            return version, nonce + bytes(sealed)

    def unwrap(self, version: int, blob: bytes, ad: bytes) -> bytes:
        aad = root_wrap_aad(version, ad)
        with self._lock:
            key = self._root(version)
            if not isinstance(blob, bytes) or len(blob) < NONCE_LEN + TAG_LEN:
                raise IntegrityError()
            params = GCMParams(blob[:NONCE_LEN], aad)
            try:
                plain = key.decrypt(
                    blob[NONCE_LEN:], mechanism=Mechanism.AES_GCM, mechanism_param=params
                )
            except _UNAVAILABLE as exc:
                raise KeyUnavailable(f"unwrap failed on the token ({type(exc).__name__})") from None
            except p11.PKCS11Error:
                raise IntegrityError() from None
            return bytes(plain)

    def rotate(self) -> int:
        with self._lock:
            version = max(self._live_roots()) + 1
            _generate(self._session, f"{self._prefix}-v{version}", root=True)
            return version

    def retire(self, version: int) -> None:
        with self._lock:
            roots = self._live_roots()
            if version == max(roots):
                raise Conflict(f"root KEK version {version} is current; rotate first")
            if version not in roots:
                raise NotFound("root KEK version")
            with _token_errors("destroying a root KEK"):
                roots[version].destroy()

    @property
    def key_label_prefix(self) -> str:
        return self._prefix

    def index_key(self) -> bytes:
        return self._index_key

    def audit_signing_seed(self) -> bytes:
        return self._audit_seed

    def close(self) -> None:
        """Log out and close the session; later calls raise ``KeyUnavailable``."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._login.release(self._session)

    def __enter__(self) -> Pkcs11Provider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _root(self, version: int) -> Any:
        # By exact label: one search however many versions are held.
        if self._closed:
            raise KeyUnavailable("the PKCS#11 provider is closed")
        found = _find(self._session, KeyType.AES, f"{self._prefix}-v{version}")
        if len(found) > 1:
            raise KeyUnavailable(f"two root KEKs labelled {self._prefix}-v{version} on the token")
        if not found:
            raise KeyUnavailable(f"root KEK version {version} is not held")
        return found[0]

    def _live_roots(self) -> dict[int, Any]:
        # Looked up on every call (cheap) so a rotation or retirement made by
        # another node is seen at once.
        if self._closed:
            raise KeyUnavailable("the PKCS#11 provider is closed")
        roots = _roots(self._session, self._prefix)
        if not roots:
            raise KeyUnavailable(f"no root KEK labelled {self._prefix}-v<N> on the token")
        return roots


def _validate_pin(pin: str) -> str:
    if not isinstance(pin, str) or not pin:
        raise InvalidInput("empty PKCS#11 user PIN refused")
    return pin


def _validate_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise InvalidInput("key label prefix must be 1-48 letters, digits, '.', '_' or '-'")
    return prefix


def _close_quietly(session: Any) -> None:
    # Closing is best effort: a session the token already dropped is closed.
    with contextlib.suppress(p11.PKCS11Error):
        session.close()


_URL_ATTRIBUTES = frozenset({"token", "module-path", "object"})


def open_from_url(url: str, env: Mapping[str, str], *, create: bool = False) -> Pkcs11Provider:
    """Open (or, with ``create``, create) the provider a ``CALLVAULT_KEYS_URL`` names.

    ``pkcs11:token=<label>;module-path=<path>[;object=<label prefix>]``, in
    RFC 7512 attribute syntax (percent-encoded values; ``module-path`` may also
    sit in the query).  The user PIN is read from ``CALLVAULT_PKCS11_PIN`` or
    ``CALLVAULT_PKCS11_PIN_FILE`` in ``env`` and never from the URL, so
    ``pin-value`` and ``pin-source`` are refused (``ConfigError``).
    """
    scheme, _, rest = url.partition(":")
    path, _, query = rest.partition("?")
    attrs: dict[str, str] = {}
    for part in [p for p in path.split(";") if p] + [q for q in query.split("&") if q]:
        name, sep, value = part.partition("=")
        if scheme != "pkcs11" or not sep or name in attrs or name not in _URL_ATTRIBUTES:
            raise ConfigError(
                f"PKCS#11 URL attribute {name!r} refused: use pkcs11:token=<label>;"
                "module-path=<path>[;object=<prefix>], PIN in CALLVAULT_PKCS11_PIN_FILE"
            )
        attrs[name] = unquote(value)
    if "token" not in attrs or "module-path" not in attrs:
        raise ConfigError("PKCS#11 URL needs token=<label> and module-path=<path>")
    pin = read_secret_setting(env, "CALLVAULT_PKCS11_PIN", None, what="PKCS#11 user PIN")
    try:
        user_pin = pin.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the PKCS#11 user PIN must be UTF-8 text") from None
    opener = Pkcs11Provider.create if create else Pkcs11Provider.open
    return opener(
        attrs["module-path"], attrs["token"], user_pin, attrs.get("object", DEFAULT_PREFIX)
    )
