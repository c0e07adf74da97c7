"""Playback and download grants, emergency access and rate limits, at the service level.

Every test runs on SQLite and on PostgreSQL.

R9 (a stated reason, play and download separate), R10 (emergency access
flagged and reviewed), R12 (per-user limits with an alert), R15 (the one
play entry is committed before any byte), R23 (the object is checked before
it is served).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.core.access import ANY, EmergencyGrant, Principal, Role
from callvault.core.audit import Action, AuditEvent, Outcome
from callvault.core.errors import (
    AccessDenied,
    IntegrityError,
    InvalidInput,
    NotFound,
    RangeNotSatisfiable,
    RateLimited,
)
from callvault.core.rows import ReviewItemRow
from callvault.services import accounts, emergency, ingest, playback
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.testing import postgres
from callvault.testing.audio import make_tone_wav
from callvault.testing.clock import FakeClock
from callvault.testing.http import ensure_care_units

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
OPERATOR = Principal("tester", Role.OPERATOR)
SESSION = "5e55105e55105e55"
OTHER_SESSION = "0123456789abcdef"
REASON = "Caller rang back about the earlier advice"
PEOPLE = {
    "nurse.a": ("call_handler", ["unit-a"]),
    "nurse.b": ("call_handler", ["unit-b"]),
    "boss.a": ("supervisor", ["unit-a"]),
    "privacy.p": ("privacy_officer", []),
}


@dataclass
class World:
    vault: Vault
    clock: FakeClock
    blobs: Path
    own: uuid.UUID  # taken by nurse.a in unit-a
    colleague: uuid.UUID  # taken by nurse.c in unit-a
    far: uuid.UUID  # taken by nurse.b in unit-b
    audio: dict[uuid.UUID, bytes]


def store(vault: Vault, wav: Path, unit: str, agent: str) -> uuid.UUID:
    details = CallDetails.parse(
        care_unit=unit,
        started_at="2026-03-01T10:22:00+01:00",
        today=T0.date(),
        caller="070-174 06 05",
        agent=agent,
    )
    return ingest.ingest(vault, OPERATOR, wav, details).recording_id


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        (tmp_path / "data").mkdir(mode=0o700)
        yield f"sqlite:///{tmp_path / 'data' / 'vault.db'}"
    else:
        with postgres.throwaway_database() as url:
            yield url


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    (tmp_path / "keys").mkdir(mode=0o700)
    keys = KeyfileProvider.create(
        tmp_path / "keys" / "k", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    clock = FakeClock(T0)
    vault = Vault(
        store=SqlMetadataStore.open(database_url),
        blobs=open_blobstore((tmp_path / "blobs").as_uri()),
        keys=keys,
        clock=clock,
        probe=analyse,
        origin=vault_service.origin_for(str(uuid.uuid4())),
    )
    try:
        vault_service.initialise(vault, OPERATOR)
        ensure_care_units(vault, ["unit-a", "unit-b"])
        for name, (role, units) in PEOPLE.items():
            accounts.create_user(vault, OPERATOR, name, role, units)
        audio: dict[uuid.UUID, bytes] = {}
        ids = []
        for freq, (unit, agent) in zip(
            (440, 550, 660), (("unit-a", "nurse.a"), ("unit-a", "nurse.c"), ("unit-b", "nurse.b"))
        ):
            wav = make_tone_wav(tmp_path / f"{freq}.wav", 10.0, frequency=freq)
            rid = store(vault, wav, unit, agent)
            audio[rid] = wav.read_bytes()
            ids.append(rid)
        yield World(vault, clock, tmp_path / "blobs", *ids, audio)
    finally:
        vault.close()


def person(world: World, name: str, session: str = SESSION) -> Principal:
    """The principal a signed-in session of ``name`` resolves to, emergency grant included."""
    with world.vault.store.transaction() as tx:
        user = tx.accounts.user_by_name(name)
        assert user is not None
        row = tx.accounts.active_emergency_grant(user.id, world.clock.now())
    grant = None
    if row is not None:
        grant = EmergencyGrant(
            holder=name,
            care_units=ANY if row.care_units is None else row.care_units,
            reason=row.reason,
            opened_at=row.opened_at,
            expires_at=row.expires_at,
        )
    return Principal(name, user.role, care_units=user.care_units, session=session, emergency=grant)


def log_size(vault: Vault) -> int:
    with vault.store.transaction() as tx:
        return tx.audit_head()[0]


def entries_since(vault: Vault, seq: int) -> list[AuditEvent]:
    return [AuditEvent.from_canonical(r.body) for r in vault.store.iter_audit(seq)]


def review_items(vault: Vault) -> list[ReviewItemRow]:
    with vault.store.transaction() as tx:
        return tx.grants.open_review_items()


def played(stream: playback.AudioStream) -> bytes:
    return b"".join(stream.chunks)


# --- grants -------------------------------------------------------------------------------


def test_playing_without_a_grant_is_refused_and_the_refusal_is_logged(world: World) -> None:
    nurse = person(world, "nurse.a")
    before = log_size(world.vault)
    with pytest.raises(AccessDenied):
        playback.audio(world.vault, nurse, world.own, None)
    [entry] = entries_since(world.vault, before)
    assert (entry.action, entry.outcome) == (Action.ACCESS_DENIED, Outcome.DENIED)
    assert entry.recording_id == world.own
    assert dict(entry.detail) == {"operation": "recording.play", "reason": "no_grant"}


@pytest.mark.parametrize("reason", ["", "   ", "ring 070-174 06 05", "two\nlines", "x" * 501])
def test_a_missing_or_unfit_reason_opens_nothing_and_writes_nothing(
    world: World, reason: str
) -> None:
    nurse = person(world, "nurse.a")
    before = log_size(world.vault)
    with pytest.raises(InvalidInput) as caught:
        playback.open_playback(world.vault, nurse, world.own, reason)
    assert "070" not in str(caught.value)
    assert log_size(world.vault) == before
    with pytest.raises(AccessDenied):
        playback.audio(world.vault, nurse, world.own, None)


def test_one_grant_serves_every_range_and_writes_exactly_one_play_entry(world: World) -> None:
    nurse, original = person(world, "nurse.a"), world.audio[world.own]
    before = log_size(world.vault)
    grant = playback.open_playback(world.vault, nurse, world.own, REASON)
    assert grant.expires_at - T0 == dt.timedelta(minutes=10) and not grant.emergency
    [entry] = entries_since(world.vault, before)
    assert (entry.action, entry.reason, entry.session) == (Action.RECORDING_PLAY, REASON, SESSION)
    assert entry.recording_id == world.own and dict(entry.detail) == {}

    whole = playback.audio(world.vault, nurse, world.own, None)
    assert (whole.status, whole.media_type, whole.size) == (200, "audio/wav", len(original))
    assert played(whole) == original
    size = len(original)
    for header, expected in (
        ("bytes=0-0", original[:1]),
        ("bytes=65470-65500", original[65470:65501]),  # across the first segment border
        ("bytes=100000-", original[100000:]),
        ("bytes=-1000", original[-1000:]),
        (f"bytes=131000-{10 * size}", original[131000:]),
    ):
        part = playback.audio(world.vault, nurse, world.own, header)
        assert part.status == 206 and part.range is not None
        assert part.length == len(expected) and played(part) == expected
    assert log_size(world.vault) == before + 1


def test_a_bad_range_inside_a_grant_is_refused_without_audio(world: World) -> None:
    nurse = person(world, "nurse.a")
    playback.open_playback(world.vault, nurse, world.own, REASON)
    size = len(world.audio[world.own])
    with pytest.raises(RangeNotSatisfiable) as beyond:
        playback.audio(world.vault, nurse, world.own, f"bytes={size}-")
    assert beyond.value.size == size
    with pytest.raises(InvalidInput):
        playback.audio(world.vault, nurse, world.own, "bytes=5-2")


def test_a_grant_expires_after_ten_minutes(world: World) -> None:
    nurse = person(world, "nurse.a")
    playback.open_playback(world.vault, nurse, world.own, REASON)
    world.clock.advance(minutes=9, seconds=59)
    assert (
        played(playback.audio(world.vault, nurse, world.own, "bytes=0-9"))
        == (world.audio[world.own][:10])
    )
    world.clock.advance(seconds=1)
    with pytest.raises(AccessDenied):
        playback.audio(world.vault, nurse, world.own, "bytes=0-9")


def test_a_grant_is_bound_to_its_session_and_its_recording(world: World) -> None:
    boss = person(world, "boss.a")
    playback.open_playback(world.vault, boss, world.own, REASON)
    with pytest.raises(AccessDenied):
        playback.audio(world.vault, person(world, "boss.a", OTHER_SESSION), world.own, None)
    with pytest.raises(AccessDenied):
        playback.audio(world.vault, boss, world.colleague, None)
    assert (
        played(playback.audio(world.vault, boss, world.own, "bytes=-4"))
        == (world.audio[world.own][-4:])
    )


def test_a_colleagues_call_answers_like_an_unknown_id_but_is_logged_as_denied(
    world: World,
) -> None:
    nurse = person(world, "nurse.a")
    before = log_size(world.vault)
    with pytest.raises(NotFound) as hidden:
        playback.open_playback(world.vault, nurse, world.colleague, REASON)
    with pytest.raises(NotFound) as unknown:
        playback.open_playback(world.vault, nurse, uuid.uuid4(), REASON)
    assert str(hidden.value) == str(unknown.value)
    denied, missing = entries_since(world.vault, before)
    assert denied.action == Action.ACCESS_DENIED and denied.recording_id == world.colleague
    assert dict(denied.detail) == {"operation": "recording.play", "reason": "not_own_call"}
    assert (missing.action, missing.outcome) == (Action.RECORDING_PLAY, Outcome.FAILED)


# --- download -----------------------------------------------------------------------------


def test_download_is_a_separate_permission_and_a_separate_action(world: World) -> None:
    nurse, boss = person(world, "nurse.a"), person(world, "boss.a")
    playback.open_playback(world.vault, nurse, world.own, REASON)
    with pytest.raises(AccessDenied):
        playback.open_download(world.vault, nurse, world.own, REASON)
    with pytest.raises(AccessDenied):
        playback.download(world.vault, nurse, world.own)

    before = log_size(world.vault)
    grant = playback.open_download(world.vault, boss, world.own, "Quality review of the call")
    assert grant.kind == "download"
    [entry] = entries_since(world.vault, before)
    assert (
        entry.action == Action.RECORDING_DOWNLOAD and entry.reason == "Quality review of the call"
    )
    copy = playback.download(world.vault, boss, world.own)
    assert copy.filename == f"recording-{world.own.hex[:8]}.wav"
    assert copy.status == 200 and played(copy) == world.audio[world.own]
    with pytest.raises(AccessDenied):  # one copy per grant
        playback.download(world.vault, boss, world.own)


def test_a_play_grant_does_not_open_a_download_or_the_other_way_round(world: World) -> None:
    boss = person(world, "boss.a")
    playback.open_playback(world.vault, boss, world.own, REASON)
    with pytest.raises(AccessDenied):
        playback.download(world.vault, boss, world.own)
    playback.open_download(world.vault, boss, world.colleague, REASON)
    with pytest.raises(AccessDenied):
        playback.audio(world.vault, boss, world.colleague, None)


# --- emergency access (R10) ---------------------------------------------------------------


def test_emergency_access_is_time_boxed_flagged_and_queued_for_review(world: World) -> None:
    outsider = person(world, "nurse.b")
    with pytest.raises(NotFound):
        playback.open_playback(world.vault, outsider, world.own, REASON)
    before = log_size(world.vault)
    grant = emergency.open_emergency(
        world.vault, outsider, "Caller in distress, earlier advice needed", ["unit-a"]
    )
    assert grant.expires_at - grant.opened_at == dt.timedelta(hours=4)
    [opened] = entries_since(world.vault, before)
    assert opened.action == Action.ACCESS_EMERGENCY and opened.detail["emergency"] is True
    assert opened.detail["units"] == "unit-a"

    outsider = person(world, "nurse.b")  # the next request carries the stored grant
    assert outsider.emergency is not None
    play = playback.open_playback(world.vault, outsider, world.own, REASON)
    assert play.emergency
    entry = entries_since(world.vault, before)[-1]
    assert entry.action == Action.RECORDING_PLAY and entry.detail == {"emergency": True}
    assert played(playback.audio(world.vault, outsider, world.own, "bytes=0-3")) == b"RIFF"
    kinds = [(item.kind, item.actor) for item in review_items(world.vault)]
    assert kinds == [("emergency_access", "nurse.b"), ("emergency_play", "nurse.b")]
    with pytest.raises(AccessDenied):  # emergency access never extends to downloads
        playback.open_download(world.vault, outsider, world.own, REASON)

    world.clock.advance(hours=4)
    expired = person(world, "nurse.b")
    assert expired.emergency is None
    with pytest.raises(NotFound):
        playback.open_playback(world.vault, expired, world.own, REASON)


def test_emergency_access_is_refused_to_roles_it_never_extends_and_logged(world: World) -> None:
    officer = person(world, "privacy.p")
    before = log_size(world.vault)
    with pytest.raises(AccessDenied):
        emergency.open_emergency(world.vault, officer, "Need to hear it for a complaint", "any")
    [entry] = entries_since(world.vault, before)
    assert entry.action == Action.ACCESS_DENIED
    assert entry.detail["reason"] == "emergency_not_permitted"
    assert review_items(world.vault) == []


def test_an_emergency_reason_with_an_identifier_or_too_long_a_duration_is_refused(
    world: World,
) -> None:
    nurse = person(world, "nurse.b")
    with pytest.raises(InvalidInput):
        emergency.open_emergency(world.vault, nurse, "Caller 19121212-1212 rang back", "any")
    with pytest.raises(InvalidInput):
        emergency.open_emergency(
            world.vault, nurse, REASON, ["unit-a"], dt.timedelta(hours=4, seconds=1)
        )
    assert person(world, "nurse.b").emergency is None


# --- rate limits (R12) --------------------------------------------------------------------


def test_crossing_the_hourly_limit_refuses_alerts_and_queues_one_review_item(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(playback, "PLAY", dataclasses.replace(playback.PLAY, per_hour=3))
    boss = person(world, "boss.a")
    for _ in range(3):
        playback.open_playback(world.vault, boss, world.own, REASON)
        world.clock.advance(minutes=1)
    before = log_size(world.vault)
    for _ in range(2):
        with pytest.raises(RateLimited):
            playback.open_playback(world.vault, boss, world.colleague, REASON)
    alerts = entries_since(world.vault, before)
    assert [(e.action, e.outcome) for e in alerts] == [
        (Action.ALERT_RATE_LIMIT, Outcome.DENIED)
    ] * 2
    assert alerts[0].detail == {"kind": "play", "limit": 3}
    assert [(i.kind, i.actor) for i in review_items(world.vault)] == [("rate_limit", "boss.a")]
    with pytest.raises(AccessDenied):  # the refused grant was not opened
        playback.audio(world.vault, boss, world.colleague, None)
    assert played(playback.audio(world.vault, boss, world.own, "bytes=0-3")) == b"RIFF"

    world.clock.advance(minutes=58)
    playback.open_playback(world.vault, boss, world.colleague, REASON)


def test_download_grants_have_their_own_smaller_limit(world: World) -> None:
    assert playback.DOWNLOAD.per_hour < playback.PLAY.per_hour
    boss = person(world, "boss.a")
    for _ in range(playback.DOWNLOAD.per_hour):
        playback.open_download(world.vault, boss, world.own, REASON)
    with pytest.raises(RateLimited):
        playback.open_download(world.vault, boss, world.own, REASON)
    playback.open_playback(world.vault, boss, world.own, REASON)


# --- integrity (R23) ----------------------------------------------------------------------


def object_file(world: World, rid: uuid.UUID) -> Path:
    with world.vault.store.transaction() as tx:
        row = tx.get_recording(rid)
    assert row is not None
    [path] = [p for p in world.blobs.rglob(row.object_name) if p.is_file()]
    return path


def test_a_changed_object_is_refused_before_any_byte_is_served(world: World) -> None:
    nurse = person(world, "nurse.a")
    playback.open_playback(world.vault, nurse, world.own, REASON)
    path = object_file(world, world.own)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        playback.audio(world.vault, nurse, world.own, "bytes=0-10")
    path.write_bytes(bytes(data[:-1]))  # and one byte short: the length check
    with pytest.raises(IntegrityError):
        playback.audio(world.vault, nurse, world.own, "bytes=-10")
