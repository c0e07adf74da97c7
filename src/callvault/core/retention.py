"""Recording policies, retention classes and legal holds: pure rules, no I/O (R19, R20).

A *recording policy* says why a care unit records calls of one retention
class (purpose, legal basis) and how long they are kept.  Ingest without an
active policy for the unit and class is refused.  Two classes exist:

``record``   a record document under patient-data law: kept at least ten years
             after the call (3653 days, whatever the leap days); deleting one
             earlier needs a recorded decision reference.
``quality``  a short-term quality recording, kept a set number of days.

A *legal hold* (set and released by the privacy officer, with a reference)
overrides both: a held recording is never shredded, whatever its age.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from dataclasses import dataclass
from typing import Final

from callvault.core.audit import contains_personal_identifier
from callvault.core.errors import InvalidInput
from callvault.core.recordings import validate_care_unit

RECORD: Final = "record"
QUALITY: Final = "quality"
POLICY_CLASSES: Final = (RECORD, QUALITY)
RECORD_MIN_DAYS: Final = 3653  # ten calendar years hold at most three leap days
QUALITY_DEFAULT_DAYS: Final = 30
QUALITY_MAX_DAYS: Final = 3652  # short-term means shorter than a record document
MAX_KEEP_DAYS: Final = 36525  # a century: anything longer is a typo
_TEXT_MAX = 500
_REFERENCE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9 ._:/#-]{1,63}\Z")


def _policy_text(value: object, name: str) -> str:
    # Messages name the field and the rule, never echo the value.
    if not isinstance(value, str):
        raise InvalidInput(f"{name} is required")
    text = value.strip()
    if not 3 <= len(text) <= _TEXT_MAX:
        raise InvalidInput(f"{name} must be 3 to {_TEXT_MAX} characters")
    if not text.isprintable():
        raise InvalidInput(f"{name} must be printable text on one line")
    if contains_personal_identifier(text):
        raise InvalidInput(f"{name} must not contain personal identifiers")
    return text


def validate_reference(value: object, name: str = "reference") -> str:
    """A decision or case reference (``DNR 2026/114``): short, plain, PHI-free."""
    if not isinstance(value, str) or not _REFERENCE.match(value.strip()):
        raise InvalidInput(
            f"{name} must be 2 to 64 characters of letters, digits, spaces and . _ : / # -"
        )
    text = value.strip()
    if contains_personal_identifier(text):
        raise InvalidInput(f"{name} must not contain personal identifiers")
    return text


def validate_policy_class(value: object) -> str:
    if value not in POLICY_CLASSES:
        raise InvalidInput(f"retention class must be one of {', '.join(POLICY_CLASSES)}")
    return str(value)


def _keep_days(retention_class: str, keep_days: int | None) -> int:
    if keep_days is None:
        return RECORD_MIN_DAYS if retention_class == RECORD else QUALITY_DEFAULT_DAYS
    if isinstance(keep_days, bool) or not isinstance(keep_days, int):
        raise InvalidInput("keep days must be a whole number of days")
    if retention_class == RECORD and not RECORD_MIN_DAYS <= keep_days <= MAX_KEEP_DAYS:
        raise InvalidInput(f"record documents are kept at least ten years ({RECORD_MIN_DAYS} days)")
    if retention_class == QUALITY and not 1 <= keep_days <= QUALITY_MAX_DAYS:
        raise InvalidInput(
            f"quality recordings are kept 1 to {QUALITY_MAX_DAYS} days "
            "(longer means a record document)"
        )
    return keep_days


@dataclass(frozen=True)
class RecordingPolicy:
    """Why and how long one care unit records one retention class."""

    care_unit: str
    retention_class: str
    purpose: str
    legal_basis: str
    keep_days: int
    active: bool
    changed_at: dt.datetime
    changed_by: str

    @property
    def record_document(self) -> bool:
        """Record documents fall under the patient-data law's ten-year duty."""
        return self.retention_class == RECORD

    @classmethod
    def new(
        cls,
        *,
        care_unit: str,
        retention_class: str,
        purpose: str,
        legal_basis: str,
        keep_days: int | None,
        changed_at: dt.datetime,
        changed_by: str,
    ) -> RecordingPolicy:
        """A validated, active policy; ``InvalidInput`` names the first bad field."""
        klass = validate_policy_class(retention_class)
        return cls(
            care_unit=validate_care_unit(care_unit),
            retention_class=klass,
            purpose=_policy_text(purpose, "purpose"),
            legal_basis=_policy_text(legal_basis, "legal basis"),
            keep_days=_keep_days(klass, keep_days),
            active=True,
            changed_at=changed_at,
            changed_by=changed_by,
        )

    def keep_until(self, started_at: dt.datetime) -> dt.datetime:
        """When a call of this policy becomes due for shredding."""
        return started_at.astimezone(dt.UTC) + dt.timedelta(days=self.keep_days)


@dataclass(frozen=True)
class LegalHold:
    recording_id: uuid.UUID
    reference: str
    set_by: str
    set_at: dt.datetime


class Verdict(enum.StrEnum):
    """Whether one recording may be shredded now, and if not, why.  Stable codes."""

    ERASABLE = "erasable"
    DUE = "due"  # its retention time has passed
    LEGAL_HOLD = "legal_hold"
    RECORD_DOCUMENT = "record_document_duty"
    NOT_DUE = "not_due"


def erasure_verdict(
    *,
    retention_class: str,
    keep_until: dt.datetime | None,
    held: bool,
    now: dt.datetime,
    decision_reference: str | None = None,
) -> Verdict:
    """May a recording be erased on a data subject's request (GDPR Art. 17) now?

    A hold always wins.  A record document whose ten years have not passed
    stays unless a decision reference is given.  Anything else may go.
    """
    if held:
        return Verdict.LEGAL_HOLD
    if keep_until is not None and keep_until <= now:
        return Verdict.DUE
    if retention_class == RECORD and decision_reference is None:
        return Verdict.RECORD_DOCUMENT
    return Verdict.ERASABLE


def month_over(month: str, now: dt.datetime) -> bool:
    """True once every call of ``YYYY-MM`` (UTC) lies in the past."""
    year, mon = (int(part) for part in month.split("-"))
    start_next = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=dt.UTC)
    return start_next <= now
