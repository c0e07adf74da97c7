"""Reading call details out of legacy file paths: patterns, presets and unit maps.

A pattern is a regular expression matched against the whole path of a file
relative to the import source (``/``-separated).  Its named groups say what
each part of the name is: ``caller``, ``personnummer``, ``started_at``,
``care_unit``, ``agent``, ``call_id`` and ``direction``; other names are
refused.  ``started_at`` is read by its digits (``20190218_102200``,
``2019-02-18-10-22-00`` and ``201902181022`` all work) in the archive's
local time zone, unless a ``strptime`` format is given.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from callvault.core.errors import CallvaultError, InvalidInput
from callvault.services.details import CallDetails

GROUPS = frozenset(
    {"caller", "personnummer", "started_at", "care_unit", "agent", "call_id", "direction"}
)
_AUDIO = r"\.(?:wav|WAV|mp3|MP3)"
_STAMP = r"\d{8}[-_T]?\d{4,6}"

#: Layouts seen on recorders and exposed archives.
PRESETS: Mapping[str, str] = {
    # customer/year/date/number_datetime: the 1177 recording NAS.
    "1177": (
        r"(?P<care_unit>[^/]+)/\d{4}/[^/]+/(?P<caller>\+?\d{5,15})_"
        rf"(?P<started_at>{_STAMP}){_AUDIO}"
    ),
    # Oreka/OrkAudio: YYYY/MM/DD/HH/YYYYMMDD_HHMMSS_<id>.
    "oreka": (
        r"\d{4}/\d{2}/\d{2}/\d{2}/(?P<started_at>\d{8}_\d{6})_(?P<call_id>[A-Za-z0-9-]{1,64})"
        rf"{_AUDIO}"
    ),
    # FreeSWITCH / Asterisk MixMonitor: <number>_<strftime>, in any folder.
    "freeswitch": rf"(?:[^/]+/)*(?P<caller>\+?\d{{5,15}})_(?P<started_at>{_STAMP}){_AUDIO}",
    "asterisk": rf"(?:[^/]+/)*(?P<caller>\+?\d{{5,15}})[-_](?P<started_at>{_STAMP}){_AUDIO}",
}

#: Whether a care unit has an active recording policy for a retention class
#: (R19); a file for a unit without one is rejected by name, before any audio
#: is read.
PolicyLookup = Callable[[str, str], bool]


class Rejected(Exception):
    """A file the import will not take; ``reason`` is a short stable code.

    Its text never carries any part of the file's name.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PathPattern:
    """A compiled pattern plus what is needed to turn its groups into call details."""

    regex: re.Pattern[str]
    timezone: dt.tzinfo
    time_format: str | None = None
    default_care_unit: str | None = None
    unit_map: Mapping[str, str] = field(default_factory=dict)
    retention_class: str = "record"
    policy: PolicyLookup | None = None

    @classmethod
    def build(
        cls,
        *,
        pattern: str | None = None,
        preset: str | None = None,
        timezone: str = "Europe/Stockholm",
        time_format: str | None = None,
        default_care_unit: str | None = None,
        unit_map: Mapping[str, str] | None = None,
        retention_class: str = "record",
        policy: PolicyLookup | None = None,
    ) -> PathPattern:
        if (pattern is None) == (preset is None):
            raise InvalidInput("give exactly one of a pattern or a preset")
        if preset is not None and preset not in PRESETS:
            raise InvalidInput(f"unknown preset; choose from {', '.join(sorted(PRESETS))}")
        text = PRESETS[preset] if preset is not None else str(pattern)
        try:
            regex = re.compile(text)
        except re.error:
            raise InvalidInput("the pattern is not a valid regular expression") from None
        unknown = set(regex.groupindex) - GROUPS
        if unknown:
            raise InvalidInput(
                f"unknown group {sorted(unknown)[0]!r}; use {', '.join(sorted(GROUPS))}"
            )
        if "started_at" not in regex.groupindex:
            raise InvalidInput("the pattern needs a started_at group")
        if "care_unit" not in regex.groupindex and not default_care_unit:
            raise InvalidInput("the pattern has no care_unit group: give --care-unit")
        try:
            zone = zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InvalidInput("unknown time zone") from None
        return cls(
            regex,
            zone,
            time_format,
            default_care_unit,
            dict(unit_map or {}),
            retention_class,
            policy,
        )

    def details(self, relative: str, today: dt.date) -> CallDetails:
        """The call details in ``relative``'s name, or ``Rejected`` saying why not."""
        match = self.regex.fullmatch(relative)
        if match is None:
            raise Rejected("no_match", "the name does not match the pattern")
        groups = {k: v for k, v in match.groupdict().items() if v}
        unit = self._care_unit(groups.get("care_unit"))
        started = self._started_at(groups.get("started_at", ""))
        try:
            details = CallDetails.parse(
                care_unit=unit,
                started_at=started,
                today=today,
                caller=groups.get("caller"),
                personnummer=groups.get("personnummer"),
                agent=groups.get("agent"),
                call_id=groups.get("call_id"),
                retention_class=self.retention_class,
            )
        except CallvaultError as exc:
            # The error's text names the field, never the value.
            raise Rejected(exc.code, exc.message) from None
        if self.policy is not None and not self.policy(details.care_unit, self.retention_class):
            raise Rejected("no_recording_policy", "the care unit has no active recording policy")
        return details

    def _care_unit(self, folder: str | None) -> str:
        if folder is None:
            assert self.default_care_unit is not None  # checked in build
            return self.default_care_unit
        if self.unit_map:
            unit = self.unit_map.get(folder)
            if unit is None:
                raise Rejected("unmapped_unit", "the folder is not in the care-unit map")
            return unit
        return folder

    def _started_at(self, text: str) -> dt.datetime:
        if self.time_format:
            try:
                naive = dt.datetime.strptime(text, self.time_format)
            except ValueError:
                raise Rejected("bad_time", "the time does not match the time format") from None
        else:
            naive = _from_digits(re.sub(r"\D", "", text))
        if naive.tzinfo is None:
            naive = naive.replace(tzinfo=self.timezone)
        return naive


def _from_digits(digits: str) -> dt.datetime:
    formats = {14: "%Y%m%d%H%M%S", 12: "%Y%m%d%H%M", 8: "%Y%m%d"}
    try:
        return dt.datetime.strptime(digits, formats[len(digits)])
    except (KeyError, ValueError):
        raise Rejected("bad_time", "the time in the name is not a valid date and time") from None


def parse_unit_map(entries: list[str]) -> dict[str, str]:
    """``FOLDER=UNIT`` pairs (from options or a file's lines) as a mapping."""
    mapping: dict[str, str] = {}
    for entry in entries:
        line = entry.strip()
        if not line or line.startswith("#"):
            continue
        folder, sep, unit = line.partition("=")
        if not sep or not folder.strip() or not unit.strip():
            raise InvalidInput("a care-unit map entry must be FOLDER=UNIT")
        mapping[folder.strip()] = unit.strip()
    return mapping
