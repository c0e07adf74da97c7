"""Counting failed sign-ins and deciding how long to hold the next attempt back.

Two counters per attempt, both in the ``throttles`` table under keyed hashes
(HMAC with a key outside the database, ``services.credentials``): one for
the account name as typed, one for the client address.  Addresses are
personal data and never stored in clear; user names that do not exist are
counted exactly like real ones, so a lockout says nothing about which
accounts exist.

- account: 5 failures within 24 hours lock it for 15 minutes; every further
  failure locks it again.  A completed sign-in clears the count.
- address: 10 failures within an hour are free; then each failure holds the
  address back 1 s, 2 s, 4 s, ... up to 15 minutes.  Success does not clear
  it, so one good account cannot launder guesses at others.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Final

from callvault.core.ports import AccountsRepo
from callvault.core.rows import ThrottleRow
from callvault.services import credentials
from callvault.services.context import Vault


@dataclass(frozen=True)
class ThrottlePolicy:
    """``free`` failures within ``window`` cost nothing; failure n > free blocks
    for ``min(base * 2**(n - free - 1), cap)``."""

    free: int
    base: dt.timedelta
    cap: dt.timedelta
    window: dt.timedelta


ACCOUNT_POLICY: Final = ThrottlePolicy(
    free=4,
    base=dt.timedelta(minutes=15),
    cap=dt.timedelta(minutes=15),
    window=dt.timedelta(hours=24),
)
ADDRESS_POLICY: Final = ThrottlePolicy(
    free=10,
    base=dt.timedelta(seconds=1),
    cap=dt.timedelta(minutes=15),
    window=dt.timedelta(hours=1),
)


def after_failure(
    row: ThrottleRow | None, key_hash: bytes, policy: ThrottlePolicy, now: dt.datetime
) -> ThrottleRow:
    """The throttle row once one more failure is counted."""
    if row is None or now - row.window_start > policy.window:
        failures, start = 1, now
    else:
        failures, start = row.failures + 1, row.window_start
    blocked = None
    if failures > policy.free:
        delay = policy.base * 2 ** min(failures - policy.free - 1, 32)
        blocked = now + min(delay, policy.cap)
    return ThrottleRow(key_hash, failures, start, blocked)


def _retry_after(rows: list[ThrottleRow | None], now: dt.datetime) -> int:
    """Whole seconds until every row lets attempts through again; 0 if none blocks."""
    waits = [
        (r.blocked_until - now).total_seconds()
        for r in rows
        if r is not None and r.blocked_until is not None and r.blocked_until > now
    ]
    return math.ceil(max(waits)) if waits else 0


@dataclass(frozen=True)
class ThrottleKeys:
    account: bytes
    address: bytes

    @classmethod
    def of(cls, vault: Vault, username: str, client: str | None) -> ThrottleKeys:
        return cls(
            credentials.throttle_key(vault, "account", username),
            credentials.throttle_key(vault, "address", client or "-"),
        )

    def retry_after(self, repo: AccountsRepo, now: dt.datetime) -> int:
        return _retry_after([repo.throttle(self.account), repo.throttle(self.address)], now)

    def fail(self, repo: AccountsRepo, now: dt.datetime) -> None:
        for key, policy in ((self.account, ACCOUNT_POLICY), (self.address, ADDRESS_POLICY)):
            repo.put_throttle(after_failure(repo.throttle(key), key, policy, now))
