"""Breach report for an Art. 33 notice: what a window or credential reached (R22)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from callvault.core.audit import Action
from callvault.core.errors import AccessDenied, InvalidInput
from callvault.services import audit, breach, playback, recordings
from callvault.services.search import SearchQuery
from privacy_world import CALLER, CALLER_E164, REASON, T0, World, database_url, make_world


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    for url in database_url(request.param, tmp_path):
        with make_world(tmp_path, url) as w:
            yield w


def _incident(w: World) -> None:
    """boss.a plays two of CALLER's recordings and lists them; boss.b views the other."""
    w.clock.time = T0 + dt.timedelta(hours=2)
    boss = w.who("boss.a")
    recordings.search(w.vault, boss, SearchQuery(caller=CALLER))
    playback.open_playback(w.vault, boss, w.mine[0], REASON)
    playback.open_playback(w.vault, boss, w.other, REASON)
    w.clock.time = T0 + dt.timedelta(hours=5)
    recordings.show(w.vault, w.who("boss.b"), w.mine[2])


def test_report_for_a_user_counts_recordings_and_distinct_callers(world):
    _incident(world)
    report = breach.breach_report(world.vault, world.who("privacy.p"), actor="boss.a")
    assert {r.recording_id for r in report.recordings} == {*world.mine[:2], world.other}
    assert report.distinct_callers == 2 and report.without_caller == 0
    assert all(r.caller is None for r in report.recordings)
    played = next(r for r in report.recordings if r.recording_id == world.mine[0])
    assert played.how == {"recording:search": 1, "recording:play": 1}
    last = audit.tail(world.vault, world.who("privacy.p"), 2)[0].event
    assert last.action == Action.BREACH_REPORT and last.detail["callers"] == 2


def test_report_for_a_time_window_and_with_the_callers_numbers(world):
    _incident(world)
    report = breach.breach_report(
        world.vault,
        world.who("privacy.p"),
        time_from=T0 + dt.timedelta(hours=4),
        time_to=T0 + dt.timedelta(hours=6),
        show_callers=True,
    )
    (only,) = report.recordings
    assert only.recording_id == world.mine[2] and only.caller == CALLER_E164
    assert report.distinct_callers == 1 and report.with_identifiers


@pytest.mark.parametrize("name", ["boss.a", "nurse.a", "reviewer.r", "admin.x"])
def test_nobody_but_the_privacy_officer_gets_a_report_or_the_numbers(world, name):
    _incident(world)
    for show in (False, True):
        with pytest.raises(AccessDenied):
            breach.breach_report(world.vault, world.who(name), actor="boss.a", show_callers=show)
    last = audit.tail(world.vault, world.who("privacy.p"), 2)[0].event
    assert last.action == Action.ACCESS_DENIED
    with pytest.raises(AccessDenied):  # refused before the input is even read
        breach.breach_report(world.vault, world.who(name), time_from="not a time")


def test_a_report_needs_a_window_or_a_credential_and_a_sane_window(world):
    officer = world.who("privacy.p")
    with pytest.raises(InvalidInput):
        breach.breach_report(world.vault, officer)
    with pytest.raises(InvalidInput):
        breach.breach_report(world.vault, officer, time_from=T0, time_to=T0)
    with pytest.raises(InvalidInput):
        breach.breach_report(world.vault, officer, time_from=T0.replace(tzinfo=None))
    with pytest.raises(InvalidInput):
        breach.breach_report(world.vault, officer, time_from="2026-03-02T10:00:00")


def test_a_token_is_reported_like_a_user(world):
    _incident(world)
    report = breach.breach_report(world.vault, world.who("privacy.p"), actor="token:recorder-a")
    assert report.recordings == [] and report.accesses == 0
    assert dataclasses.asdict(report)["distinct_callers"] == 0
