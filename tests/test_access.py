"""Need-based access (R8-R11): the whole policy as a readable matrix, then its edges."""

from __future__ import annotations

import datetime as dt
import types
import uuid
from typing import Any

import pytest

from callvault.core.access import (
    ACCOUNT_ROLES,
    ANY,
    OPERATOR,
    Decision,
    EmergencyGrant,
    Operation,
    Principal,
    Reason,
    RecordingTarget,
    Role,
    Target,
    UnitTarget,
    account_role,
    can,
    require,
)
from callvault.core.audit import Action, AuditEvent, Outcome
from callvault.core.errors import AccessDenied, InvalidInput

T0 = dt.datetime(2024, 5, 6, 2, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
RID = uuid.UUID("0b5c3a9e-51d4-4c56-8f0e-7d2a1b3c4d5e")
ME = "alex.berg"
REASON = "Patient called back, needs the earlier advice"

# --- the policy ------------------------------------------------------------------------
#
# The principal is ME, member of care unit "unit-a" only.  Columns are targets:
#   own_call    a recording in unit-a that ME took
#   unit_call   a recording in unit-a that a colleague took
#   other_call  a recording in unit-b
#   own_unit    unit-a as a whole        other_unit  unit-b as a whole
#   vault       no target (vault-wide)
# Allowed (upper case): CALL own_call, UNIT own_unit, VAULT vault_wide, OPER operator,
#   EMRG emergency.
# Denied (lower case): - role_lacks_permission, kind target_mismatch, other other_unit,
#   notown not_own_call, need unit_required, exp emergency_expired.

TOKENS = {
    "CALL": Reason.OWN_CALL,
    "UNIT": Reason.OWN_UNIT,
    "VAULT": Reason.VAULT_WIDE,
    "OPER": Reason.OPERATOR,
    "EMRG": Reason.EMERGENCY,
    "-": Reason.ROLE_LACKS_PERMISSION,
    "kind": Reason.TARGET_MISMATCH,
    "other": Reason.OTHER_UNIT,
    "notown": Reason.NOT_OWN_CALL,
    "need": Reason.UNIT_REQUIRED,
    "exp": Reason.EMERGENCY_EXPIRED,
}

WITHOUT_EMERGENCY = """
role             operation           own_call unit_call other_call own_unit other_unit vault
call_handler     recording.ingest    -      -      -      -      -      -
call_handler     recording.search    kind   kind   kind   UNIT   other  need
call_handler     recording.view      CALL   notown other  kind   kind   kind
call_handler     recording.play      CALL   notown other  kind   kind   kind
call_handler     recording.download  -      -      -      -      -      -
call_handler     recording.export    -      -      -      -      -      -
call_handler     recording.hold      -      -      -      -      -      -
call_handler     recording.erase     -      -      -      -      -      -
call_handler     subject.erase       -      -      -      -      -      -
call_handler     retention.sweep     -      -      -      -      -      -
call_handler     audit.read          -      -      -      -      -      -
call_handler     audit.verify        -      -      -      -      -      -
call_handler     audit.extract       -      -      -      -      -      -
call_handler     subject.export      -      -      -      -      -      -
call_handler     breach.report       -      -      -      -      -      -
call_handler     review.manage       -      -      -      -      -      -
call_handler     user.manage         -      -      -      -      -      -
call_handler     unit.manage         -      -      -      -      -      -
call_handler     policy.manage       -      -      -      -      -      -
call_handler     policy.read         -      -      -      -      -      -
call_handler     hold.list           -      -      -      -      -      -
call_handler     token.manage        -      -      -      -      -      -
call_handler     key.manage          -      -      -      -      -      -
call_handler     key.status          -      -      -      -      -      -
call_handler     job.view            -      -      -      -      -      -
call_handler     vault.manage        -      -      -      -      -      -
supervisor       recording.ingest    -      -      -      -      -      -
supervisor       recording.search    kind   kind   kind   UNIT   other  need
supervisor       recording.view      UNIT   UNIT   other  kind   kind   kind
supervisor       recording.play      UNIT   UNIT   other  kind   kind   kind
supervisor       recording.download  UNIT   UNIT   other  kind   kind   kind
supervisor       recording.export    -      -      -      -      -      -
supervisor       recording.hold      -      -      -      -      -      -
supervisor       recording.erase     -      -      -      -      -      -
supervisor       subject.erase       -      -      -      -      -      -
supervisor       retention.sweep     -      -      -      -      -      -
supervisor       audit.read          -      -      -      -      -      -
supervisor       audit.verify        -      -      -      -      -      -
supervisor       audit.extract       -      -      -      -      -      -
supervisor       subject.export      -      -      -      -      -      -
supervisor       breach.report       -      -      -      -      -      -
supervisor       review.manage       -      -      -      -      -      -
supervisor       user.manage         -      -      -      -      -      -
supervisor       unit.manage         -      -      -      -      -      -
supervisor       policy.manage       -      -      -      -      -      -
supervisor       policy.read         -      -      -      -      -      -
supervisor       hold.list           -      -      -      -      -      -
supervisor       token.manage        -      -      -      -      -      -
supervisor       key.manage          -      -      -      -      -      -
supervisor       key.status          -      -      -      -      -      -
supervisor       job.view            -      -      -      -      -      -
supervisor       vault.manage        -      -      -      -      -      -
log_reviewer     recording.ingest    -      -      -      -      -      -
log_reviewer     recording.search    -      -      -      -      -      -
log_reviewer     recording.view      -      -      -      -      -      -
log_reviewer     recording.play      -      -      -      -      -      -
log_reviewer     recording.download  -      -      -      -      -      -
log_reviewer     recording.export    -      -      -      -      -      -
log_reviewer     recording.hold      -      -      -      -      -      -
log_reviewer     recording.erase     -      -      -      -      -      -
log_reviewer     subject.erase       -      -      -      -      -      -
log_reviewer     retention.sweep     -      -      -      -      -      -
log_reviewer     audit.read          kind   kind   kind   kind   kind   VAULT
log_reviewer     audit.verify        kind   kind   kind   kind   kind   VAULT
log_reviewer     audit.extract       -      -      -      -      -      -
log_reviewer     subject.export      -      -      -      -      -      -
log_reviewer     breach.report       -      -      -      -      -      -
log_reviewer     review.manage       kind   kind   kind   kind   kind   VAULT
log_reviewer     user.manage         -      -      -      -      -      -
log_reviewer     unit.manage         -      -      -      -      -      -
log_reviewer     policy.manage       -      -      -      -      -      -
log_reviewer     policy.read         -      -      -      -      -      -
log_reviewer     hold.list           -      -      -      -      -      -
log_reviewer     token.manage        -      -      -      -      -      -
log_reviewer     key.manage          -      -      -      -      -      -
log_reviewer     key.status          -      -      -      -      -      -
log_reviewer     job.view            -      -      -      -      -      -
log_reviewer     vault.manage        -      -      -      -      -      -
privacy_officer  recording.ingest    -      -      -      -      -      -
privacy_officer  recording.search    kind   kind   kind   VAULT  VAULT  VAULT
privacy_officer  recording.view      VAULT  VAULT  VAULT  kind   kind   kind
privacy_officer  recording.play      -      -      -      -      -      -
privacy_officer  recording.download  -      -      -      -      -      -
privacy_officer  recording.export    -      -      -      -      -      -
privacy_officer  recording.hold      VAULT  VAULT  VAULT  kind   kind   kind
privacy_officer  recording.erase     VAULT  VAULT  VAULT  kind   kind   kind
privacy_officer  subject.erase       kind   kind   kind   kind   kind   VAULT
privacy_officer  retention.sweep     -      -      -      -      -      -
privacy_officer  audit.read          kind   kind   kind   kind   kind   VAULT
privacy_officer  audit.verify        kind   kind   kind   kind   kind   VAULT
privacy_officer  audit.extract       kind   kind   kind   kind   kind   VAULT
privacy_officer  subject.export      kind   kind   kind   kind   kind   VAULT
privacy_officer  breach.report       kind   kind   kind   kind   kind   VAULT
privacy_officer  review.manage       kind   kind   kind   kind   kind   VAULT
privacy_officer  user.manage         -      -      -      -      -      -
privacy_officer  unit.manage         -      -      -      -      -      -
privacy_officer  policy.manage       -      -      -      -      -      -
privacy_officer  policy.read         kind   kind   kind   kind   kind   VAULT
privacy_officer  hold.list           kind   kind   kind   kind   kind   VAULT
privacy_officer  token.manage        -      -      -      -      -      -
privacy_officer  key.manage          -      -      -      -      -      -
privacy_officer  key.status          -      -      -      -      -      -
privacy_officer  job.view            -      -      -      -      -      -
privacy_officer  vault.manage        -      -      -      -      -      -
administrator    recording.ingest    -      -      -      -      -      -
administrator    recording.search    -      -      -      -      -      -
administrator    recording.view      -      -      -      -      -      -
administrator    recording.play      -      -      -      -      -      -
administrator    recording.download  -      -      -      -      -      -
administrator    recording.export    -      -      -      -      -      -
administrator    recording.hold      -      -      -      -      -      -
administrator    recording.erase     -      -      -      -      -      -
administrator    subject.erase       -      -      -      -      -      -
administrator    retention.sweep     -      -      -      -      -      -
administrator    audit.read          -      -      -      -      -      -
administrator    audit.verify        -      -      -      -      -      -
administrator    audit.extract       -      -      -      -      -      -
administrator    subject.export      -      -      -      -      -      -
administrator    breach.report       -      -      -      -      -      -
administrator    review.manage       -      -      -      -      -      -
administrator    user.manage         kind   kind   kind   VAULT  VAULT  VAULT
administrator    unit.manage         kind   kind   kind   VAULT  VAULT  VAULT
administrator    policy.manage       kind   kind   kind   VAULT  VAULT  VAULT
administrator    policy.read         kind   kind   kind   kind   kind   VAULT
administrator    hold.list           -      -      -      -      -      -
administrator    token.manage        kind   kind   kind   VAULT  VAULT  VAULT
administrator    key.manage          -      -      -      -      -      -
administrator    key.status          kind   kind   kind   kind   kind   VAULT
administrator    job.view            kind   kind   kind   kind   kind   VAULT
administrator    vault.manage        -      -      -      -      -      -
recorder         recording.ingest    UNIT   UNIT   other  UNIT   other  kind
recorder         recording.search    -      -      -      -      -      -
recorder         recording.view      -      -      -      -      -      -
recorder         recording.play      -      -      -      -      -      -
recorder         recording.download  -      -      -      -      -      -
recorder         recording.export    -      -      -      -      -      -
recorder         recording.hold      -      -      -      -      -      -
recorder         recording.erase     -      -      -      -      -      -
recorder         subject.erase       -      -      -      -      -      -
recorder         retention.sweep     -      -      -      -      -      -
recorder         audit.read          -      -      -      -      -      -
recorder         audit.verify        -      -      -      -      -      -
recorder         audit.extract       -      -      -      -      -      -
recorder         subject.export      -      -      -      -      -      -
recorder         breach.report       -      -      -      -      -      -
recorder         review.manage       -      -      -      -      -      -
recorder         user.manage         -      -      -      -      -      -
recorder         unit.manage         -      -      -      -      -      -
recorder         policy.manage       -      -      -      -      -      -
recorder         policy.read         -      -      -      -      -      -
recorder         hold.list           -      -      -      -      -      -
recorder         token.manage        -      -      -      -      -      -
recorder         key.manage          -      -      -      -      -      -
recorder         key.status          -      -      -      -      -      -
recorder         job.view            -      -      -      -      -      -
recorder         vault.manage        -      -      -      -      -      -
operator         recording.ingest    OPER   OPER   OPER   OPER   OPER   kind
operator         recording.search    kind   kind   kind   OPER   OPER   OPER
operator         recording.view      OPER   OPER   OPER   kind   kind   kind
operator         recording.play      OPER   OPER   OPER   kind   kind   kind
operator         recording.download  OPER   OPER   OPER   kind   kind   kind
operator         recording.export    OPER   OPER   OPER   kind   kind   kind
operator         recording.hold      OPER   OPER   OPER   kind   kind   kind
operator         recording.erase     OPER   OPER   OPER   kind   kind   kind
operator         subject.erase       kind   kind   kind   kind   kind   OPER
operator         retention.sweep     kind   kind   kind   kind   kind   OPER
operator         audit.read          kind   kind   kind   kind   kind   OPER
operator         audit.verify        kind   kind   kind   kind   kind   OPER
operator         audit.extract       kind   kind   kind   kind   kind   OPER
operator         subject.export      kind   kind   kind   kind   kind   OPER
operator         breach.report       kind   kind   kind   kind   kind   OPER
operator         review.manage       kind   kind   kind   kind   kind   OPER
operator         user.manage         kind   kind   kind   OPER   OPER   OPER
operator         unit.manage         kind   kind   kind   OPER   OPER   OPER
operator         policy.manage       kind   kind   kind   OPER   OPER   OPER
operator         policy.read         kind   kind   kind   kind   kind   OPER
operator         hold.list           kind   kind   kind   kind   kind   OPER
operator         token.manage        kind   kind   kind   OPER   OPER   OPER
operator         key.manage          kind   kind   kind   kind   kind   OPER
operator         key.status          kind   kind   kind   kind   kind   OPER
operator         job.view            kind   kind   kind   kind   kind   OPER
operator         vault.manage        kind   kind   kind   kind   kind   OPER
"""

# With a grant for ANY unit, only these rows change; every other row is exactly as above
# (the grant does nothing for any other role or operation, download included).
WITH_VALID_EMERGENCY = """
call_handler     recording.search    kind   kind   kind   UNIT   EMRG   EMRG
call_handler     recording.view      CALL   EMRG   EMRG   kind   kind   kind
call_handler     recording.play      CALL   EMRG   EMRG   kind   kind   kind
supervisor       recording.search    kind   kind   kind   UNIT   EMRG   EMRG
supervisor       recording.view      UNIT   UNIT   EMRG   kind   kind   kind
supervisor       recording.play      UNIT   UNIT   EMRG   kind   kind   kind
"""

WITH_EXPIRED_EMERGENCY = """
call_handler     recording.search    kind   kind   kind   UNIT   exp    exp
call_handler     recording.view      CALL   exp    exp    kind   kind   kind
call_handler     recording.play      CALL   exp    exp    kind   kind   kind
supervisor       recording.search    kind   kind   kind   UNIT   exp    exp
supervisor       recording.view      UNIT   UNIT   exp    kind   kind   kind
supervisor       recording.play      UNIT   UNIT   exp    kind   kind   kind
"""

RELATIONS: dict[str, Target] = {
    "own_call": RecordingTarget("unit-a", ME, RID),
    "unit_call": RecordingTarget("unit-a", "robin.colleague", RID),
    "other_call": RecordingTarget("unit-b", "robin.colleague", RID),
    "own_unit": UnitTarget("unit-a"),
    "other_unit": UnitTarget("unit-b"),
    "vault": None,
}

Row = tuple[str, ...]


def parse_table(text: str, *, header: bool) -> dict[tuple[str, str], Row]:
    lines = [line.split() for line in text.strip().splitlines()]
    if header:
        assert lines[0][2:] == list(RELATIONS)
        lines = lines[1:]
    return {(role, op): tuple(cells) for role, op, *cells in lines}


BASE = parse_table(WITHOUT_EMERGENCY, header=True)
EMERGENCY_STATES = {
    # state: (grant opened at, time of the request, the rows that differ)
    "none": (None, T0, {}),
    "valid": (T0, T0 + HOUR / 2, parse_table(WITH_VALID_EMERGENCY, header=False)),
    "expired": (T0, T0 + 2 * HOUR, parse_table(WITH_EXPIRED_EMERGENCY, header=False)),
}


def grant_for(name: str, opened: dt.datetime, units: Any = ANY) -> EmergencyGrant:
    # Built directly, not with open(), so every role can be handed one.
    return EmergencyGrant(
        holder=name, care_units=units, reason=REASON, opened_at=opened, expires_at=opened + HOUR
    )


def token(decision: Decision) -> str:
    (name,) = [t for t, reason in TOKENS.items() if reason == decision.reason_code]
    assert decision.allowed == name.isupper(), decision
    assert decision.emergency == (decision.reason_code == Reason.EMERGENCY), decision
    return name


def test_the_policy_table_names_every_role_and_operation_once() -> None:
    assert set(BASE) == {(r.value, o.value) for r in Role for o in Operation}
    assert all(len(row) == len(RELATIONS) for row in BASE.values())
    assert all(c in TOKENS for row in BASE.values() for c in row)


@pytest.mark.parametrize("state", list(EMERGENCY_STATES))
@pytest.mark.parametrize(("role", "operation"), sorted(BASE))
def test_r8_matrix_decides_every_role_operation_target_and_emergency_state(
    role: str, operation: str, state: str
) -> None:
    opened, now, changed = EMERGENCY_STATES[state]
    grant = None if opened is None else grant_for(ME, opened)
    principal = Principal(ME, role, care_units=frozenset({"unit-a"}), emergency=grant)
    expected = changed.get((role, operation), BASE[role, operation])
    actual = tuple(token(can(principal, operation, t, now=now)) for t in RELATIONS.values())
    assert actual == expected


# --- emergency grants (R10) ------------------------------------------------------------


def handler(**changes: object) -> Principal:
    fields: dict[str, object] = {"care_units": frozenset({"unit-a"})}
    fields.update(changes)
    return Principal(ME, Role.CALL_HANDLER, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "reason",
    [
        "",
        "          ",
        "too short",
        "call 070-123 45 67 back",
        "pnr 19121212-1212 urgent",
        "needs\nnewline",
        "x" * 501,
        None,
    ],
)
def test_emergency_refuses_missing_short_personal_or_unprintable_reason(reason: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        EmergencyGrant.open(handler(), reason, ANY, T0, HOUR)  # type: ignore[arg-type]
    if isinstance(reason, str) and reason.strip():
        assert reason.strip() not in str(caught.value)  # the message never echoes the text


def test_emergency_reason_of_ten_characters_is_enough_and_is_kept_trimmed() -> None:
    grant = EmergencyGrant.open(handler(), "  Callback 2  ", ANY, T0, HOUR)
    assert grant.reason == "Callback 2"
    assert grant.holder == ME and grant.opened_at == T0 and grant.expires_at == T0 + HOUR


def test_emergency_lasts_at_most_four_hours() -> None:
    four = dt.timedelta(hours=4)
    assert EmergencyGrant.open(handler(), REASON, ANY, T0, four).expires_at == T0 + four
    for bad in (four + dt.timedelta(microseconds=1), dt.timedelta(0), -HOUR):
        with pytest.raises(InvalidInput):
            EmergencyGrant.open(handler(), REASON, ANY, T0, bad)
    with pytest.raises(InvalidInput):  # a stored grant stretched by hand is refused too
        EmergencyGrant(
            holder=ME, care_units=ANY, reason=REASON, opened_at=T0, expires_at=T0 + 5 * HOUR
        )


def test_emergency_is_valid_from_opening_until_just_before_expiry() -> None:
    me = handler(emergency=grant_for(ME, T0))
    colleague = RELATIONS["unit_call"]
    at = {
        T0 - dt.timedelta(microseconds=1): Reason.EMERGENCY_NOT_STARTED,
        T0: Reason.EMERGENCY,
        T0 + HOUR - dt.timedelta(microseconds=1): Reason.EMERGENCY,
        T0 + HOUR: Reason.EMERGENCY_EXPIRED,
    }
    for now, reason in at.items():
        decision = can(me, Operation.RECORDING_PLAY, colleague, now=now)
        assert (decision.allowed, decision.reason_code) == (reason == Reason.EMERGENCY, reason)


def test_emergency_for_listed_units_reaches_only_those_units() -> None:
    me = handler(emergency=grant_for(ME, T0, frozenset({"unit-b"})))
    now = T0 + HOUR / 2
    in_b = can(me, Operation.RECORDING_PLAY, RecordingTarget("unit-b", "kim", RID), now=now)
    assert in_b == Decision(True, Reason.EMERGENCY, emergency=True)
    in_c = can(me, Operation.RECORDING_PLAY, RecordingTarget("unit-c", "kim", RID), now=now)
    assert in_c == Decision(False, Reason.OTHER_UNIT)
    colleague = can(me, Operation.RECORDING_VIEW, RELATIONS["unit_call"], now=now)
    assert colleague == Decision(False, Reason.NOT_OWN_CALL)
    everywhere = can(me, Operation.RECORDING_SEARCH, None, now=now)
    assert everywhere == Decision(False, Reason.UNIT_REQUIRED)


@pytest.mark.parametrize("units", [frozenset(), ["unit-b"], "unit-b", frozenset({"Not A Slug!"})])
def test_emergency_grant_needs_a_set_of_valid_units_or_any(units: object) -> None:
    with pytest.raises(InvalidInput):
        grant_for(ME, T0, units)


def test_emergency_open_takes_any_collection_of_units() -> None:
    grant = EmergencyGrant.open(handler(), REASON, ["unit-b", "unit-c"], T0, HOUR)
    assert grant.care_units == frozenset({"unit-b", "unit-c"})
    with pytest.raises(InvalidInput):
        EmergencyGrant.open(handler(), REASON, "unit-b", T0, HOUR)


@pytest.mark.parametrize("role", sorted(set(Role) - {Role.CALL_HANDLER, Role.SUPERVISOR}))
def test_emergency_cannot_be_opened_by_roles_it_never_extends(role: Role) -> None:
    with pytest.raises(AccessDenied) as caught:
        EmergencyGrant.open(Principal(ME, role), REASON, ANY, T0, HOUR)
    assert caught.value.params["reason"] == Reason.EMERGENCY_NOT_PERMITTED


def test_a_grant_cannot_be_worn_by_another_principal() -> None:
    with pytest.raises(InvalidInput):
        Principal("someone.else", Role.SUPERVISOR, emergency=grant_for(ME, T0))


# --- separation of duties (R9, R11) ----------------------------------------------------

AUDIO = (Operation.RECORDING_PLAY, Operation.RECORDING_DOWNLOAD, Operation.RECORDING_EXPORT)
METADATA = (Operation.RECORDING_VIEW, Operation.RECORDING_SEARCH)


def every_situation(role: Role) -> list[Principal]:
    units = frozenset({"unit-a", "unit-b"})
    return [
        Principal(ME, role, care_units=units, emergency=grant)
        for grant in (None, grant_for(ME, T0), grant_for(ME, T0, units))
    ]


@pytest.mark.parametrize(
    ("role", "forbidden"),
    [
        (Role.ADMINISTRATOR, AUDIO + METADATA),
        (Role.LOG_REVIEWER, AUDIO + METADATA),
        (Role.PRIVACY_OFFICER, AUDIO),
        (Role.RECORDER, tuple(set(Operation) - {Operation.RECORDING_INGEST})),
    ],
)
def test_role_never_gets_forbidden_operations_whatever_the_target_or_grant(
    role: Role, forbidden: tuple[Operation, ...]
) -> None:
    targets = [*RELATIONS.values(), RecordingTarget("unit-a", None, RID)]
    for principal in every_situation(role):
        for op in forbidden:
            for target in targets:
                decision = can(principal, op, target, now=T0 + HOUR / 2)
                assert decision == Decision(False, Reason.ROLE_LACKS_PERMISSION)


def test_r11_recorder_ingests_into_its_own_units_only() -> None:
    recorder = Principal("recorder-1177", Role.RECORDER, care_unit="unit-a")
    ingest = Operation.RECORDING_INGEST
    assert can(recorder, ingest, UnitTarget("unit-a"), now=T0).allowed
    assert can(recorder, ingest, RecordingTarget("unit-a", "kim", RID), now=T0).allowed
    assert not can(recorder, ingest, UnitTarget("unit-b"), now=T0).allowed
    assert not can(recorder, ingest, None, now=T0).allowed


def test_r9_play_does_not_imply_download_for_call_handlers() -> None:
    mine = RELATIONS["own_call"]
    assert can(handler(), Operation.RECORDING_PLAY, mine, now=T0).allowed
    assert not can(handler(), Operation.RECORDING_DOWNLOAD, mine, now=T0).allowed


def test_own_call_in_a_unit_one_has_left_is_not_reachable() -> None:
    moved = handler(care_units=frozenset({"unit-c"}))
    decision = can(moved, Operation.RECORDING_PLAY, RELATIONS["own_call"], now=T0)
    assert decision == Decision(False, Reason.OTHER_UNIT)


def test_supervisor_of_several_units_reaches_each_of_them_only() -> None:
    boss = Principal(ME, Role.SUPERVISOR, care_units=frozenset({"unit-a", "unit-b"}))
    for unit, allowed in (("unit-a", True), ("unit-b", True), ("unit-c", False)):
        target = RecordingTarget(unit, "kim", RID)
        assert can(boss, Operation.RECORDING_DOWNLOAD, target, now=T0).allowed is allowed


def test_call_without_agent_is_nobodys_own_call() -> None:
    anonymous = RecordingTarget("unit-a", None, RID)
    decision = can(handler(), Operation.RECORDING_PLAY, anonymous, now=T0)
    assert decision == Decision(False, Reason.NOT_OWN_CALL)


# --- deny by default and the calling contract --------------------------------------------


@pytest.mark.parametrize("role", ["nurse", "Supervisor", "root"])
def test_unknown_role_is_denied_everything(role: str) -> None:
    principal = Principal(ME, role, care_unit="unit-a")
    assert principal.role == role and not isinstance(principal.role, Role)
    for op in Operation:
        for target in RELATIONS.values():
            assert can(principal, op, target, now=T0) == Decision(False, Reason.UNKNOWN_ROLE)


@pytest.mark.parametrize("operation", ["recording.delete", "RECORDING.PLAY", "recording:play", ""])
def test_unknown_operation_is_denied_even_to_the_operator(operation: str) -> None:
    decision = can(Principal(ME, OPERATOR), operation, None, now=T0)
    assert decision == Decision(False, Reason.UNKNOWN_OPERATION)


def test_require_raises_access_denied_with_only_operation_and_reason() -> None:
    target = RecordingTarget("unit-secret", "kim.nurse", RID)
    with pytest.raises(AccessDenied) as caught:
        require(handler(), Operation.RECORDING_PLAY, target, now=T0)
    assert str(caught.value) == "access denied: recording.play: other_unit"
    assert caught.value.params["reason"] == Reason.OTHER_UNIT
    with pytest.raises(AccessDenied, match=r"^access denied: unknown operation: unknown_op"):
        require(handler(), "play 070-1234567", target, now=T0)


def test_require_returns_the_decision_when_allowed() -> None:
    decision = require(handler(), Operation.RECORDING_PLAY, RELATIONS["own_call"], now=T0)
    assert decision == Decision(True, Reason.OWN_CALL)


def test_decision_has_no_truth_value_so_it_cannot_be_tested_by_mistake() -> None:
    with pytest.raises(TypeError):
        bool(can(handler(), Operation.RECORDING_PLAY, None, now=T0))


def test_naive_time_is_refused() -> None:
    with pytest.raises(InvalidInput):
        can(handler(), Operation.RECORDING_PLAY, None, now=dt.datetime(2024, 5, 6, 2, 0))


def test_target_can_be_built_from_a_stored_row() -> None:
    row = types.SimpleNamespace(care_unit="unit-a", agent=ME, id=RID)
    assert RecordingTarget.of(row) == RELATIONS["own_call"]  # type: ignore[arg-type]


# --- principals --------------------------------------------------------------------------


def test_operator_principal_as_the_cli_builds_it_still_works() -> None:
    cli = Principal(name="root", role=OPERATOR)
    as_text: str = cli.role  # callers that compare with the plain string keep working
    assert cli.role is Role.OPERATOR is OPERATOR and as_text == "operator"
    assert cli.care_unit is None and cli.care_units == frozenset() and cli.emergency is None
    positional = Principal("svc", "operator", None, "abc123")
    assert positional.session == "abc123"


def test_care_unit_and_care_units_fill_each_other() -> None:
    assert Principal(ME, "supervisor", care_unit="Unit-A").care_units == {"unit-a"}
    single = Principal(ME, "supervisor", care_units=frozenset({"unit-a"}))
    assert single.care_unit == "unit-a"
    several = Principal(ME, "supervisor", care_units=frozenset({"unit-a", "unit-b"}))
    assert several.care_unit is None
    both = Principal(ME, "supervisor", "unit-c", care_units=frozenset({"unit-a"}))
    assert both.care_unit == "unit-c" and both.care_units == {"unit-a", "unit-c"}


@pytest.mark.parametrize(
    "changes",
    [
        {"care_units": "unit-a"},
        {"care_unit": "070-1234567"},
        {"role": "two words"},
        {"name": "../etc"},
    ],
)
def test_principal_refuses_malformed_fields(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {"name": ME, "role": "supervisor", **changes}
    with pytest.raises(InvalidInput):
        Principal(**fields)  # type: ignore[arg-type]


def test_accounts_can_hold_every_role_but_operator() -> None:
    assert {account_role(r.value) for r in ACCOUNT_ROLES} == set(Role) - {Role.OPERATOR}
    for bad in ("operator", "root", ""):
        with pytest.raises(InvalidInput):
            account_role(bad)


def test_role_enum_is_written_to_the_audit_log_as_plain_text() -> None:
    principal = Principal(ME, Role.SUPERVISOR, care_unit="unit-a")
    event = AuditEvent(
        time=T0,
        actor=principal.name,
        role=principal.role,
        care_unit=principal.care_unit,
        action=Action.RECORDING_PLAY,
        outcome=Outcome.SUCCESS,
    )
    assert b'"role":"supervisor"' in event.canonical_bytes()
    assert AuditEvent.from_canonical(event.canonical_bytes()) == event
