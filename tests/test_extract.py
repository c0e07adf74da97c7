"""The patient's log extract (loggutdrag) and its offline verification (R18, R13, R14).

The end-to-end case runs on SQLite and PostgreSQL; the tampering cases on SQLite.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from callvault.core.audit import Action, AuditEvent, Outcome
from callvault.core.errors import AccessDenied, InvalidInput, NotFound
from callvault.core.extract_verify import verify_extract
from callvault.services import audit, exports, extract_pdf, extracts, playback, recordings
from callvault.services.search import SearchQuery
from privacy_world import CALLER, PNR, REASON, World, database_url, make_world


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    for url in database_url(request.param, tmp_path):
        with make_world(tmp_path, url) as w:
            yield w


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[World]:
    for url in database_url("sqlite", tmp_path):
        with make_world(tmp_path, url) as w:
            yield w


def _accesses(w: World) -> None:
    """A supervisor searches, views and plays; the other unit's supervisor searches too."""
    boss = w.who("boss.a")
    found = recordings.search(w.vault, boss, SearchQuery(caller=CALLER))
    assert {s.id for s in found} == set(w.mine[:2])
    recordings.show(w.vault, boss, w.mine[0])
    playback.open_playback(w.vault, boss, w.mine[1], REASON)
    recordings.search(w.vault, w.who("boss.b"), SearchQuery(care_unit="unit-b"))


def _produce(w: World, **kw: object) -> extracts.Extract:
    return extracts.produce(w.vault, w.who("privacy.p"), caller=CALLER, **kw)  # type: ignore[arg-type]


def test_extract_lists_who_accessed_the_callers_recordings_and_verifies_offline(world):
    """R18: care unit, how and when for each access; proofs verify with only the key."""
    _accesses(world)
    ex = _produce(world)
    entries = ex.entries
    hows = [(e["how"], e["care_unit"], e["recording_id"]) for e in entries]
    assert ("search_hit", "unit-a", str(world.mine[0])) in hows
    assert ("search_hit", "unit-a", str(world.mine[1])) in hows
    assert ("search_hit", "unit-b", str(world.mine[2])) in hows
    assert ("view", "unit-a", str(world.mine[0])) in hows
    assert ("play", "unit-a", str(world.mine[1])) in hows
    assert all(e["user"] is None for e in entries)
    # The other caller's recording appears nowhere, not even as a co-hit.
    assert str(world.other) not in ex.json_bytes().decode()
    report = verify_extract(ex.json_bytes(), audit.verifier_key(world.vault))
    assert report.ok, report.problems
    assert report.entries == len(entries)


def test_producing_an_extract_is_itself_logged(lite):
    ex = _produce(lite)
    last = audit.tail(lite.vault, lite.who("privacy.p"), 2)[0].event
    assert last.action == Action.AUDIT_EXTRACT and last.outcome == Outcome.SUCCESS
    assert last.detail["recordings"] == 3
    assert ex.document["checkpoint_size"] >= 1


def test_extract_by_personnummer_covers_only_recordings_carrying_it(lite):
    ex = extracts.produce(lite.vault, lite.who("privacy.p"), personnummer=PNR)
    assert [r["recording_id"] for r in ex.document["recordings"]] == [str(lite.mine[0])]


def test_users_are_named_only_when_asked(lite):
    _accesses(lite)
    ex = _produce(lite, with_users=True)
    assert {e["user"] for e in ex.entries if e["how"] == "play"} == {"boss.a"}
    assert verify_extract(ex.json_bytes(), audit.verifier_key(lite.vault)).ok


@pytest.mark.parametrize("name", ["boss.a", "nurse.a", "reviewer.r", "admin.x"])
def test_only_the_privacy_officer_may_produce_an_extract(lite, name):
    with pytest.raises(AccessDenied):
        extracts.produce(lite.vault, lite.who(name), caller=CALLER)
    last = audit.tail(lite.vault, lite.who("privacy.p"), 2)[0].event
    assert last.action == Action.ACCESS_DENIED


def test_unknown_caller_is_refused_and_logged_without_the_number(lite):
    with pytest.raises(NotFound):
        extracts.produce(lite.vault, lite.who("privacy.p"), caller="070-999 99 99")
    last = audit.tail(lite.vault, lite.who("privacy.p"), 2)[0].event
    assert (last.action, last.outcome) == (Action.AUDIT_EXTRACT, Outcome.FAILED)
    assert "999" not in json.dumps(dict(last.detail))


def test_malformed_identifier_and_missing_identifier_are_refused(lite):
    with pytest.raises(InvalidInput):
        extracts.produce(lite.vault, lite.who("privacy.p"), caller="not a number")
    with pytest.raises(InvalidInput):
        extracts.produce(lite.vault, lite.who("privacy.p"))


def _tampered(doc: dict, change) -> bytes:
    copied = copy.deepcopy(doc)
    change(copied)
    return json.dumps(copied).encode()


def _set_entry_unit(doc: dict) -> None:
    e = next(e for e in doc["entries"] if e["how"] == "play")
    event = json.loads(e["entry"])
    event["care_unit"] = "unit-b"
    e["entry"] = json.dumps(event, sort_keys=True, separators=(",", ":"))
    e["care_unit"] = "unit-b"


def _drop_proof_step(doc: dict) -> None:
    doc["entries"][0]["proof"] = doc["entries"][0]["proof"][1:]


def _swap_summary(doc: dict) -> None:
    e = next(e for e in doc["entries"] if e["how"] == "play")
    e["how"] = "view"


def _edit_checkpoint(doc: dict) -> None:
    lines = doc["checkpoint"].split("\n")
    lines[1] = str(int(lines[1]) + 1)
    doc["checkpoint"] = "\n".join(lines)


def _other_recording(doc: dict) -> None:
    doc["recordings"] = doc["recordings"][:1]


def _hit_proof(doc: dict) -> None:
    e = next(e for e in doc["entries"] if e["how"] == "search_hit" and e["hit"]["size"] > 1)
    e["hit"]["index"] = (e["hit"]["index"] + 1) % e["hit"]["size"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_entry_unit, "inclusion proof does not lead to the signed checkpoint"),
        (_drop_proof_step, "inclusion proof does not lead to the signed checkpoint"),
        (_swap_summary, "summary's how differs from the logged entry"),
        (_edit_checkpoint, "note signature does not verify"),
        (_other_recording, "names a recording the extract is not about"),
        (_hit_proof, "hit proof does not show the recording"),
    ],
)
def test_a_tampered_extract_fails_verification_with_a_clear_message(lite, change, message):
    _accesses(lite)
    doc = _produce(lite).document
    report = verify_extract(_tampered(doc, change), audit.verifier_key(lite.vault))
    assert not report.ok
    assert any(message in p for p in report.problems), report.problems


def test_an_extract_does_not_verify_under_another_vaults_key(lite, tmp_path):
    doc = _produce(lite).json_bytes()
    other = Path(tmp_path / "other")
    other.mkdir()
    for url in database_url("sqlite", other):
        with make_world(other, url) as second:
            report = verify_extract(doc, audit.verifier_key(second.vault))
    assert not report.ok and report.problems[0].startswith("checkpoint:")


def test_extract_pdf_in_swedish_and_english(lite):
    _accesses(lite)
    doc = _produce(lite).document
    for lang in ("sv", "en"):
        pdf = extract_pdf.render(doc, lang)
        assert pdf.startswith(b"%PDF-")
    with pytest.raises(InvalidInput):
        extract_pdf.render(doc, "de")


def test_searches_record_their_hits_as_a_root_without_digits(lite):
    recordings.search(lite.vault, lite.who("boss.a"), SearchQuery(caller=CALLER))
    event = audit.tail(lite.vault, lite.who("privacy.p"), 2)[0].event
    assert isinstance(event, AuditEvent) and event.action == Action.RECORDING_SEARCH
    assert len(event.detail["hits"]) == 64 and not any(c.isdigit() for c in event.detail["hits"])


def test_an_entry_rewritten_in_the_database_makes_the_extract_fail_verification(lite):
    """R14: the extract proves entries against signed checkpoints, not against the database."""
    _accesses(lite)
    audit.checkpoint(lite.vault, lite.who("privacy.p"))
    db = lite.tmp / "data" / "vault.db"
    with sqlite3.connect(db) as conn:
        seq, body = conn.execute(
            "SELECT seq, body FROM audit_entries WHERE action = 'recording:play'"
        ).fetchone()
        conn.execute(
            "UPDATE audit_entries SET body = ? WHERE seq = ?",
            (bytes(body).replace(b'"unit-a"', b'"unit-b"'), seq),
        )
    report = verify_extract(_produce(lite).json_bytes(), audit.verifier_key(lite.vault))
    assert not report.ok
    assert any(f"(seq {seq})" in p and "inclusion proof" in p for p in report.problems)


def test_an_art15_copy_shows_in_the_extract(lite):
    out = lite.tmp / "copy.zip.age"
    exports.export_to_file(lite.vault, lite.who("privacy.p"), out, caller=CALLER, work_factor=10)
    hows = [e["how"] for e in _produce(lite).entries]
    assert hows.count("subject_export") == 3
