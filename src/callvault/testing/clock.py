"""A clock tests set and advance by hand (the vault's Clock port)."""

from __future__ import annotations

import datetime as dt


class FakeClock:
    """Always-aware UTC time that moves only when a test says so."""

    def __init__(self, now: dt.datetime) -> None:
        self.time = now

    def now(self) -> dt.datetime:
        return self.time

    def advance(self, **delta: float) -> None:
        self.time += dt.timedelta(**delta)
