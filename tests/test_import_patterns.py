"""Names to call details, masking and the journal: the import's pure parts (R3, R26, R27)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from callvault.core.errors import InvalidInput
from callvault.services.legacy_import import PathPattern, mask_path, parse_unit_map
from callvault.services.legacy_import.journal import (
    DONE,
    REJECTED,
    Entry,
    Journal,
    journal_path,
    journal_secret,
    keyed,
    read_state,
)
from callvault.services.legacy_import.patterns import Rejected

TODAY = dt.date(2026, 1, 1)


def test_1177_preset_reads_unit_caller_and_local_time():
    pattern = PathPattern.build(preset="1177", unit_map={"Kund A": "1177-sthlm"})
    d = pattern.details("Kund A/2019/2019-02-18/0701740605_20190218_102200.wav", TODAY)
    assert d.care_unit == "1177-sthlm"
    assert d.caller is not None and d.caller.value == "+46701740605"
    # Legacy names are in Swedish local time (CET in February).
    assert d.started_at == dt.datetime(2019, 2, 18, 9, 22, tzinfo=dt.UTC)


def test_oreka_preset_reads_time_and_call_id_and_uses_the_default_unit():
    pattern = PathPattern.build(preset="oreka", default_care_unit="1177-gbg")
    d = pattern.details("2019/07/01/14/20190701_140501_ab12-cd.mp3", TODAY)
    assert (d.care_unit, d.call_id) == ("1177-gbg", "ab12-cd")
    assert d.started_at == dt.datetime(2019, 7, 1, 12, 5, 1, tzinfo=dt.UTC)  # CEST


@pytest.mark.parametrize(
    "preset, name",
    [
        ("freeswitch", "recordings/+46701740605_20190218-102200.wav"),
        ("asterisk", "monitor/0701740605-20190218-102200.WAV"),
    ],
)
def test_recorder_presets_read_number_and_time(preset, name):
    d = PathPattern.build(preset=preset, default_care_unit="u1").details(name, TODAY)
    assert d.caller is not None and d.caller.value == "+46701740605"
    assert d.started_at.astimezone(dt.UTC).hour == 9


def test_custom_pattern_with_personnummer_agent_and_time_format():
    pattern = PathPattern.build(
        pattern=r"(?P<care_unit>\w+)/(?P<agent>[a-z]+)/(?P<personnummer>\d{8}-\d{4})"
        r"@(?P<started_at>.+)\.wav",
        time_format="%d.%m.%Y %H.%M",
        timezone="UTC",
    )
    d = pattern.details("akuten/nurse/19121212-1212@18.02.2019 10.22.wav", TODAY)
    assert d.personnummer is not None and d.personnummer.value == "191212121212"
    assert (d.care_unit, d.agent) == ("akuten", "nurse")
    assert d.started_at == dt.datetime(2019, 2, 18, 10, 22, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("Kund A/2019/x/0701740605_20190218_102200.txt", "no_match"),
        ("Kund B/2019/x/0701740605_20190218_102200.wav", "unmapped_unit"),
        ("Kund A/2019/x/0701740605_20191318_102200.wav", "bad_time"),
        ("Kund A/2019/x/12345_20190218_102200.wav", "invalid_identifier"),
    ],
)
def test_names_that_cannot_be_read_are_rejected_without_echoing_them(name, reason):
    pattern = PathPattern.build(preset="1177", unit_map={"Kund A": "1177-sthlm"})
    with pytest.raises(Rejected) as caught:
        pattern.details(name, TODAY)
    assert caught.value.reason == reason
    assert not re.search(r"\d{5}", caught.value.message)


def test_unit_without_an_active_policy_is_rejected_before_any_audio_is_read():
    """R19: the hook asks whether (unit, class) has an active policy."""
    asked = []

    def policy(unit: str, klass: str) -> bool:
        asked.append((unit, klass))
        return False

    pattern = PathPattern.build(preset="oreka", default_care_unit="u1", policy=policy)
    with pytest.raises(Rejected) as caught:
        pattern.details("2019/07/01/14/20190701_140501_x.wav", TODAY)
    assert caught.value.reason == "no_recording_policy" and asked == [("u1", "record")]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one"),
        ({"preset": "nope"}, "unknown preset"),
        ({"pattern": "(?P<who>x)"}, "unknown group"),
        ({"pattern": "(?P<care_unit>x)"}, "started_at"),
        ({"preset": "oreka"}, "--care-unit"),
        ({"preset": "1177", "timezone": "Mars/Olympus"}, "time zone"),
    ],
)
def test_bad_patterns_are_refused_clearly(kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        PathPattern.build(**kwargs)


def test_unit_map_lines_parse_and_bad_lines_are_refused():
    assert parse_unit_map(["# comment", "", "Kund A = 1177-sthlm"]) == {"Kund A": "1177-sthlm"}
    with pytest.raises(InvalidInput):
        parse_unit_map(["no equals sign"])


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "Kund A/2019/2019-02-18/0701740605_20190218_102200.wav",
            "Kund A/2019/2019-02-18/##########_########_###….wav",
        ),
        ("2019/02/18/10/19121212-1212.mp3", "2019/02/18/10/########-####.mp3"),
        ("a/b\nc å.wav", "a/b?c ?.wav"),
    ],
)
def test_masked_names_hide_every_identifier_digit(name, expected):
    """R3: reports name files only this way."""
    assert mask_path(name) == expected


def test_masked_very_long_names_are_cut_and_keep_their_extension():
    assert mask_path("x" * 300 + ".wav") == "x" * 23 + "….wav"


def test_journal_keeps_the_last_entry_per_file_and_survives_a_torn_line(tmp_path):
    """R28: a kill mid-write leaves a torn last line, which reading skips."""
    secret = journal_secret(b"k" * 32)
    path = journal_path(tmp_path, secret, "/archive")
    key = keyed(secret, "path", "Kund A/0701740605_20190218_102200.wav")
    with Journal(path) as journal:
        journal.append(Entry(key, REJECTED, "rejected", "unreadable"))
        journal.append(Entry(key, DONE, "ingested", size=10, recording_id="r1"))
    with path.open("ab") as torn:
        torn.write(b'{"k":"' + key.encode() + b'","s":"rej')
    state = read_state(path)
    assert state[key].stage == DONE and state[key].recording_id == "r1"
    assert b"0701740605" not in path.read_bytes() and "archive" not in path.name
    assert path.stat().st_mode & 0o077 == 0
