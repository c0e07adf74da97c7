"""Systematic log review: rules, sampling, outcomes and the monthly report (R17, R13)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from callvault.core.access import Principal
from callvault.core.audit import Action
from callvault.core.errors import AccessDenied, InvalidInput, NotFound
from callvault.services import audit, emergency, playback, review
from callvault.services.review import Period
from callvault.services.review_rules import ReviewRules
from privacy_world import REASON, World, database_url, make_world

MARCH = Period.parse("2026-03")
NONE_SAMPLED = ReviewRules(sample_share=0.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def both(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    for url in database_url(request.param, tmp_path):
        with make_world(tmp_path, url) as w:
            yield w


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    for url in database_url("sqlite", tmp_path):
        with make_world(tmp_path, url) as w:
            yield w


def _play(w: World, who: Principal, index: int) -> None:
    playback.open_playback(w.vault, who, w.mine[index], REASON)


def _emergency(w: World, name: str, unit: str) -> Principal:
    who = w.who(name)
    grant = emergency.open_emergency(
        w.vault, who, "Caller collapsed, need the earlier call", [unit]
    )
    return dataclasses.replace(who, emergency=grant)


def _kinds(run: review.ReviewRun) -> set[str]:
    return {kind for kind, n in run.found.items() if n}


def test_review_finds_after_hours_emergency_and_other_unit_access(both):
    """R17: rule-based items, on SQLite and PostgreSQL."""
    w = both
    _play(w, w.who("nurse.a"), 0)  # Monday 10:00 in Stockholm: nothing to see
    run = review.run_review(w.vault, w.who("reviewer.r"), period=MARCH, rules=NONE_SAMPLED)
    assert _kinds(run) == set() and run.examined >= 1
    w.clock.time = dt.datetime(2026, 3, 2, 21, 30, tzinfo=dt.UTC)  # 22:30 local
    _play(w, w.who("boss.a"), 1)
    rescuer = _emergency(w, "nurse.a", "unit-b")
    _play(w, rescuer, 2)
    run = review.run_review(w.vault, w.who("reviewer.r"), period=MARCH, rules=NONE_SAMPLED)
    assert run.found["after_hours"] == 3  # two plays and the emergency grant itself
    assert run.found["emergency"] == 2
    assert run.found["other_unit"] == 1
    items = review.list_items(w.vault, w.who("reviewer.r"))
    other = [i for i in items if i.kind == "other_unit"]
    assert [(i.actor, i.recording_id) for i in other] == [("nurse.a", w.mine[2])]


def test_review_counts_plays_per_user_and_day_and_users_per_recording(world):
    w = world
    rules = ReviewRules(sample_share=0.0, max_plays_per_day=2, max_users_per_recording=1)
    boss, nurse = w.who("boss.a"), w.who("nurse.a")
    for index in (0, 1, 0):
        _play(w, boss, index)
    _play(w, nurse, 0)
    run = review.run_review(w.vault, w.who("reviewer.r"), period=MARCH, rules=rules)
    assert run.found["volume"] == 1
    assert run.found["many_users"] == 1


def test_sampling_is_a_repeatable_share_and_a_second_run_adds_nothing(world):
    w = world
    for index in (0, 1):
        _play(w, w.who("boss.a"), index)
    everything = ReviewRules(sample_share=1.0)
    first = review.run_review(w.vault, w.who("privacy.p"), period=MARCH, rules=everything)
    assert first.found["sample"] == first.examined >= 2 and first.added >= 2
    again = review.run_review(w.vault, w.who("privacy.p"), period=MARCH, rules=everything)
    assert again.added == 0
    last = audit.tail(w.vault, w.who("privacy.p"), 2)[0].event
    assert last.action == Action.REVIEW_RUN and last.detail["added"] == 0


def test_items_are_resolved_with_outcome_and_comment_and_reported(both):
    w = both
    w.clock.time = dt.datetime(2026, 3, 7, 12, 0, tzinfo=dt.UTC)  # a Saturday
    _play(w, w.who("boss.a"), 0)
    review.run_review(w.vault, w.who("reviewer.r"), period=MARCH, rules=NONE_SAMPLED)
    (item,) = review.list_items(w.vault, w.who("reviewer.r"))
    review.resolve(w.vault, w.who("reviewer.r"), item.id, "incident", "Not on duty that day")
    assert review.list_items(w.vault, w.who("reviewer.r")) == []
    (done,) = review.list_items(w.vault, w.who("reviewer.r"), open_only=False)
    assert (done.outcome, done.comment, done.resolved_by) == (
        "incident",
        "Not on duty that day",
        "reviewer.r",
    )
    monthly = review.report(w.vault, w.who("privacy.p"), period=MARCH)
    assert monthly.by_kind == {"after_hours": 1}
    assert monthly.by_outcome == {"incident": 1} and monthly.open_items == 0
    assert [i.id for i in monthly.incidents] == [item.id]
    with pytest.raises(NotFound):  # already resolved
        review.resolve(w.vault, w.who("reviewer.r"), item.id, "ok")


def test_bad_outcomes_comments_and_periods_are_refused_and_change_nothing(world):
    w = world
    w.clock.time = dt.datetime(2026, 3, 7, 12, 0, tzinfo=dt.UTC)
    _play(w, w.who("boss.a"), 0)
    review.run_review(w.vault, w.who("reviewer.r"), period=MARCH, rules=NONE_SAMPLED)
    (item,) = review.list_items(w.vault, w.who("reviewer.r"))
    with pytest.raises(InvalidInput):
        review.resolve(w.vault, w.who("reviewer.r"), item.id, "fine")
    with pytest.raises(InvalidInput):
        review.resolve(w.vault, w.who("reviewer.r"), item.id, "ok", "rang 070-174 06 05")
    with pytest.raises(NotFound):
        review.resolve(w.vault, w.who("reviewer.r"), 99999, "ok")
    assert review.list_items(w.vault, w.who("reviewer.r"))[0].resolved_at is None
    for text in ("2026-13", "last month", "2026-03-10..2026-01-01"):
        with pytest.raises(InvalidInput):
            Period.parse(text)
    with pytest.raises(InvalidInput):
        ReviewRules(sample_share=1.5)


@pytest.mark.parametrize("name", ["nurse.a", "boss.a", "admin.x"])
def test_only_log_reviewers_and_privacy_officers_review(world, name):
    who = world.who(name)
    with pytest.raises(AccessDenied):
        review.run_review(world.vault, who, period=MARCH)
    with pytest.raises(AccessDenied):
        review.list_items(world.vault, who)
    with pytest.raises(AccessDenied):
        review.resolve(world.vault, who, 1, "ok")
    with pytest.raises(AccessDenied):
        review.report(world.vault, who, period=MARCH)
    with pytest.raises(AccessDenied):  # refused before the input is even read
        review.run_review(world.vault, who, period="garbage", rules={"sample_share": 7})


def test_periods_parse_months_days_and_ranges():
    assert Period.parse("2026-12").end == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert Period.parse("2026-03-02").label == "2026-03-02..2026-03-02"
    assert Period.parse("2026-03-01..2026-03-15").last_day == dt.date(2026, 3, 15)
