"""Who is acting, and whether they may: the one need-based access decision (R8-R11).

Every service asks :func:`can` (or :func:`require`) before it touches a
recording, the log or the vault's settings, so the API, the UI and the CLI
can never disagree.  The decision is a pure function of the principal, the
operation, the target and the time passed in: no clock, no database, no I/O.

Deny by default: a role or operation this module does not know, a target of
the wrong kind, or anything ``_GRANTS`` (the policy, read it) does not list
is refused.  An emergency grant (R10) extends search, view and play, and
nothing else, to the granted care units, for call handlers and supervisors
only.  docs/access.md gives the rationale.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, TypeVar

from callvault.core.audit import contains_personal_identifier
from callvault.core.errors import AccessDenied, InvalidInput
from callvault.core.recordings import RecordingRow, validate_care_unit

_NAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}\Z")
# A principal is a user ("anna.berg") or an API token ("token:ingest-7"); the
# prefix cannot be mistaken for a user name, which never holds a colon.
_PRINCIPAL_NAME = re.compile(r"\A(?=.{1,64}\Z)(?:token:)?[A-Za-z0-9_][A-Za-z0-9._@-]*\Z")


def new_session_id() -> str:
    return secrets.token_hex(8)


class Role(enum.StrEnum):
    """One role per account.  Values are stored and logged: never rename one."""

    CALL_HANDLER = "call_handler"
    SUPERVISOR = "supervisor"
    LOG_REVIEWER = "log_reviewer"
    PRIVACY_OFFICER = "privacy_officer"
    ADMINISTRATOR = "administrator"
    RECORDER = "recorder"
    OPERATOR = "operator"


OPERATOR: Final = Role.OPERATOR

# The operator is the OS user on the vault host; no account, token or network
# session may ever carry that role.
ACCOUNT_ROLES: Final = frozenset(Role) - {Role.OPERATOR}


def account_role(text: str) -> Role:
    """Parse the role of a user account or token; the operator role is refused."""
    try:
        role = Role(text)
    except ValueError:
        raise InvalidInput("unknown role") from None
    if role not in ACCOUNT_ROLES:
        raise InvalidInput("the operator role is local only and cannot be given to an account")
    return role


class Operation(enum.StrEnum):
    """Everything that can be asked of :func:`can`.  Values are stable."""

    RECORDING_INGEST = "recording.ingest"
    RECORDING_SEARCH = "recording.search"
    RECORDING_VIEW = "recording.view"  # metadata, no audio
    RECORDING_PLAY = "recording.play"  # streamed to the listener
    RECORDING_DOWNLOAD = "recording.download"  # a copy leaves the vault
    RECORDING_EXPORT = "recording.export"  # decrypted to a file on the vault host
    RECORDING_HOLD = "recording.hold"
    RECORDING_ERASE = "recording.erase"
    SUBJECT_ERASE = "subject.erase"  # GDPR Art. 17 erasure by caller (R21)
    RETENTION_SWEEP = "retention.sweep"  # shred what is due (R20); local operator only
    AUDIT_READ = "audit.read"
    AUDIT_VERIFY = "audit.verify"
    AUDIT_EXTRACT = "audit.extract"  # the patient's log extract (R18)
    SUBJECT_EXPORT = "subject.export"  # GDPR Art. 15 export (R21)
    BREACH_REPORT = "breach.report"  # GDPR Art. 33 report (R22)
    REVIEW_MANAGE = "review.manage"  # log review items (R17)
    USER_MANAGE = "user.manage"
    UNIT_MANAGE = "unit.manage"
    POLICY_MANAGE = "policy.manage"
    POLICY_READ = "policy.read"  # recording policies as they stand (R19)
    HOLD_LIST = "hold.list"  # which recordings are on legal hold (R20)
    TOKEN_MANAGE = "token.manage"  # noqa: S105 (an operation name, not a secret)
    KEY_MANAGE = "key.manage"
    KEY_STATUS = "key.status"  # versions and counts, never key material
    JOB_VIEW = "job.view"  # background jobs' state and progress, never payloads
    VAULT_MANAGE = "vault.manage"  # init, whole-vault verify, checkpoint signing


class Reason(enum.StrEnum):
    """Stable reason codes of a :class:`Decision`; safe to log and to show."""

    OWN_CALL = "own_call"
    OWN_UNIT = "own_unit"
    VAULT_WIDE = "vault_wide"
    OPERATOR = "operator"
    EMERGENCY = "emergency"
    UNKNOWN_ROLE = "unknown_role"
    UNKNOWN_OPERATION = "unknown_operation"
    ROLE_LACKS_PERMISSION = "role_lacks_permission"
    TARGET_MISMATCH = "target_mismatch"
    UNIT_REQUIRED = "unit_required"
    OTHER_UNIT = "other_unit"
    NOT_OWN_CALL = "not_own_call"
    EMERGENCY_EXPIRED = "emergency_expired"
    EMERGENCY_NOT_STARTED = "emergency_not_started"
    EMERGENCY_NOT_PERMITTED = "emergency_not_permitted"


# --- targets -----------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingTarget:
    """One recording, as stored: its care unit and the agent who took the call."""

    care_unit: str
    agent: str | None
    recording_id: uuid.UUID

    @classmethod
    def of(cls, row: RecordingRow) -> RecordingTarget:
        return cls(row.care_unit, row.agent, row.id)


@dataclass(frozen=True)
class UnitTarget:
    """A whole care unit: where to ingest, search, or what to administer."""

    care_unit: str


Target = RecordingTarget | UnitTarget | None


# --- emergency access (R10) --------------------------------------------------------


class AnyUnit(enum.Enum):
    ANY = "any"


ANY: Final = AnyUnit.ANY
EMERGENCY_MAX_DURATION: Final = dt.timedelta(hours=4)
EMERGENCY_MIN_REASON: Final = 10
_MAX_REASON = 500  # what an audit entry's reason holds
_EMERGENCY_ROLES = frozenset({Role.CALL_HANDLER, Role.SUPERVISOR})
_EMERGENCY_OPERATIONS = frozenset(
    {Operation.RECORDING_SEARCH, Operation.RECORDING_VIEW, Operation.RECORDING_PLAY}
)


@dataclass(frozen=True, kw_only=True)
class EmergencyGrant:
    """Time-boxed access beyond one's own calls or units, for a typed reason.

    Valid for ``opened_at <= now < expires_at``, at most four hours.  The
    reason is written into the log, so it is screened like any audit text:
    at least 10 and at most 500 printable characters, nothing that looks
    like a phone number or personnummer.  ``care_units`` is a non-empty set
    of care units or ``ANY``.  Every field is checked again on construction,
    so a grant read back from storage is as trustworthy as a new one.
    """

    holder: str
    care_units: frozenset[str] | Literal[AnyUnit.ANY]
    reason: str
    opened_at: dt.datetime
    expires_at: dt.datetime

    def __post_init__(self) -> None:
        if not isinstance(self.holder, str) or not _NAME.match(self.holder):
            raise InvalidInput("emergency grant holder must be a plain user name")
        object.__setattr__(self, "care_units", _grant_units(self.care_units))
        object.__setattr__(self, "reason", _emergency_reason(self.reason))
        for moment in (self.opened_at, self.expires_at):
            _aware(moment)
        if not dt.timedelta(0) < self.expires_at - self.opened_at <= EMERGENCY_MAX_DURATION:
            raise InvalidInput("emergency access lasts more than nothing and at most 4 hours")

    @classmethod
    def open(
        cls,
        principal: Principal,
        reason: str,
        care_units: Iterable[str] | Literal[AnyUnit.ANY],
        now: dt.datetime,
        duration: dt.timedelta,
    ) -> EmergencyGrant:
        """Open a grant for ``principal`` from ``now``; ``AccessDenied`` for a
        role that emergency access never extends, ``InvalidInput`` for a bad
        reason, unit list or a duration over four hours."""
        if principal.role not in _EMERGENCY_ROLES:
            raise AccessDenied(
                f"emergency access: {Reason.EMERGENCY_NOT_PERMITTED}",
                reason=Reason.EMERGENCY_NOT_PERMITTED,
            )
        if not isinstance(duration, dt.timedelta):
            raise InvalidInput("emergency access duration must be a timedelta")
        units = care_units if care_units is ANY else frozenset(_str_items(care_units))
        return cls(
            holder=principal.name,
            care_units=units,
            reason=reason,
            opened_at=_aware(now),
            expires_at=now + duration,
        )

    def covers(self, target: Target) -> bool:
        """True if the grant reaches ``target``; only ``ANY`` reaches vault-wide."""
        if self.care_units is ANY:
            return True
        return target is not None and target.care_unit in self.care_units


def _aware(moment: object) -> dt.datetime:
    if not isinstance(moment, dt.datetime) or moment.utcoffset() is None:
        raise InvalidInput("time must be a timezone-aware datetime")
    return moment


def _str_items(items: Iterable[str]) -> list[str]:
    # A bare string is iterable too; "unit-a" must never become {"u", "n", ...}.
    if isinstance(items, str) or not all(isinstance(i, str) for i in items):
        raise InvalidInput("care units must be a collection of care unit names")
    return list(items)


def _grant_units(units: object) -> frozenset[str] | Literal[AnyUnit.ANY]:
    if units is ANY:
        return ANY
    if not isinstance(units, frozenset):
        raise InvalidInput("emergency care units must be a set of care units or ANY")
    clean = frozenset(validate_care_unit(u) for u in _str_items(units))
    if not clean:
        raise InvalidInput("emergency access needs at least one care unit, or ANY")
    return clean


def _emergency_reason(reason: object) -> str:
    # Messages name the rule, never echo the text (it may hold an identifier).
    if not isinstance(reason, str):
        raise InvalidInput("emergency access needs a typed reason")
    text = reason.strip()
    if not EMERGENCY_MIN_REASON <= len(text) <= _MAX_REASON:
        raise InvalidInput(
            f"emergency reason must be {EMERGENCY_MIN_REASON} to {_MAX_REASON} characters"
        )
    if not text.isprintable():
        raise InvalidInput("emergency reason must be printable text on one line")
    if contains_personal_identifier(text):
        raise InvalidInput("emergency reason must not contain personal identifiers")
    return text


# --- the principal -----------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """A person or system acting on the vault.

    ``name`` is a login or OS user name.  ``role`` is one :class:`Role`; a
    known role name is normalised to the enum, an unknown one is kept as
    text and denied everything.  ``care_units`` is every unit the principal
    belongs to; ``care_unit`` is the one recorded in their audit entries.
    Passing only ``care_unit`` makes it the sole member of ``care_units``;
    passing a single member of ``care_units`` makes it ``care_unit``.
    ``emergency`` must be a grant opened for this same ``name``.
    """

    name: str
    role: str
    care_unit: str | None = None
    session: str = field(default_factory=new_session_id)
    care_units: frozenset[str] = frozenset()
    emergency: EmergencyGrant | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _PRINCIPAL_NAME.match(self.name):
            raise InvalidInput("principal name must be a plain user name")
        if not isinstance(self.role, str) or not _NAME.match(self.role):
            raise InvalidInput("principal role must be a plain role name")
        object.__setattr__(self, "role", _parse(Role, self.role) or self.role)
        units = {validate_care_unit(u) for u in _str_items(self.care_units)}
        unit = None if self.care_unit is None else validate_care_unit(self.care_unit)
        if unit is not None:
            units.add(unit)
        elif len(units) == 1:
            (unit,) = units
        object.__setattr__(self, "care_unit", unit)
        object.__setattr__(self, "care_units", frozenset(units))
        if self.emergency is not None and (
            not isinstance(self.emergency, EmergencyGrant) or self.emergency.holder != self.name
        ):
            raise InvalidInput("an emergency grant belongs to the principal it was opened for")


# --- the decision ------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The answer of :func:`can`.

    ``emergency`` is True when access was allowed only by an emergency
    grant: the caller must flag the audit entry and queue a review item.
    A Decision has no truth value (``if can(...)`` would always pass); read
    ``allowed``.
    """

    allowed: bool
    reason_code: Reason
    emergency: bool = False

    def __bool__(self) -> bool:
        raise TypeError("a Decision has no truth value; read .allowed")


class _Scope(enum.Enum):
    OWN_CALLS = "own_calls"
    OWN_UNITS = "own_units"
    VAULT = "vault"


def _ops(names: str) -> tuple[Operation, ...]:
    return tuple(Operation(name) for name in names.split())


_REC, _UNIT, _NONE = RecordingTarget, UnitTarget, type(None)

# The kinds of target each operation takes; any other kind is a mistake by the
# caller and is refused rather than guessed at.
_TARGET_KINDS: Final[dict[Operation, frozenset[type[object]]]] = {
    Operation.RECORDING_INGEST: frozenset({_REC, _UNIT}),
    **dict.fromkeys(
        _ops("recording.view recording.play recording.download recording.export"
             " recording.hold recording.erase"),
        frozenset({_REC}),
    ),
    **dict.fromkeys(
        _ops("recording.search user.manage unit.manage policy.manage token.manage"),
        frozenset({_UNIT, _NONE}),
    ),
    **dict.fromkeys(
        _ops("audit.read audit.verify audit.extract subject.export breach.report"
             " review.manage key.manage key.status job.view vault.manage subject.erase"
             " policy.read hold.list"
             " retention.sweep"),
        frozenset({_NONE}),
    ),
}  # fmt: skip

# The policy.  Whatever is not listed here is denied.
_GRANTS: Final[dict[Role, dict[Operation, _Scope]]] = {
    Role.CALL_HANDLER: {
        Operation.RECORDING_SEARCH: _Scope.OWN_UNITS,  # rows then filtered with view
        Operation.RECORDING_VIEW: _Scope.OWN_CALLS,
        Operation.RECORDING_PLAY: _Scope.OWN_CALLS,
    },
    Role.SUPERVISOR: dict.fromkeys(
        _ops("recording.search recording.view recording.play recording.download"),
        _Scope.OWN_UNITS,
    ),
    Role.LOG_REVIEWER: dict.fromkeys(
        _ops("audit.read audit.verify review.manage"), _Scope.VAULT
    ),
    Role.PRIVACY_OFFICER: dict.fromkeys(
        _ops("audit.read audit.verify audit.extract review.manage recording.search"
             " recording.view recording.hold recording.erase subject.export breach.report"
             " subject.erase policy.read hold.list"),
        _Scope.VAULT,
    ),
    Role.ADMINISTRATOR: dict.fromkeys(
        _ops("user.manage unit.manage policy.manage policy.read token.manage key.status"
             " job.view"),
        _Scope.VAULT,
    ),
    Role.RECORDER: {Operation.RECORDING_INGEST: _Scope.OWN_UNITS},
    Role.OPERATOR: dict.fromkeys(Operation, _Scope.VAULT),
}  # fmt: skip

_ALLOWED_BY_SCOPE = {_Scope.OWN_CALLS: Reason.OWN_CALL, _Scope.OWN_UNITS: Reason.OWN_UNIT}


def _deny(reason: Reason) -> Decision:
    return Decision(False, reason)


_E = TypeVar("_E", Role, Operation)


def _parse(kind: type[_E], value: str) -> _E | None:
    try:
        return kind(value)
    except ValueError:
        return None


def can(principal: Principal, operation: str, target: Target, *, now: dt.datetime) -> Decision:
    """Decide whether ``principal`` may do ``operation`` on ``target`` at ``now``.

    Pure and total: every input gets a :class:`Decision`, and anything not
    explicitly granted is denied.  ``now`` must be timezone-aware
    (``InvalidInput`` otherwise); it is only compared with emergency grants.
    """
    _aware(now)
    role = _parse(Role, principal.role)
    op = _parse(Operation, operation)
    if role is None:
        return _deny(Reason.UNKNOWN_ROLE)
    if op is None:
        return _deny(Reason.UNKNOWN_OPERATION)
    scope = _GRANTS[role].get(op)
    emergency_possible = role in _EMERGENCY_ROLES and op in _EMERGENCY_OPERATIONS
    if scope is None and not emergency_possible:
        return _deny(Reason.ROLE_LACKS_PERMISSION)
    if type(target) not in _TARGET_KINDS.get(op, ()):
        return _deny(Reason.TARGET_MISMATCH)
    if role is Role.OPERATOR:
        return Decision(True, Reason.OPERATOR)
    ordinary = _within(scope, principal, target)
    if ordinary.allowed or not emergency_possible or principal.emergency is None:
        return ordinary
    return _by_emergency(principal.emergency, target, now, ordinary)


def _within(scope: _Scope | None, principal: Principal, target: Target) -> Decision:
    if scope is None:
        return _deny(Reason.ROLE_LACKS_PERMISSION)
    if scope is _Scope.VAULT:
        return Decision(True, Reason.VAULT_WIDE)
    if target is None:
        return _deny(Reason.UNIT_REQUIRED)
    if target.care_unit not in principal.care_units:
        return _deny(Reason.OTHER_UNIT)
    if scope is _Scope.OWN_CALLS and not (
        isinstance(target, RecordingTarget) and target.agent == principal.name
    ):
        return _deny(Reason.NOT_OWN_CALL)
    return Decision(True, _ALLOWED_BY_SCOPE[scope])


def _by_emergency(
    grant: EmergencyGrant, target: Target, now: dt.datetime, ordinary: Decision
) -> Decision:
    # A grant that does not reach the target leaves the ordinary reason,
    # which says more than "emergency" would.
    if not grant.covers(target):
        return ordinary
    if now >= grant.expires_at:
        return _deny(Reason.EMERGENCY_EXPIRED)
    if now < grant.opened_at:
        return _deny(Reason.EMERGENCY_NOT_STARTED)
    return Decision(True, Reason.EMERGENCY, emergency=True)


def require(principal: Principal, operation: str, target: Target, *, now: dt.datetime) -> Decision:
    """:func:`can`, raising ``AccessDenied`` on a denial.

    The message holds the operation and the reason code only (no names, no
    units, no ids); the code is also in ``error.params["reason"]``.
    """
    decision = can(principal, operation, target, now=now)
    if not decision.allowed:
        shown = _parse(Operation, operation) or "unknown operation"
        raise AccessDenied(f"{shown}: {decision.reason_code}", reason=decision.reason_code)
    return decision
