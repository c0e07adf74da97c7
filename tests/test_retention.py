"""Recording policies, retention sweep, legal holds and erasure by caller (R19-R21).

In process, on SQLite with a fake clock: calls are placed in 2019 and the
clock is moved past their retention, so nothing depends on today's date.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.config import Settings
from callvault.core.access import OPERATOR, Principal
from callvault.core.audit import Action, AuditEvent, Outcome
from callvault.core.errors import (
    AccessDenied,
    ConfigError,
    Conflict,
    InvalidInput,
    KeyUnavailable,
    NoRecordingPolicy,
    NotFound,
)
from callvault.core.retention import RECORD_MIN_DAYS, Verdict
from callvault.services import audit, erasure, policies, recordings, retention
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.services.ingest import ingest, ingest_stream
from callvault.testing.audio import make_tone_wav
from callvault.testing.clock import FakeClock
from callvault.testing.lifecycle import LEGAL_BASIS, PURPOSE

T0 = dt.datetime(2019, 2, 18, 9, 22, tzinfo=dt.UTC)
OP = Principal("op.root", OPERATOR)
ADMIN = Principal("admin.a", "administrator")
PRIVACY = Principal("po.a", "privacy_officer")
HANDLER = Principal("nurse.a", "call_handler", care_unit="unit-a")
PHONE = "070-174 06 06"
PNR = "19121212-1212"


@dataclass
class World:
    vault: Vault
    clock: FakeClock
    blobs: Path
    tmp: Path
    n: int = 0

    def call(
        self,
        klass: str = "quality",
        *,
        started: dt.datetime = T0,
        caller: str | None = None,
        unit: str = "unit-a",
        pnr: str = PNR,
    ) -> uuid.UUID:
        self.n += 1
        wav = make_tone_wav(self.tmp / f"c{self.n}.wav", 0.2, frequency=200.0 + 13 * self.n)
        details = CallDetails.parse(
            care_unit=unit,
            started_at=started,
            today=T0.date(),
            caller=caller,
            personnummer=pnr if caller else None,
            retention_class=klass,
        )
        return ingest(self.vault, OP, wav, details).recording_id

    def entries(self, action: Action | None = None) -> list[AuditEvent]:
        events = [AuditEvent.from_canonical(r.body) for r in self.vault.store.iter_audit()]
        return [e for e in events if action is None or e.action == action]

    def objects(self) -> set[str]:
        return set(self.vault.blobs.names())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FakeClock(T0 + dt.timedelta(hours=1))
    keys = KeyfileProvider.create(
        tmp_path / "k", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    blobs = tmp_path / "blobs"
    vault = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{tmp_path / 'vault.db'}"),
        blobs=open_blobstore(blobs.as_uri()),
        keys=keys,
        clock=clock,
        probe=analyse,
        origin="callvault.test/retention",
    )
    vault_service.initialise(vault, OP)
    for klass, days in (("record", None), ("quality", 30)):
        policies.set_policy(
            vault,
            ADMIN,
            care_unit="unit-a",
            retention_class=klass,
            purpose=PURPOSE,
            legal_basis=LEGAL_BASIS,
            keep_days=days,
        )
    yield World(vault, clock, blobs, tmp_path)
    vault.close()


# --- R19: recording policies ------------------------------------------------------------


def test_r19_ingest_without_a_policy_is_refused_clearly_and_stores_nothing(world: World) -> None:
    before = (world.objects(), list(world.vault.store.iter_recordings()))
    with pytest.raises(NoRecordingPolicy) as refused:
        world.call(unit="unit-b")
    assert "no active recording policy for care unit unit-b" in refused.value.message
    assert refused.value.http_status == 409
    stream = CallDetails.parse(
        care_unit="unit-b", started_at=T0, today=T0.date(), call_id="c-1", retention_class="record"
    )
    with pytest.raises(NoRecordingPolicy):
        ingest_stream(world.vault, OP, stream, iter([b"RIFF...."]))
    assert (world.objects(), list(world.vault.store.iter_recordings())) == before
    failed = world.entries(Action.RECORDING_INGEST)
    assert [e.outcome for e in failed] == [Outcome.FAILED, Outcome.FAILED]
    assert failed[0].detail["error"] == "no_recording_policy"


def test_r19_a_retired_policy_refuses_ingest_again(world: World) -> None:
    world.call()
    policies.retire_policy(world.vault, ADMIN, care_unit="unit-a", retention_class="quality")
    with pytest.raises(NoRecordingPolicy):
        world.call()
    world.call("record")  # the unit's other policy still stands


def test_r19_policies_are_managed_by_administrators_only_and_every_change_is_logged(
    world: World,
) -> None:
    with pytest.raises(AccessDenied):
        policies.set_policy(
            world.vault,
            PRIVACY,
            care_unit="unit-c",
            retention_class="record",
            purpose=PURPOSE,
            legal_basis=LEGAL_BASIS,
        )
    with pytest.raises(AccessDenied):
        policies.list_policies(world.vault, HANDLER)
    listed = policies.list_policies(world.vault, ADMIN)
    assert [(p.care_unit, p.retention_class, p.keep_days, p.record_document) for p in listed] == [
        ("unit-a", "quality", 30, False),
        ("unit-a", "record", RECORD_MIN_DAYS, True),
    ]
    changes = world.entries(Action.POLICY_CHANGE)
    assert [(e.actor, e.detail["retention_class"]) for e in changes] == [
        ("admin.a", "record"),
        ("admin.a", "quality"),
    ]
    assert changes[0].detail["purpose"] == PURPOSE
    assert len(world.entries(Action.ACCESS_DENIED)) == 2
    assert len(world.entries(Action.POLICY_LIST)) == 1


@pytest.mark.parametrize(
    ("klass", "days", "field", "purpose"),
    [
        ("record", 3652, "ten years", PURPOSE),
        ("quality", 3653, "quality recordings", PURPOSE),
        ("quality", 0, "quality recordings", PURPOSE),
        ("hold", None, "retention class", PURPOSE),
        ("record", None, "purpose must not contain personal identifiers", "Calls of 0701740606"),
        ("record", None, "purpose must be 3 to", ""),
    ],
)
def test_r19_a_bad_policy_is_refused_with_a_clear_error_and_changes_nothing(
    world: World, klass: str, days: int | None, field: str, purpose: str
) -> None:
    before = len(world.entries())
    with pytest.raises(InvalidInput) as refused:
        policies.set_policy(
            world.vault,
            ADMIN,
            care_unit="unit-b",
            retention_class=klass,
            purpose=purpose,
            legal_basis=LEGAL_BASIS,
            keep_days=days,
        )
    assert field in refused.value.message
    assert "0701740606" not in refused.value.message
    assert len(world.entries()) == before


# --- R20: the sweep ---------------------------------------------------------------------


def test_r20_sweep_shreds_due_quality_calls_keeps_record_documents_and_held_calls(
    world: World,
) -> None:
    quality = [world.call() for _ in range(3)]
    held = world.call()
    record = world.call("record")
    retention.hold(world.vault, PRIVACY, held, "DNR 2019/44")
    objects_before = world.objects()

    world.clock.time = T0 + dt.timedelta(days=29)
    assert retention.sweep(world.vault, OP).shredded == {}  # nothing due yet

    world.clock.time = T0 + dt.timedelta(days=31)
    report = retention.sweep(world.vault, OP)
    assert report.shredded == {"quality": 3}
    assert (report.due, report.held, report.objects_deleted) == ({"quality": 3}, 1, 3)
    remaining = {r.id for r in world.vault.store.iter_recordings()}
    assert remaining == {held, record}
    assert len(world.objects()) == len(objects_before) - 3
    # The held call still plays: its key and object are untouched.
    out = world.tmp / "held.wav"
    recordings.export(world.vault, OP, held, out, "Legal hold check")
    assert out.stat().st_size > 0
    receipts = world.entries(Action.RECORDING_SHRED)
    assert sorted(e.recording_id for e in receipts) == sorted(quality)  # type: ignore[type-var]
    assert {(e.detail["retention_class"], e.detail["reason"]) for e in receipts} == {
        ("quality", "retention_expired")
    }
    assert audit.verify(world.vault, OP).ok  # the log outlives what it records


def test_r20_a_shredded_recording_cannot_be_read_or_found(world: World) -> None:
    gone = world.call(caller=PHONE)
    world.clock.time = T0 + dt.timedelta(days=31)
    retention.sweep(world.vault, OP)
    with pytest.raises(NotFound):
        recordings.show(world.vault, OP, gone)
    found = recordings.search(world.vault, OP, recordings.SearchQuery(caller=PHONE))
    assert found == []


def test_r20_sweep_is_idempotent_and_a_dry_run_changes_nothing(world: World) -> None:
    for _ in range(3):
        world.call()
    world.clock.time = T0 + dt.timedelta(days=40)
    before = (world.objects(), len(list(world.vault.store.iter_recordings())))
    dry = retention.sweep(world.vault, OP, dry_run=True)
    assert (dry.dry_run, dry.due, dry.shredded) == (True, {"quality": 3}, {})
    assert (world.objects(), len(list(world.vault.store.iter_recordings()))) == before
    first = retention.sweep(world.vault, OP, limit=2)
    assert (first.shredded, first.complete) == ({"quality": 2}, False)
    second = retention.sweep(world.vault, OP)
    assert second.shredded == {"quality": 1}
    third = retention.sweep(world.vault, OP)
    assert (third.shredded, third.objects_deleted, third.buckets_destroyed) == ({}, 0, [])
    assert len(world.entries(Action.RECORDING_SHRED)) == 3


def test_r20_an_emptied_bucket_of_a_past_month_loses_its_kek(world: World) -> None:
    feb = world.call()
    world.call(started=T0 + dt.timedelta(days=5))  # same bucket
    world.call("record")  # 2019-02/record stays
    with world.vault.store.transaction() as tx:
        row = tx.get_recording(feb)
        assert row is not None
        bucket = tx.get_bucket_kek(row.bucket_kek_id)
    world.clock.time = T0 + dt.timedelta(days=60)
    report = retention.sweep(world.vault, OP)
    assert report.buckets_destroyed == ["2019-02/quality v1"]
    with world.vault.store.transaction() as tx:
        assert [(b.month, b.retention_class) for b in tx.bucket_keks()] == [("2019-02", "record")]
        assert tx.get_bucket_kek(bucket.id) is None  # type: ignore[union-attr]
    (destroyed,) = world.entries(Action.KEY_DESTROY)
    assert destroyed.detail["bucket"] == "2019-02/quality"
    # A copy of the old row (a backup) no longer finds a key to open it.
    with world.vault.store.transaction() as tx, pytest.raises(KeyUnavailable):
        from callvault.services import keyring

        keyring.unwrap_dek(world.vault, tx, row)


def test_r20_only_the_privacy_officer_sets_and_releases_holds_with_a_reference(
    world: World,
) -> None:
    call = world.call()
    with pytest.raises(AccessDenied):
        retention.hold(world.vault, ADMIN, call, "DNR 2019/44")
    with pytest.raises(InvalidInput):
        retention.hold(world.vault, PRIVACY, call, "19121212-1212")
    retention.hold(world.vault, PRIVACY, call, "DNR 2019/44")
    with pytest.raises(Conflict):
        retention.hold(world.vault, PRIVACY, call, "DNR 2019/44")
    world.clock.time = T0 + dt.timedelta(days=400)
    assert retention.sweep(world.vault, OP).held == 1
    retention.release(world.vault, PRIVACY, call, "DNR 2019/44 closed")
    assert retention.sweep(world.vault, OP).shredded == {"quality": 1}
    held, released = world.entries(Action.RECORDING_HOLD), world.entries(Action.RECORDING_RELEASE)
    assert (held[0].reason, released[0].reason) == ("DNR 2019/44", "DNR 2019/44 closed")


def test_r20_the_sweep_is_the_operators_alone(world: World) -> None:
    for principal in (ADMIN, PRIVACY, HANDLER):
        with pytest.raises(AccessDenied):
            retention.sweep(world.vault, principal)


# --- R21: erasure by caller -------------------------------------------------------------


def test_r21_erasure_plans_then_erases_what_the_retention_rules_allow(world: World) -> None:
    quality = world.call(caller=PHONE)
    record = world.call("record", caller=PHONE)
    held = world.call(caller=PHONE)
    other = world.call(caller="070-111 22 33", pnr="19850115-1230")
    retention.hold(world.vault, PRIVACY, held, "DNR 2019/44")
    objects = world.objects()

    plan = erasure.erase_by_caller(world.vault, PRIVACY, caller=PHONE, reason="Art. 17 request")
    verdicts = {i.recording_id: i.verdict for i in plan.items}
    assert verdicts == {
        quality: Verdict.ERASABLE,
        record: Verdict.RECORD_DOCUMENT,
        held: Verdict.LEGAL_HOLD,
    }
    assert plan.erased == [] and world.objects() == objects

    done = erasure.erase_by_caller(
        world.vault, PRIVACY, personnummer=PNR, reason="Art. 17 request", dry_run=False
    )
    assert done.erased == [quality]
    assert {r.id for r in world.vault.store.iter_recordings()} == {record, held, other}
    early = erasure.erase_by_caller(
        world.vault,
        PRIVACY,
        caller=PHONE,
        reason="Art. 17 request",
        decision="Board decision 2019/12",
        dry_run=False,
    )
    assert early.erased == [record]
    receipts = world.entries(Action.RECORDING_SHRED)
    assert [(e.recording_id, e.detail.get("decision")) for e in receipts] == [
        (quality, None),
        (record, "Board decision 2019/12"),
    ]
    requests = world.entries(Action.SUBJECT_ERASE)
    assert [(e.detail["matched"], e.detail["erased"]) for e in requests] == [
        (3, 0),
        (3, 1),
        (2, 1),
    ]
    assert requests[1].detail["kind"] == "personnummer"
    for event in world.entries():
        text = event.canonical_bytes()
        assert b"0701740606" not in text and b"1912121212" not in text
        assert b"121212-1212" not in text


def test_r21_erasure_is_for_the_privacy_officer_and_needs_an_identifier(world: World) -> None:
    with pytest.raises(AccessDenied):
        erasure.erase_by_caller(world.vault, ADMIN, caller=PHONE, reason="Art. 17 request")
    with pytest.raises(InvalidInput):
        erasure.erase_by_caller(world.vault, PRIVACY, reason="Art. 17 request")
    with pytest.raises(InvalidInput):
        erasure.erase_by_caller(world.vault, PRIVACY, caller="12", reason="Art. 17 request")


# --- R16: the audit log's retention floor ---------------------------------------------------


@pytest.mark.parametrize("value", ["1825", "365", "0"])
def test_r16_audit_retention_below_five_years_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"CALLVAULT_AUDIT_RETENTION_DAYS": value})
    assert "at least five years (1826 days)" in refused.value.message


@pytest.mark.parametrize("value", ["five", "-1", "1826.5"])
def test_r16_audit_retention_must_be_whole_days(value: str) -> None:
    with pytest.raises(ConfigError, match="whole number of days"):
        Settings.from_env({"CALLVAULT_AUDIT_RETENTION_DAYS": value})


def test_r16_audit_retention_defaults_to_five_years_and_accepts_more() -> None:
    assert Settings.from_env({}).audit_retention_days == 1826
    assert (
        Settings.from_env({"CALLVAULT_AUDIT_RETENTION_DAYS": "3653"}).audit_retention_days == 3653
    )


def test_r16_a_command_with_too_short_audit_retention_stops_before_doing_anything(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env.update(CALLVAULT_HOME=str(tmp_path / "home"), CALLVAULT_AUDIT_RETENTION_DAYS="30")
    proc = subprocess.run(
        [sys.executable, "-m", "callvault", "init"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 11
    assert "CALLVAULT_AUDIT_RETENTION_DAYS" in proc.stderr and "five years" in proc.stderr
    assert not (tmp_path / "home").exists()
