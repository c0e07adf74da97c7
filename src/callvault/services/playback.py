"""Playing and downloading recordings: purpose-bound grants, range reads and limits.

Playing is two steps (R9, R15)::

    open_playback(reason)  -> a grant for this user, session and recording, <= 10 min;
                              the one recording:play entry, committed
    audio(range) ...       -> bytes, as often as the player seeks, while the grant
                              is open; these reads are not logged one by one

Downloading is the same with ``recording.download`` and ``recording:download``,
a separate permission, and a grant that serves one whole copy.  Access that
only an emergency grant allowed is flagged in its entry and queued for
review (R10).  Each user may open ``PLAY_GRANTS_PER_HOUR`` playback and
``DOWNLOAD_GRANTS_PER_HOUR`` download grants an hour; past that the answer is
``RateLimited``, an ``alert:rate_limit`` entry and a review item (R12).

Audio is decrypted segment by segment as it is sent: a range touches only
the segments it covers and memory stays flat.  Before any byte is served the
key commitment and the object's length are checked against the row; a
download also checks the SHA-256 of the whole object (R23).
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

from callvault.core import format as cv1
from callvault.core.access import (
    Operation,
    Principal,
    RecordingTarget,
    can,
)
from callvault.core.audit import Action, Outcome, contains_personal_identifier
from callvault.core.errors import InvalidInput, RateLimited
from callvault.core.ranges import ByteRange, parse_range
from callvault.core.recordings import ACTIVE, RecordingRow, parse_recording_id
from callvault.core.rows import AccessGrantRow
from callvault.services import accounts, audit, credentials, keyring
from callvault.services.context import Vault
from callvault.services.guard import (
    account_id,
    admit,
    deny,
    flag,
    reachable,
    refuse_role_level,
)
from callvault.services.play_cache import PassedCheck
from callvault.services.recordings import check_ciphertext, check_length, object_reader

GRANT_TTL = dt.timedelta(minutes=10)
RATE_WINDOW = dt.timedelta(hours=1)
PLAY_GRANTS_PER_HOUR = 60
DOWNLOAD_GRANTS_PER_HOUR = 10
MAX_REASON = 500
_EXTENSIONS = {"audio/wav": "wav", "audio/mpeg": "mp3"}


@dataclass(frozen=True)
class _Kind:
    name: str
    operation: Operation
    action: Action
    per_hour: int
    single_use: bool


PLAY = _Kind("play", Operation.RECORDING_PLAY, Action.RECORDING_PLAY, PLAY_GRANTS_PER_HOUR, False)
DOWNLOAD = _Kind(
    "download",
    Operation.RECORDING_DOWNLOAD,
    Action.RECORDING_DOWNLOAD,
    DOWNLOAD_GRANTS_PER_HOUR,
    True,
)


@dataclass(frozen=True)
class Grant:
    id: uuid.UUID
    kind: str
    recording_id: uuid.UUID
    expires_at: dt.datetime
    emergency: bool


@dataclass(frozen=True)
class AudioStream:
    """Audio ready to send: ``chunks`` yields the bytes of ``range`` (or all ``size``).

    The first chunk has already been read and authenticated, so an integrity
    failure surfaces before any status line is sent.
    """

    media_type: str
    size: int
    range: ByteRange | None
    chunks: Iterator[bytes]
    filename: str | None = None

    @property
    def status(self) -> int:
        return 206 if self.range is not None else 200

    @property
    def length(self) -> int:
        return self.range.length if self.range is not None else self.size


def purpose(reason: object) -> str:
    """The typed reason for an access, screened like any audit text (R9)."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a reason is required to play or download a recording")
    text = reason.strip()
    if len(text) > MAX_REASON or not text.isprintable():
        raise InvalidInput(f"the reason must be one line of at most {MAX_REASON} characters")
    if contains_personal_identifier(text):
        raise InvalidInput("the reason must not contain personal identifiers")
    return text


# --- grants -------------------------------------------------------------------------


def open_playback(
    vault: Vault, principal: Principal, recording_id: uuid.UUID, reason: str
) -> Grant:
    """Open a playback grant for ``principal``'s session; writes the ``recording:play`` entry."""
    return _open_grant(vault, principal, recording_id, reason, PLAY)


def open_download(
    vault: Vault, principal: Principal, recording_id: uuid.UUID, reason: str
) -> Grant:
    """Open a one-copy download grant; writes the ``recording:download`` entry."""
    return _open_grant(vault, principal, recording_id, reason, DOWNLOAD)


def _open_grant(
    vault: Vault, principal: Principal, recording_id: uuid.UUID, reason: str, kind: _Kind
) -> Grant:
    # A role that never plays or downloads is refused before its reason is read.
    refuse_role_level(vault, principal, recording_id, kind.operation)
    text = purpose(reason)
    row, decision = reachable(vault, principal, recording_id, kind.operation, kind.action, text)
    user_id = account_id(vault, principal, kind.operation, row.id)
    now = vault.now()
    with vault.store.transaction() as tx:
        if tx.grants.count_grants(user_id, kind.name, now - RATE_WINDOW) < kind.per_hour:
            grant = AccessGrantRow(
                id=uuid.uuid4(),
                kind=kind.name,
                user_id=user_id,
                session_public_id=principal.session,
                recording_id=row.id,
                reason=text,
                emergency=decision.emergency,
                created_at=now,
                expires_at=now + GRANT_TTL,
            )
            tx.grants.insert_grant(grant)
            seq = audit.record(
                vault, tx, principal, kind.action, recording_id=row.id, reason=text,
                detail=flag(decision),
            )  # fmt: skip
            if decision.emergency:
                tx.grants.add_review_item(f"emergency_{kind.name}", seq, principal.name, now)
            return Grant(grant.id, kind.name, row.id, grant.expires_at, decision.emergency)
    _rate_limited(vault, principal, kind, row.id, now)


def _rate_limited(
    vault: Vault, principal: Principal, kind: _Kind, recording_id: uuid.UUID, now: dt.datetime
) -> NoReturn:
    """Log the alert, queue one review item per user and window, refuse."""
    with vault.store.transaction() as tx:
        seq = audit.record(
            vault, tx, principal, Action.ALERT_RATE_LIMIT, Outcome.DENIED,
            recording_id=recording_id, detail={"kind": kind.name, "limit": kind.per_hour},
        )  # fmt: skip
        since = now - RATE_WINDOW
        if not tx.grants.open_review_items("rate_limit", principal.name, since, limit=1):
            tx.grants.add_review_item("rate_limit", seq, principal.name, now)
    raise RateLimited(f"at most {kind.per_hour} {kind.name} grants an hour")


# --- serving ------------------------------------------------------------------------


def audio(
    vault: Vault, principal: Principal, recording_id: uuid.UUID, range_header: str | None
) -> AudioStream:
    """The audio (or the one range asked for) under an open playback grant.

    Needs ``recording.play`` now (re-checked on every request) and a grant
    this user opened in this session for this recording.  Refusals are
    logged; served ranges are not.  ``InvalidInput``/``RangeNotSatisfiable``
    for a bad range, only once the grant is established.
    """
    return _range_stream(vault, _checked_play(vault, principal, recording_id), range_header)


def audio_request(
    vault: Vault,
    recording_id: str,
    range_header: str | None,
    *,
    session_token: str | None,
    authorization: str | None,
    client: str | None,
) -> tuple[Principal, AudioStream]:
    """:func:`audio` for a request's raw credentials, with the one-second memory.

    A session whose full check passed for this recording less than a second
    ago is served from :class:`~callvault.services.play_cache.PlayCache`
    (see there for what that second may cost); everything else, including
    any request that also carries a bearer token, is resolved and checked
    in full.  Returns the principal too, for the request log.
    """
    digest = credentials.digest(session_token) if session_token and not authorization else None
    known = _maybe_id(recording_id)
    if digest is not None and known is not None:
        hit = vault.play_cache.recall(digest, known, vault.now())
        if hit is not None:
            return hit.principal, _range_stream(vault, hit, range_header)
    principal = accounts.resolve(
        vault,
        session_token=session_token,
        authorization=authorization,
        csrf_token=None,
        method="GET",
        client=client,
    )
    # A malformed id is refused only now, so an anonymous caller learns nothing from it.
    check = _checked_play(vault, principal, parse_recording_id(recording_id))
    stream = _range_stream(vault, check, range_header)
    if digest is not None:
        vault.play_cache.remember(digest, check, vault.now())
    return principal, stream


def _maybe_id(text: str) -> uuid.UUID | None:
    try:
        return parse_recording_id(text)
    except InvalidInput:
        return None


def _checked_play(vault: Vault, principal: Principal, recording_id: uuid.UUID) -> PassedCheck:
    """Everything a range needs, checked: role, reach, grant, DEK, commitment, length."""
    refuse_role_level(vault, principal, recording_id, PLAY.operation)
    found, dek = _play_lookup(vault, principal, recording_id)
    row, _ = admit(vault, principal, recording_id, found, PLAY.operation, PLAY.action)
    if dek is None:
        deny(vault, principal, PLAY.operation, "no_grant", row.id)
    cv1.check_commitment(dek, _ad(row), row.commitment)
    return PassedCheck(principal, row, dek, check_length(vault, row))


def _range_stream(vault: Vault, check: PassedCheck, range_header: str | None) -> AudioStream:
    row = check.row
    byte_range = parse_range(range_header, row.plaintext_size)
    reader = cv1.CiphertextReader(
        check.dek, _ad(row), object_reader(vault, row), check.ciphertext_size
    )
    return _stream(row, reader, byte_range, None)


def _ad(row: RecordingRow) -> bytes:
    return cv1.associated_data(row.id, row.dek_id, row.media_type)


def _play_lookup(
    vault: Vault, principal: Principal, recording_id: uuid.UUID
) -> tuple[RecordingRow | None, bytes | None]:
    """The recording row and, under an open playback grant, its DEK.

    One read-only unit for every lookup (no write lock, one snapshot).  The
    DEK is unwrapped only if ``principal`` may play the row right now; the
    caller still runs :func:`admit` to log and raise any refusal.
    """
    now = vault.now()
    with vault.store.transaction(read_only=True) as tx:
        row = tx.get_recording(recording_id)
        if row is None or row.state != ACTIVE:
            return row, None
        if not can(principal, PLAY.operation, RecordingTarget.of(row), now=now).allowed:
            return row, None
        user = tx.accounts.user_by_name(principal.name)
        if user is None or user.disabled_at is not None:
            return row, None
        grant = tx.grants.open_grant(PLAY.name, user.id, principal.session, row.id, now)
        return row, (keyring.unwrap_dek(vault, tx, row) if grant is not None else None)


def download(vault: Vault, principal: Principal, recording_id: uuid.UUID) -> AudioStream:
    """The whole recording as an attachment, once per download grant."""
    row, _ = reachable(vault, principal, recording_id, DOWNLOAD.operation, DOWNLOAD.action)
    dek = _within_grant(vault, principal, row, DOWNLOAD)
    ext = _EXTENSIONS.get(row.media_type, "bin")
    # The name says which recording, and nothing about the call or the caller.
    name = f"recording-{row.id.hex[:8]}.{ext}"
    return _serve(vault, row, dek, None, name, full_check=True)


def _within_grant(vault: Vault, principal: Principal, row: RecordingRow, kind: _Kind) -> bytes:
    """The recording's DEK, if an open grant of ``kind`` covers this request."""
    now = vault.now()
    with vault.store.transaction() as tx:
        user = tx.accounts.user_by_name(principal.name)
        grant = None
        if user is not None and user.disabled_at is None:
            grant = tx.grants.open_grant(kind.name, user.id, principal.session, row.id, now)
        if grant is not None and kind.single_use and not tx.grants.consume_grant(grant.id, now):
            grant = None
        dek = keyring.unwrap_dek(vault, tx, row) if grant is not None else None
    if dek is None:
        deny(vault, principal, kind.operation, "no_grant", row.id)
    return dek


def _serve(
    vault: Vault,
    row: RecordingRow,
    dek: bytes,
    byte_range: ByteRange | None,
    filename: str | None,
    *,
    full_check: bool,
) -> AudioStream:
    cv1.check_commitment(dek, _ad(row), row.commitment)
    if full_check:
        check_ciphertext(vault, row)
    size = check_length(vault, row)
    reader = cv1.CiphertextReader(dek, _ad(row), object_reader(vault, row), size)
    return _stream(row, reader, byte_range, filename)


def _stream(
    row: RecordingRow,
    reader: cv1.CiphertextReader,
    byte_range: ByteRange | None,
    filename: str | None,
) -> AudioStream:
    if byte_range is None:
        chunks = reader.stream()
    else:
        chunks = reader.stream(byte_range.start, byte_range.stop)
    # The first chunk is read and authenticated before any status line is sent.
    first = next(chunks, b"")
    return AudioStream(
        row.media_type,
        row.plaintext_size,
        byte_range,
        itertools.chain((first,), chunks),
        filename,
    )
