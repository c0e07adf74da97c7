"""The audit log on a real vault and a real database (R13, R14, R15).

Entries are written through the services, then the stored rows are changed
with plain SQL, as someone with write access to the database would, and
``services.audit.verify`` must name what changed.  Each tamper also rewrites
the stored head (size and Merkle frontier) to match the altered rows, so the
log is caught by what an attacker without the signing key cannot forge: the
leaf hashes checked against the bodies and the signed checkpoints.  The fail
closed tests make the database refuse audit rows and prove no access happens.
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.core import merkle
from callvault.core.access import Principal
from callvault.core.audit import Action, AuditEvent, Outcome
from callvault.core.audit_verify import VerifyReport
from callvault.core.errors import AuditUnavailable, CallvaultError, NotFound
from callvault.core.ports import SystemClock
from callvault.core.recordings import ACTIVE
from callvault.services import audit, ingest, keyring, recordings
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.testing import postgres
from callvault.testing.audio import make_tone_wav
from callvault.testing.lifecycle import allow_ingest

OPERATOR = Principal("op.anna", "operator", care_unit="unit-a")
CALLER = "070-174 06 05"
CALLER_DIGITS = "701740605"
TAMPERED = 7  # a seq inside the anchored part of the log built below


def details(caller: str = CALLER) -> CallDetails:
    return CallDetails.parse(
        care_unit="unit-a",
        started_at="2019-02-18T10:22:00+01:00",
        today=dt.date(2026, 1, 1),
        caller=caller,
        agent="nurse.b",
    )


class Sql:
    """Direct access to the vault's database, bypassing the store."""

    def __init__(self, url: str) -> None:
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        self._engine = sqlalchemy.create_engine(url)

    def run(self, statement: str, **params: Any) -> None:
        with self._engine.begin() as conn:
            conn.execute(text(statement), params)

    def rows(self, statement: str, **params: Any) -> list[Any]:
        with self._engine.begin() as conn:
            return list(conn.execute(text(statement), params))

    def body(self, seq: int) -> bytes:
        return bytes(self.rows("SELECT body FROM audit_entries WHERE seq = :s", s=seq)[0][0])

    def set_entry(self, seq: int, body: bytes, leaf: bytes | None = None) -> None:
        leaf = merkle.leaf_hash(body) if leaf is None else leaf
        self.run(
            "UPDATE audit_entries SET body = :b, leaf_hash = :h WHERE seq = :s",
            b=body,
            h=leaf,
            s=seq,
        )

    def cover_tracks(self) -> None:
        """Make the stored head agree with the rows, as a careful attacker would."""
        rows = self.rows("SELECT seq, leaf_hash FROM audit_entries ORDER BY seq")
        frontier = merkle.Frontier()
        frontier.extend(bytes(leaf) for _seq, leaf in rows)
        size = rows[-1][0] + 1
        self.run("UPDATE audit_head SET size = :n, frontier = :f", n=size, f=frontier.to_bytes())

    def refuse_audit_writes(self) -> None:
        if self.dialect == "sqlite":
            self.run(
                "CREATE TRIGGER audit_off BEFORE INSERT ON audit_entries "
                "BEGIN SELECT RAISE(ABORT, 'audit disabled'); END"
            )
        else:
            self.run(
                "CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit disabled'; END $$"
            )
            self.run(
                "CREATE TRIGGER audit_off BEFORE INSERT ON audit_entries "
                "FOR EACH ROW EXECUTE FUNCTION audit_refuse()"
            )

    def allow_audit_writes(self) -> None:
        suffix = "" if self.dialect == "sqlite" else " ON audit_entries"
        self.run(f"DROP TRIGGER audit_off{suffix}")

    def close(self) -> None:
        self._engine.dispose()


@dataclass
class World:
    vault: Vault
    sql: Sql
    recording_id: uuid.UUID
    tmp: Path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        (tmp_path / "data").mkdir(mode=0o700)
        yield f"sqlite:///{tmp_path / 'data' / 'vault.db'}"
    else:
        with postgres.throwaway_database() as url:
            yield url


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    """A vault wired as bootstrap does, with one ingested call and this log:

    seq 0-2 initialise (checkpoint at size 3), 3 ingest, 4-11 assorted
    entries, 12 checkpoint (size 13), 13-14 unanchored.
    """
    (tmp_path / "keys").mkdir(mode=0o700)
    keys = KeyfileProvider.create(
        tmp_path / "keys" / "callvault.key", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    vault = Vault(
        store=SqlMetadataStore.open(database_url),
        blobs=open_blobstore((tmp_path / "blobs").as_uri()),
        keys=keys,
        clock=SystemClock(),
        probe=analyse,
        origin=vault_service.origin_for(str(uuid.uuid4())),
    )
    sql = Sql(database_url)
    try:
        vault_service.initialise(vault, OPERATOR)
        allow_ingest(vault, ["unit-a"])
        wav = make_tone_wav(tmp_path / "call.wav", 1.0)
        recording_id = ingest.ingest(vault, OPERATOR, wav, details()).recording_id
        for i, action in enumerate([Action.RECORDING_VIEW, Action.RECORDING_PLAY] * 4):
            audit.record_alone(
                vault, OPERATOR, action, recording_id=recording_id, reason=f"case {i}"
            )
        audit.checkpoint(vault, OPERATOR)
        audit.record_alone(vault, OPERATOR, Action.KEY_STATUS)
        audit.record_alone(vault, OPERATOR, Action.RECORDING_SEARCH, detail={"results": 1})
        assert log_size(vault) == 15
        yield World(vault, sql, recording_id, tmp_path)
    finally:
        sql.close()
        vault.close()


def log_size(vault: Vault) -> int:
    with vault.store.transaction() as tx:
        return tx.audit_head()[0]


def entries_since(vault: Vault, seq: int) -> list[AuditEvent]:
    return [AuditEvent.from_canonical(r.body) for r in vault.store.iter_audit(seq)]


def altered(body: bytes, old: bytes, new: bytes) -> bytes:
    assert old in body, "the tamper must change the entry"
    return body.replace(old, new)


_SEQS = re.compile(r"\bseq (\d+)(?:\.\.(\d+))?")


def named_seqs(report: VerifyReport) -> set[int]:
    """Every seq a problem line names, alone or inside a range."""
    named: set[int] = set()
    for line in report.problems:
        for lo, hi in _SEQS.findall(line):
            named.update(range(int(lo), int(hi or lo) + 1))
    return named


def verify_tampered(world: World) -> VerifyReport:
    world.sql.cover_tracks()
    report = audit.verify(world.vault, OPERATOR)
    assert not report.ok
    last = entries_since(world.vault, log_size(world.vault) - 1)[0]
    assert (last.action, last.outcome) == (Action.AUDIT_VERIFY, Outcome.FAILED)
    return report


# -- R14: tamper evidence -------------------------------------------------------------


def test_untouched_log_verifies_ok(world: World) -> None:
    report = audit.verify(world.vault, OPERATOR)
    assert report.ok and report.problems == []
    assert (report.size, report.checkpoints_checked, report.unanchored) == (15, 2, 2)


def test_changed_body_is_named_by_its_seq(world: World) -> None:
    body = world.sql.body(TAMPERED)
    stored_leaf = merkle.leaf_hash(body)
    world.sql.set_entry(TAMPERED, altered(body, b"case 3", b"case 9"), leaf=stored_leaf)
    report = verify_tampered(world)
    assert f"seq {TAMPERED}: entry does not match its stored leaf hash (changed)" in report.problems


def test_changed_body_with_recomputed_leaf_is_caught_by_the_signed_checkpoint(
    world: World,
) -> None:
    world.sql.set_entry(TAMPERED, altered(world.sql.body(TAMPERED), b"op.anna", b"op.berit"))
    report = verify_tampered(world)
    assert any("checkpoint" in line and "log root differs" in line for line in report.problems)
    assert TAMPERED in named_seqs(report)
    assert named_seqs(report) <= set(range(3, 13))  # the first checkpoint still holds


def test_deleted_entry_is_named_as_removed(world: World) -> None:
    world.sql.run("DELETE FROM audit_entries WHERE seq = :s", s=TAMPERED)
    report = verify_tampered(world)
    assert f"seq {TAMPERED}: missing (removed)" in report.problems


@pytest.mark.parametrize("with_leaves", [False, True], ids=["bodies", "bodies-and-leaves"])
def test_swapped_entries_are_named(world: World, with_leaves: bool) -> None:
    a, b = TAMPERED - 1, TAMPERED + 1
    body_a, body_b = world.sql.body(a), world.sql.body(b)
    leaf = merkle.leaf_hash
    world.sql.set_entry(a, body_b, None if with_leaves else leaf(body_a))
    world.sql.set_entry(b, body_a, None if with_leaves else leaf(body_b))
    report = verify_tampered(world)
    assert {a, b} <= named_seqs(report)
    if not with_leaves:
        assert f"seq {a}: entry does not match its stored leaf hash (changed)" in report.problems


def test_entry_spliced_into_the_middle_is_caught(world: World) -> None:
    forged = AuditEvent(
        time=dt.datetime.now(dt.UTC),
        actor="op.anna",
        role="operator",
        action=Action.RECORDING_VIEW,
        outcome=Outcome.SUCCESS,
        reason="alibi",
    ).canonical_bytes()
    # Shift the tail up by one (through negatives: the seq key stays unique).
    world.sql.run("UPDATE audit_entries SET seq = -seq - 1 WHERE seq >= :s", s=TAMPERED)
    world.sql.run("UPDATE audit_entries SET seq = -seq WHERE seq < 0")
    world.sql.run(
        "INSERT INTO audit_entries (seq, body, leaf_hash, action, recording_id, time) "
        "SELECT :s, :b, :h, action, NULL, time FROM audit_entries WHERE seq = :src",
        s=TAMPERED, b=forged, h=merkle.leaf_hash(forged), src=TAMPERED - 1,
    )  # fmt: skip
    report = verify_tampered(world)
    assert TAMPERED in named_seqs(report)


def test_entry_inserted_past_the_end_is_caught_by_the_gap(world: World) -> None:
    world.sql.run(
        "INSERT INTO audit_entries (seq, body, leaf_hash, action, recording_id, time) "
        "SELECT 17, body, leaf_hash, action, recording_id, time FROM audit_entries WHERE seq = 4"
    )
    report = verify_tampered(world)
    assert "seq 15..16: missing (removed)" in report.problems


def test_forged_checkpoint_note_is_reported(world: World) -> None:
    world.sql.run("UPDATE audit_checkpoints SET note = replace(note, '\n13\n', '\n12\n')")
    report = verify_tampered(world)
    assert any(line.startswith("checkpoint #") for line in report.problems)


# -- R15: fail closed ---------------------------------------------------------------------


@pytest.fixture
def refused(world: World) -> Iterator[World]:
    """The world with the database refusing every new audit row; the test
    must end with the log exactly as it found it."""
    world.sql.refuse_audit_writes()
    before = [r.leaf_hash for r in world.vault.store.iter_audit()]
    yield world
    assert [r.leaf_hash for r in world.vault.store.iter_audit()] == before
    assert log_size(world.vault) == len(before)


def test_export_without_audit_writes_no_file(refused: World) -> None:
    out = refused.tmp / "export.wav"
    with pytest.raises(AuditUnavailable):
        recordings.export(refused.vault, OPERATOR, refused.recording_id, out, "case review")
    assert not out.exists()
    assert list(refused.tmp.glob("export*")) == []


def test_show_without_audit_returns_nothing(refused: World) -> None:
    shown: list[object] = []
    with pytest.raises(AuditUnavailable):
        shown.append(recordings.show(refused.vault, OPERATOR, refused.recording_id))
    assert shown == []


def test_search_without_audit_raises(refused: World) -> None:
    found: list[object] = []
    with pytest.raises(CallvaultError):
        found.append(
            recordings.search(refused.vault, OPERATOR, recordings.SearchQuery(caller=CALLER))
        )
    assert found == []


def test_ingest_without_audit_leaves_no_active_recording(refused: World) -> None:
    wav = make_tone_wav(refused.tmp / "second.wav", 1.0, frequency=660.0)
    with pytest.raises(CallvaultError):
        ingest.ingest(refused.vault, OPERATOR, wav, details("070-174 06 09"))
    active = [r.id for r in refused.vault.store.iter_recordings() if r.state == ACTIVE]
    assert active == [refused.recording_id]


def test_ingest_refused_for_want_of_audit_completes_once_audit_works(world: World) -> None:
    wav = make_tone_wav(world.tmp / "second.wav", 1.0, frequency=660.0)
    world.sql.refuse_audit_writes()
    with pytest.raises(CallvaultError):
        ingest.ingest(world.vault, OPERATOR, wav, details("070-174 06 09"))
    world.sql.allow_audit_writes()
    before = log_size(world.vault)
    result = ingest.ingest(world.vault, OPERATOR, wav, details("070-174 06 09"))
    assert not result.duplicate
    assert [e.action for e in entries_since(world.vault, before)] == [Action.RECORDING_INGEST]
    found = recordings.search(world.vault, OPERATOR, recordings.SearchQuery(caller="070-174 06 09"))
    assert [s.id for s in found] == [result.recording_id]


def test_key_status_and_checkpoint_without_audit_raise(refused: World) -> None:
    checkpoints = refused.vault.store.checkpoints()
    with pytest.raises(CallvaultError):
        keyring.status(refused.vault, OPERATOR)
    with pytest.raises(CallvaultError):
        audit.checkpoint(refused.vault, OPERATOR)
    assert refused.vault.store.checkpoints() == checkpoints


# -- R13: one entry per service call -------------------------------------------------------


def one_entry(
    vault: Vault,
    call: Callable[[], object],
    action: Action,
    outcome: Outcome = Outcome.SUCCESS,
    recording_id: uuid.UUID | None = None,
) -> AuditEvent:
    """Run one service call; it must write exactly one complete entry."""
    before = log_size(vault)
    try:
        call()
    except NotFound:
        assert outcome is Outcome.FAILED
    written = entries_since(vault, before)
    assert [(e.action, e.outcome) for e in written] == [(action, outcome)]
    event = written[0]
    assert (event.actor, event.role, event.care_unit) == ("op.anna", "operator", "unit-a")
    assert event.session == OPERATOR.session
    assert event.time.utcoffset() == dt.timedelta(0)
    if recording_id is not None:
        assert event.recording_id == recording_id
    return event


def test_every_service_call_writes_exactly_one_entry(world: World) -> None:
    vault, rid, v = world.vault, world.recording_id, Action
    second = make_tone_wav(world.tmp / "second.wav", 1.0, frequency=660.0)
    out, unknown = world.tmp / "export.wav", uuid.uuid4()

    def add_second() -> object:
        return ingest.ingest(vault, OPERATOR, second, details("070-174 06 09"))

    query = recordings.SearchQuery(caller=CALLER)
    found = one_entry(vault, lambda: recordings.search(vault, OPERATOR, query), v.RECORDING_SEARCH)
    # The count, and the Merkle root of the listed ids (R18), never the criteria.
    assert found.detail["results"] == 1 and set(found.detail) == {"results", "hits"}
    one_entry(
        vault, lambda: recordings.show(vault, OPERATOR, rid), v.RECORDING_VIEW, recording_id=rid
    )
    exported = one_entry(
        vault,
        lambda: recordings.export(vault, OPERATOR, rid, out, "case review"),
        v.RECORDING_EXPORT,
        recording_id=rid,
    )
    assert exported.reason == "case review" and out.exists()
    one_entry(vault, add_second, v.RECORDING_INGEST)
    duplicate = one_entry(vault, add_second, v.RECORDING_INGEST)
    assert duplicate.detail == {"duplicate": True}
    one_entry(vault, lambda: keyring.status(vault, OPERATOR), v.KEY_STATUS)
    one_entry(vault, lambda: audit.checkpoint(vault, OPERATOR), v.AUDIT_CHECKPOINT)
    one_entry(vault, lambda: audit.verify(vault, OPERATOR), v.AUDIT_VERIFY)
    one_entry(vault, lambda: audit.tail(vault, OPERATOR, 5), v.AUDIT_READ)
    missing = lambda: recordings.show(vault, OPERATOR, unknown)  # noqa: E731
    one_entry(vault, missing, v.RECORDING_VIEW, Outcome.FAILED, recording_id=unknown)
    for raw in (r.body for r in vault.store.iter_audit()):
        assert CALLER_DIGITS.encode() not in raw and b"701740609" not in raw
    assert audit.verify(vault, OPERATOR).ok
