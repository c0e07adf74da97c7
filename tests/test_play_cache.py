"""The one-second memory of passed playback checks: what it keeps, and for how long."""

from __future__ import annotations

import datetime as dt
import uuid

from callvault.core.access import Principal, Role
from callvault.services.play_cache import HOLD, MAX_ENTRIES, PassedCheck, PlayCache
from callvault.testing.metadata_support import recording

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
NURSE = Principal("nurse.a", Role.CALL_HANDLER, care_units=frozenset({"unit-a"}), session="s" * 16)


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def check() -> PassedCheck:
    return PassedCheck(NURSE, recording(1), b"k" * 32, 160_300)


def test_a_check_is_recalled_for_its_session_and_recording_only() -> None:
    cache, passed = PlayCache(Ticks()), check()
    cache.remember(b"session-1", passed, T0)
    assert cache.recall(b"session-1", passed.row.id, T0) is passed
    assert cache.recall(b"session-2", passed.row.id, T0) is None
    assert cache.recall(b"session-1", uuid.uuid4(), T0) is None


def test_a_check_is_forgotten_after_one_second_of_real_time() -> None:
    ticks = Ticks()
    cache, passed = PlayCache(ticks), check()
    cache.remember(b"s", passed, T0)
    ticks.now += HOLD.total_seconds() - 0.01
    assert cache.recall(b"s", passed.row.id, T0) is passed
    ticks.now += 0.02
    assert cache.recall(b"s", passed.row.id, T0) is None
    assert len(cache) == 0


def test_a_check_is_forgotten_when_the_vault_clock_moves_past_the_second_or_back() -> None:
    cache, passed = PlayCache(Ticks()), check()
    cache.remember(b"s", passed, T0)
    assert cache.recall(b"s", passed.row.id, T0 + HOLD) is None
    cache.remember(b"s", passed, T0)
    assert cache.recall(b"s", passed.row.id, T0 - dt.timedelta(seconds=1)) is None


def test_forgetting_a_session_keeps_the_others() -> None:
    cache, mine, theirs = PlayCache(Ticks()), check(), check()
    cache.remember(b"mine", mine, T0)
    cache.remember(b"theirs", theirs, T0)
    cache.forget_session(b"mine")
    assert cache.recall(b"mine", mine.row.id, T0) is None
    assert cache.recall(b"theirs", theirs.row.id, T0) is theirs
    cache.clear()
    assert cache.recall(b"theirs", theirs.row.id, T0) is None


def test_the_cache_never_holds_more_than_its_bound() -> None:
    cache = PlayCache(Ticks())
    for _ in range(MAX_ENTRIES + 10):
        cache.remember(b"s", check(), T0)
    assert len(cache) <= MAX_ENTRIES
