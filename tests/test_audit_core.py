"""Audit entries (R3, R13) and whole-log verification (R14)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from callvault.core import merkle
from callvault.core.audit import Action, AuditEvent, Outcome, contains_personal_identifier
from callvault.core.audit_verify import verify_log
from callvault.core.errors import AuditTampered, InvalidInput
from callvault.core.notes import Checkpoint, public_key_from_seed, sign_checkpoint

T0 = dt.datetime(2024, 3, 1, 8, 30, 15, 123456, tzinfo=dt.UTC)
RID = uuid.UUID("6f1c1c7e-8a4e-4c1e-9a51-2b3c4d5e6f70")


def event(**changes: object) -> AuditEvent:
    fields: dict[str, object] = {
        "time": T0,
        "actor": "anna.svensson",
        "role": "nurse",
        "care_unit": "vc-nord",
        "action": Action.RECORDING_PLAY,
        "recording_id": RID,
        "outcome": Outcome.SUCCESS,
        "reason": "Uppföljning av klagomål, ärende 4711",
        "session": "3f9a0c1d2e4b5a69",
        "detail": {"results": 3, "emergency": False},
    }
    fields.update(changes)
    return AuditEvent(**fields)  # type: ignore[arg-type]


# --- vocabulary ---------------------------------------------------------------------

REQUIRED_TAGS = [
    "recording:ingest",
    "recording:search",
    "recording:view",
    "recording:play",
    "recording:download",
    "recording:export",
    "recording:shred",
    "recording:verify",
    "key:rotate",
    "key:status",
    "key:init",
    "audit:verify",
    "audit:checkpoint",
    "audit:read",
    "vault:init",
    "vault:verify",
    "auth:login",
    "auth:login_failed",
    "auth:logout",
    "access:denied",
    "user:change",
    "policy:change",
]


def test_action_vocabulary_holds_every_required_subject_action_tag() -> None:
    values = {a.value for a in Action}
    assert set(REQUIRED_TAGS) <= values
    assert all(v.count(":") == 1 and v == v.lower() and " " not in v for v in values)
    assert {o.value for o in Outcome} == {"success", "denied", "failed"}


# --- canonical encoding --------------------------------------------------------------

GOLDEN = (
    b'{"action":"recording:play","actor":"anna.svensson","care_unit":"vc-nord",'
    b'"detail":{"emergency":false,"results":3},"outcome":"success",'
    b'"reason":"Uppf\\u00f6ljning av klagom\\u00e5l, \\u00e4rende 4711",'
    b'"recording_id":"6f1c1c7e-8a4e-4c1e-9a51-2b3c4d5e6f70","role":"nurse",'
    b'"session":"3f9a0c1d2e4b5a69","time":"2024-03-01T08:30:15.123456Z","v":1}'
)


def test_canonical_bytes_are_stable_golden_bytes() -> None:
    assert event().canonical_bytes() == GOLDEN


def test_canonical_bytes_round_trip() -> None:
    original = event()
    assert AuditEvent.from_canonical(GOLDEN) == original
    minimal = AuditEvent(time=T0, actor="root", role="operator",
                         action=Action.VAULT_INIT, outcome=Outcome.FAILED)  # fmt: skip
    assert AuditEvent.from_canonical(minimal.canonical_bytes()) == minimal
    assert hash(AuditEvent.from_canonical(GOLDEN)) == hash(original)


def test_encoding_does_not_depend_on_time_zone_or_detail_order() -> None:
    stockholm = dt.timezone(dt.timedelta(hours=1))
    local = event(time=T0.astimezone(stockholm), detail={"results": 3, "emergency": False})
    assert (
        local.canonical_bytes()
        == event(detail={"emergency": False, "results": 3}).canonical_bytes()
    )
    assert local.time.tzinfo == dt.UTC


def test_whole_seconds_still_carry_microseconds() -> None:
    body = event(time=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)).canonical_bytes()
    assert b'"time":"2024-01-02T03:04:05.000000Z"' in body


@pytest.mark.parametrize(
    "data",
    [
        GOLDEN.replace(b",", b", ", 1),  # whitespace
        GOLDEN.replace(b'"v":1', b'"v":2'),  # unknown version
        GOLDEN.replace(b'"v":1', b'"v":1,"x":1'),  # extra field
        GOLDEN.replace(b'"results":3', b'"results":3.0'),  # float
        GOLDEN.replace(b"15.123456Z", b"15.123456+00:00"),
        GOLDEN.replace(b"recording:play", b"recording:steal"),
        GOLDEN.replace(b"\\u00f6", "ö".encode()),  # not ASCII
        GOLDEN.replace(b'"actor":"anna.svensson",', b'"actor":"anna.svensson","actor":"x",'),
        GOLDEN.replace(b"4711", b"0701234567"),  # identifier smuggled past validation
        GOLDEN[:-1],
        b"[]",
        b"\xff",
    ],
)
def test_non_canonical_or_invalid_bytes_raise_audit_tampered(data: bytes) -> None:
    with pytest.raises(AuditTampered):
        AuditEvent.from_canonical(data)


# --- PHI screening -----------------------------------------------------------------

IDENTIFIERS = [
    "19850115-1234",
    "850115-1234",
    "850115+1234",
    "8501151234",
    "198501151234",
    "0701234567",
    "070-123 45 67",
    "070 - 123 45 67",
    "+46 70 123 45 67",
    "+46701234567",
    "(08) 123 45 67",
    "08-123 456 78",
    "0046.70.123.45.67",
    "\uff10\uff17\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # full-width digits
]


@pytest.mark.parametrize("identifier", IDENTIFIERS)
def test_reason_with_personnummer_or_phone_number_is_refused(identifier: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        event(reason=f"ringde från {identifier} igår")
    assert str(caught.value) == "reason must not contain personal identifiers"
    assert identifier not in repr(caught.value.params)


@pytest.mark.parametrize(
    "reason",
    ["Klagomål från anhörig, ärende 4711", "uppföljning 2024-01-15", "samtal kl 10:30", "1234567"],
)
def test_ordinary_reasons_are_accepted(reason: str) -> None:
    assert event(reason=reason).reason == reason


def test_iso_date_joined_to_more_digits_is_still_refused() -> None:
    assert contains_personal_identifier("1985-01-15-1234")
    assert not contains_personal_identifier("2024-01-15")


@pytest.mark.parametrize("actor", ["user123456", "nurse0701234567", "850115-1234"])
def test_actor_with_long_digit_runs_is_refused(actor: str) -> None:
    with pytest.raises(InvalidInput, match="actor must not contain personal identifiers"):
        event(actor=actor)


@pytest.mark.parametrize("field", ["role", "care_unit"])
def test_role_and_care_unit_are_screened_too(field: str) -> None:
    with pytest.raises(InvalidInput, match="must not contain personal identifiers"):
        event(**{field: "x0701234567"})


@pytest.mark.parametrize(
    "detail",
    [
        {"caller": "070-123 45 67"},
        {"pnr": 198501151234},
        {"phone": 701234567},
        {"results": -10_000_000},
        {"Bad Key": 1},
        {"k198501151234": 1},
        {"ratio": 0.5},
        {"nested": {"a": 1}},
        {f"k{i}": i for i in range(17)},
        ["results", 3],
    ],
)
def test_detail_with_identifiers_or_odd_values_is_refused(detail: object) -> None:
    with pytest.raises(InvalidInput):
        event(detail=detail)


def test_detail_accepts_small_counts_flags_short_text_and_none() -> None:
    detail = {"results": 9_999_999, "emergency": True, "kind": "wav", "note": None}
    ev = event(detail=detail)
    assert dict(ev.detail) == detail
    detail["results"] = 0  # the event keeps its own copy
    assert ev.detail["results"] == 9_999_999
    with pytest.raises(TypeError):
        ev.detail["results"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    "changes",
    [
        {"time": dt.datetime(2024, 3, 1, 8, 30)},  # naive
        {"time": "2024-03-01T08:30:00Z"},
        {"reason": "x" * 501},
        {"reason": "two\nlines"},
        {"reason": ""},
        {"actor": ""},
        {"actor": "a" * 65},
        {"actor": 42},
        {"action": "recording:steal"},
        {"outcome": "maybe"},
        {"recording_id": str(RID)},
        {"session": "has space"},
        {"session": "x" * 65},
    ],
)
def test_invalid_event_fields_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        event(**changes)


def test_action_and_outcome_may_be_given_as_their_tags() -> None:
    ev = event(action="key:rotate", outcome="denied")
    assert ev.action is Action.KEY_ROTATE and ev.outcome is Outcome.DENIED
    assert event(reason="x" * 500).reason == "x" * 500


# --- verify_log ---------------------------------------------------------------------

SEED = bytes(range(1, 33))
NAME = "vault.example/audit"
PUBLIC = public_key_from_seed(SEED)

Entry = tuple[int, bytes, bytes]


def make_log(n: int) -> list[Entry]:
    log = []
    for seq in range(n):
        body = event(time=T0 + dt.timedelta(seconds=seq), reason=f"reason {seq}").canonical_bytes()
        log.append((seq, body, merkle.leaf_hash(body)))
    return log


def checkpoint(log: list[Entry], size: int, origin: str = NAME) -> str:
    root = merkle.root_from_leaf_hashes([leaf for _, _, leaf in log[:size]])
    return sign_checkpoint(Checkpoint(origin, size, root), SEED, NAME)


LOG = make_log(30)
NOTES = [checkpoint(LOG, size) for size in (0, 5, 10, 20, 25)]


def problems_for(log: list[Entry], notes: list[str] = NOTES) -> list[str]:
    report = verify_log(iter(log), iter(notes), PUBLIC, NAME)
    assert report.ok == (not report.problems)
    return report.problems


def rebody(seq: int, body: bytes, recompute: bool, stored: bytes) -> Entry:
    return (seq, body, merkle.leaf_hash(body) if recompute else stored)


def test_untouched_log_with_several_checkpoints_verifies() -> None:
    report = verify_log(LOG, reversed(NOTES), PUBLIC, NAME)
    assert report.ok and report.problems == []
    assert (report.size, report.checkpoints_checked, report.unanchored) == (30, 5, 5)
    assert "unanchored: 5" in report.notes


def test_log_without_checkpoints_is_ok_but_wholly_unanchored() -> None:
    report = verify_log(LOG, [], PUBLIC, NAME)
    assert report.ok and report.unanchored == 30 and report.checkpoints_checked == 0
    assert verify_log([], [], PUBLIC, NAME).ok


def test_changed_entry_is_named_by_its_seq() -> None:
    log = list(LOG)
    seq, body, stored = log[7]
    log[7] = rebody(seq, body.replace(b"reason 7", b"reason X"), False, stored)
    problems = problems_for(log)
    assert "seq 7: entry does not match its stored leaf hash (changed)" in problems
    assert any("seq 5..9" in p for p in problems)


def test_changed_entry_with_recomputed_leaf_hash_is_found_between_checkpoints() -> None:
    log = list(LOG)
    seq, body, stored = log[7]
    log[7] = rebody(seq, body.replace(b"reason 7", b"reason X"), True, stored)
    problems = problems_for(log)
    assert problems[0].startswith("checkpoint #3 (size 10): log root differs")
    assert "seq 5..9" in problems[0]
    assert problems[1] == "2 later checkpoints do not match the log either"
    assert len(problems) == 2


def test_change_after_the_last_checkpoint_is_unanchored_not_detected() -> None:
    # The limit of any checkpointed log: stating it keeps the report honest.
    log = list(LOG)
    seq, body, stored = log[27]
    log[27] = rebody(seq, body.replace(b"reason 27", b"reason X"), True, stored)
    report = verify_log(log, NOTES, PUBLIC, NAME)
    assert report.ok and report.unanchored == 5


def test_removed_middle_entry_is_named() -> None:
    log = LOG[:12] + LOG[13:]
    problems = problems_for(log)
    assert "seq 12: missing (removed)" in problems
    assert any(p.startswith("checkpoint #4 (size 20): log root differs") for p in problems)


def test_removed_last_entry_before_a_checkpoint_is_found() -> None:
    short = LOG[:9]  # seq 9 was the last entry before the checkpoint at size 10
    problems = problems_for(short, [checkpoint(LOG, 5), checkpoint(LOG, 10)])
    assert problems == [
        "checkpoint #2 (size 10) is beyond the end of the log (9 entries): seq 9 removed"
    ]
    problems = problems_for(LOG[:9] + LOG[10:])
    assert "seq 9: missing (removed)" in problems
    assert any("checkpoint #3 (size 10): log root differs" in p for p in problems)


def test_removed_run_of_entries_is_named_as_a_range() -> None:
    problems = problems_for(LOG[:3] + LOG[8:])
    assert "seq 3..7: missing (removed)" in problems


def test_reordered_pair_is_named() -> None:
    log = list(LOG)
    log[3], log[4] = log[4], log[3]
    problems = problems_for(log)
    assert "seq 3: stored out of order (reordered)" in problems
    assert not any("missing" in p for p in problems)
    assert any("seq 0..4" in p for p in problems)  # the tree order changed too


def test_moved_entry_that_is_also_duplicated_is_named_both_ways() -> None:
    problems = problems_for([*LOG[:3], *LOG[4:6], LOG[3], LOG[3], *LOG[6:]])
    assert "seq 3: stored out of order (reordered)" in problems
    assert "seq 3: duplicate seq (inserted entry)" in problems
    assert not any("missing" in p for p in problems)


def test_swapped_contents_with_renumbered_seqs_break_the_root() -> None:
    log = list(LOG)
    log[3], log[4] = (3, *log[4][1:]), (4, *log[3][1:])
    problems = problems_for(log)
    assert problems[0].startswith("checkpoint #2 (size 5): log root differs")


def test_inserted_entry_with_duplicate_seq_is_named() -> None:
    forged = event(reason="inserted").canonical_bytes()
    log = [*LOG[:5], (4, forged, merkle.leaf_hash(forged)), *LOG[5:]]
    problems = problems_for(log)
    assert "seq 4: duplicate seq (inserted entry)" in problems
    assert any("checkpoint #3 (size 10): log root differs" in p for p in problems)


def test_inserted_entry_with_renumbered_seqs_breaks_the_root() -> None:
    forged = event(reason="inserted").canonical_bytes()
    bodies = [body for _, body, _ in LOG]
    bodies.insert(6, forged)
    log = [(seq, body, merkle.leaf_hash(body)) for seq, body in enumerate(bodies)]
    problems = problems_for(log)
    assert problems[0].startswith("checkpoint #3 (size 10): log root differs; an entry in seq 5..9")


def test_duplicated_entry_is_named() -> None:
    problems = problems_for([*LOG[:8], LOG[7], *LOG[8:]])
    assert "seq 7: duplicate seq (inserted entry)" in problems


def test_checkpoint_with_bad_signature_is_named_by_position() -> None:
    notes = list(NOTES)
    notes[1] = notes[1].replace("\n5\n", "\n6\n")
    problems = problems_for(LOG, notes)
    assert problems == ["checkpoint #2: note signature does not verify"]
    report = verify_log(LOG, notes, PUBLIC, NAME)
    assert report.checkpoints_checked == 4


def test_checkpoint_by_another_key_is_a_problem() -> None:
    other = sign_checkpoint(Checkpoint(NAME, 5, merkle.EMPTY_ROOT), bytes(32), NAME)
    problems = problems_for(LOG, [*NOTES, other])
    assert problems == ["checkpoint #6: note is not signed by the audit key"]


def test_checkpoint_for_another_origin_is_a_problem() -> None:
    problems = problems_for(LOG, [*NOTES, checkpoint(LOG, 10, origin="other.example/log")])
    assert problems == ["checkpoint #6: signed for another log (origin differs)"]
    report = verify_log(LOG, NOTES, PUBLIC, NAME, origin="other.example/log")
    assert not report.ok and len(report.problems) == 5


def test_checkpoint_that_the_later_one_does_not_extend_is_named() -> None:
    forked = list(LOG)
    seq, body, _ = forked[2]
    forked[2] = rebody(seq, body.replace(b"reason 2", b"reason F"), True, b"")
    notes = [checkpoint(LOG, 5), checkpoint(forked, 10), checkpoint(LOG, 20)]
    problems = problems_for(LOG, notes)
    assert problems == [
        "checkpoint #2 (size 10) is not consistent with checkpoint #3 (size 20): "
        "the later does not extend the earlier"
    ]


def test_two_checkpoints_of_one_size_that_disagree_are_a_fork() -> None:
    forked = list(LOG)
    forked[9] = rebody(9, b"other", True, b"")
    problems = problems_for(LOG, [checkpoint(forked, 10), checkpoint(LOG, 10)])
    assert problems == ["checkpoints #1 and #2 disagree at size 10 (fork)"]


def test_malformed_entries_are_reported_not_raised() -> None:
    log: list[object] = [*LOG[:3], (3, "text, not bytes", b""), ("4", *LOG[4][1:]), (5,)]
    report = verify_log(log, [], PUBLIC, NAME)  # type: ignore[arg-type]
    assert not report.ok
    assert report.problems[:3] == [
        "entry at position 3: malformed",
        "entry at position 4: malformed seq",
        "entry at position 5: malformed",
    ]
    assert report.size == 4  # the two entries that could not be hashed are not leaves
    assert not any("'4'" in p or "seq 4" in p for p in report.problems)


def test_many_problems_are_capped_and_counted() -> None:
    log = [(seq, body, b"\x00" * 32) for seq, body, _ in make_log(250)]
    report = verify_log(log, [], PUBLIC, NAME)
    assert len(report.problems) == 101
    assert report.problems[-1] == "... and 150 more problems"


def test_problems_never_quote_entry_content() -> None:
    log = list(LOG)
    seq, body, stored = log[4]
    log[4] = rebody(seq, body.replace(b"reason 4", b"Zebra"), True, stored)
    log[11], log[12] = log[12], log[11]
    report = verify_log(log, NOTES, PUBLIC, NAME)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "Zebra" not in text and "anna" not in text and "reason" not in text
