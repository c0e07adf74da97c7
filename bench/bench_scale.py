"""Search at the size of 1177's archive, on SQLite and on PostgreSQL.

Run: ``.venv/bin/python -m bench.bench_scale [--rows N | --full] [--plans] [--only sqlite]``

* Data: the metadata of ``--rows`` recordings (default 270,000, a tenth of
  the archive; ``--full`` is 2.7 million), written straight into the
  ``recordings`` table of a fresh vault on each database, as ingest would
  write them: blind indexes from the vault's index key through
  ``core.identifiers``, sealed fields as random bytes of their real sizes,
  one real bucket KEK per call month.  Calls spread over six years, weighted
  by hour of day and growing year on year; callers (57,000 at full size,
  scaled with ``--rows`` so a caller has as many calls as in the archive)
  call with a log-normal skew, so a few call thousands of times; 300 care
  units of skewed size; 2,000 agents; durations log-normal with the
  archive's mean (170,000 hours over 2.7 million calls: about 3.8 min).
  Secondary indexes are dropped for the load and rebuilt from their own
  DDL; PostgreSQL then gets the VACUUM ANALYZE autovacuum would run.
* Ours: ``services.search.search_page`` as a privacy officer (whole vault)
  or a supervisor (own unit), 50 results a page: identifier normalisation,
  blind index, the query, the row-by-row access check, the audit entry, the
  search hits and the durable commit.  Kinds (``KINDS``): caller;
  personnummer; caller in own unit; a one-week date page; the next page of
  a one-year range (the sealed keyset cursor); a one-month page of one unit;
  and, without targets, the busiest caller and a number that never called
  (the fixed cost of a search).  Query values come from rows drawn at
  random, so often-calling callers are looked up as often as they call.
* Peer: the very SELECT the service issued (captured from the engine, with
  its parameters) run on a raw sqlite3 / psycopg connection; the ratio is
  the service's overhead.  Results are compared.  Also timed, as a
  diagnostic: the same SELECT without the sealed waveform column.
* Targets: caller lookups p99 <= 10 ms, date pages p99 <= 50 ms.
* ``--plans``: also writes the query plans (SQLite ``EXPLAIN QUERY PLAN``,
  PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)``) of each kind to
  ``<results>/scale_plans.md`` (docs/scale.md quotes them).
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import math
import os
import random
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql
from sqlalchemy import event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Engine

from bench.bench_search import MEDIA, SEALED_CALL_ID, SEALED_ID, WRAPPED_DEK
from bench.common import (
    Row,
    bench_principal,
    fake_mobile,
    fake_personnummer,
    percentile,
    report,
    results_dir,
    row,
    target_row,
)
from callvault.adapters.audio.peaks import PEAK_BUCKETS
from callvault.adapters.db.schema import recordings
from callvault.adapters.db.store import SqlMetadataStore
from callvault.core import format as cv1
from callvault.core import identifiers as ids
from callvault.core.access import Principal
from callvault.core.recordings import ACTIVE
from callvault.services import keyring
from callvault.services.context import Vault
from callvault.services.search import SearchQuery, search_page

FULL_ROWS, FULL_CALLERS, DEFAULT_ROWS = 2_700_000, 57_000, 270_000
ARCHIVE_HOURS = 170_000
UNITS, AGENTS, YEARS, PAGE = 300, 2000, 6, 50
FIRST_DAY = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
CHUNK, WARMUP = 10_000, 20
CALLER_P99_MS, PAGE_P99_MS = 10.0, 50.0
MEAN_CALL_S = ARCHIVE_HOURS * 3600 / FULL_ROWS
# Calls per hour of the day (Swedish advice line: busy mornings, quiet nights), UTC-agnostic.
HOURLY = [1, 1, 1, 1, 1, 2, 4, 8, 10, 10, 9, 8, 7, 7, 7, 6, 6, 6, 6, 5, 5, 4, 3, 2]
COLUMNS = [c.name for c in recordings.columns]
# Sealed waveform: a (min, max) byte pair per bucket, plus the GCM nonce and tag.
SEALED_PEAKS = 2 * PEAK_BUCKETS + 12 + 16


# --- population -----------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """A caller's number and the personnummer their calls are mostly about."""

    typed: str
    bidx: bytes
    pnr: str
    pnr_bidx: bytes


@dataclass(frozen=True)
class Target:
    """Values of one existing active row: what a query for it must find."""

    caller: Caller
    care_unit: str
    started_at: dt.datetime
    with_pnr: bool = False


class Population:
    """Callers, units and agents with skewed weights; rows drawn from them reproducibly."""

    def __init__(self, seed: int, index_key: bytes, rows: int, callers: int) -> None:
        rng = random.Random(seed)
        self.seed, self.rows, self.key = seed, rows, index_key
        self.callers = [self._caller(rng, index_key) for _ in range(callers)]
        # Log-normal call rates: most callers call a few times, a few call thousands of times.
        self.caller_cum = _cumulative([rng.lognormvariate(0, 1.5) for _ in range(callers)])
        self.units = [f"unit-{i:03d}" for i in range(UNITS)]
        self.unit_cum = _cumulative([1 / (i + 5) for i in range(UNITS)])
        self.peaks = [rng.randbytes(SEALED_PEAKS) for _ in range(64)]
        self.targets: list[Target] = []
        self.counts: list[int] = []

    def targets_for(self, who: str) -> list[Target]:
        """Query values: sampled rows, the busiest caller, or a number never seen."""
        if who == "rows":
            return self.targets
        if who == "rows with pnr":
            return [t for t in self.targets if t.with_pnr]
        if who == "busiest":
            busiest = self.callers[self.counts.index(max(self.counts))]
            return [Target(busiest, t.care_unit, t.started_at) for t in self.targets[:1]]
        known, rng = {c.typed for c in self.callers}, random.Random(self.seed + 2)
        stranger = self._caller(rng, self.key)
        while stranger.typed in known:
            stranger = self._caller(rng, self.key)
        return [Target(stranger, t.care_unit, t.started_at) for t in self.targets[:1]]

    @staticmethod
    def _caller(rng: random.Random, key: bytes) -> Caller:
        typed, pnr = fake_mobile(rng), fake_personnummer(rng)
        person = ids.PersonalNumber.parse(pnr, today=dt.date.today()).value
        return Caller(
            typed,
            ids.blind_index(key, "phone", ids.PhoneNumber.parse(typed).value),
            pnr,
            ids.blind_index(key, "pnr", person),
        )

    def chunks(self, buckets: dict[str, int], keep: int) -> Iterator[list[dict[str, Any]]]:
        """Rows as native Python values, in chunks; reservoir-samples ``keep`` targets."""
        rng = random.Random(self.seed + 1)
        rb, span = rng.randbytes, YEARS * 365
        self.targets, seen = [], 0
        self.counts = [0] * len(self.callers)
        for start in range(0, self.rows, CHUNK):
            chunk = []
            for _ in range(min(CHUNK, self.rows - start)):
                # Year-on-year growth: the day's density rises linearly by half over six years.
                day = min(span - 1, int(span * 2 * (math.sqrt(1 + 1.25 * rng.random()) - 1)))
                hour = rng.choices(range(24), HOURLY)[0]
                started = FIRST_DAY + dt.timedelta(
                    days=day,
                    hours=hour,
                    seconds=rng.randrange(3600),
                    microseconds=rng.randrange(10**6),
                )
                who = _pick(rng, self.caller_cum)
                caller, self.counts[who] = self.callers[who], self.counts[who] + 1
                unit = self.units[_pick(rng, self.unit_cum)]
                media, container, codec = rng.choice(MEDIA)
                ms = int(
                    1000 * min(3600, max(10, rng.lognormvariate(math.log(MEAN_CALL_S) - 0.18, 0.6)))
                )
                size = ms * (16 if codec == "pcm_s16le" else 8) + 44
                state = ACTIVE if rng.random() > 0.001 else "pending"
                has_pnr = rng.random() < 0.6
                chunk.append(
                    {
                        "id": uuid.UUID(bytes=rb(16), version=4),
                        "state": state,
                        "object_name": rb(16).hex(),
                        "fingerprint": rb(16),
                        "bucket_kek_id": buckets[started.strftime("%Y-%m")],
                        "dek_id": rb(16),
                        "wrapped_dek": rb(WRAPPED_DEK),
                        "commitment": rb(32),
                        "media_type": media,
                        "container": container,
                        "codec": codec,
                        "sample_rate": 8000,
                        "channels": 1,
                        "frames": ms * 8,
                        "duration_ms": ms,
                        "plaintext_size": size,
                        "ciphertext_size": cv1.ciphertext_size(size),
                        "ciphertext_sha256": rb(32),
                        "care_unit": unit,
                        "agent": f"agent-{rng.randrange(AGENTS):04d}",
                        "started_at": started,
                        "retention_class": "record",
                        "created_at": started + dt.timedelta(milliseconds=ms + 60_000),
                        "caller_bidx": caller.bidx,
                        "pnr_bidx": caller.pnr_bidx if has_pnr else None,
                        "call_id_bidx": rb(16),
                        "enc_caller": rb(SEALED_ID),
                        "enc_pnr": rb(SEALED_ID) if has_pnr else None,
                        "enc_call_id": rb(SEALED_CALL_ID),
                        "enc_peaks": rng.choice(self.peaks),
                        "keep_until": started + dt.timedelta(days=365 * 10),
                    }
                )
                if state != ACTIVE:
                    continue
                seen += 1
                target = Target(caller, unit, started, has_pnr)
                if len(self.targets) < keep:
                    self.targets.append(target)
                elif (j := rng.randrange(seen)) < keep:
                    self.targets[j] = target
            yield chunk


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _pick(rng: random.Random, cum: list[float]) -> int:
    return min(len(cum) - 1, bisect.bisect(cum, rng.random() * cum[-1]))


# --- vaults and bulk loads ---------------------------------------------------------------


def make_keys(directory: Path) -> Any:
    """One key file for both vaults, so both hold the same blind indexes."""
    from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return KeyfileProvider.create(
        directory / "callvault.key", b"benchmark passphrase", kdf_params=KdfParams(1, 1024, 1)
    )


def open_vault(url: str, keys: Any, blobs: Path, *, initialise: bool) -> Vault:
    """A vault on ``url`` (SQLite or PostgreSQL), initialised on first open."""
    from callvault.adapters.audio import analyse
    from callvault.adapters.blobstore import open_blobstore
    from callvault.core.ports import SystemClock
    from callvault.services import vault as vault_service

    blobs.mkdir(mode=0o700, parents=True, exist_ok=True)
    vault = Vault(
        store=SqlMetadataStore.open(url),
        blobs=open_blobstore(blobs.as_uri()),
        keys=keys,
        clock=SystemClock(),
        probe=analyse,
        origin=vault_service.origin_for(os.urandom(16).hex()),
    )
    if initialise:
        vault_service.initialise(vault, bench_principal())
    return vault


def make_buckets(vault: Vault) -> dict[str, int]:
    """One real bucket KEK per call month, so every row's foreign key holds."""
    out = {}
    for m in range(12 * YEARS):
        month = f"{FIRST_DAY.year + m // 12}-{m % 12 + 1:02d}"
        out[month] = keyring.current_bucket(vault, month, "record").id
    return out


def check_columns(sample: dict[str, Any]) -> None:
    """Fail loudly if the schema gained a required column this generator does not fill."""
    missing = [c.name for c in recordings.columns if not c.nullable and c.name not in sample]
    if missing:
        raise SystemExit(f"bench_scale does not fill recordings columns: {missing}")


def _sqlite_binders() -> dict[str, Callable[[Any], Any]]:
    dialect = sqlite_dialect.dialect()
    out = {}
    for name in ("id", "started_at", "created_at", "keep_until"):
        process = recordings.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is None:
            raise SystemExit(f"no SQLite bind conversion for recordings.{name}")
        out[name] = process
    return out


def load_sqlite(db: Path, chunks: Iterator[list[dict[str, Any]]]) -> None:
    """Bulk insert without the secondary indexes, then rebuild them from their DDL."""
    binders = _sqlite_binders()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # a loader's shortcut; the vault runs FULL
    conn.execute("PRAGMA cache_size=-262144")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
        "AND tbl_name = 'recordings' AND sql IS NOT NULL"
    ).fetchall()
    conn.execute("BEGIN IMMEDIATE")
    for name, _sql in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    insert = (
        f"INSERT INTO recordings ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    for chunk in chunks:
        check_columns(chunk[0])
        for values in chunk:
            for name, bind in binders.items():
                values[name] = bind(values[name])
        conn.executemany(insert, [tuple(v.get(c) for c in COLUMNS) for v in chunk])
    for _name, ddl in indexes:
        conn.execute(ddl)
    conn.execute("COMMIT")
    broken = conn.execute("PRAGMA foreign_key_check(recordings)").fetchone()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    if broken is not None:
        raise SystemExit("a recordings row references a missing bucket KEK")


def pg_connect(url: str) -> psycopg.Connection[Any]:
    """A raw psycopg connection (autocommit) to the database of a SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg.connect(
        host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True
    )


def load_postgres(url: str, chunks: Iterator[list[dict[str, Any]]]) -> None:
    """COPY without the secondary indexes, rebuild them, then VACUUM ANALYZE."""
    with pg_connect(url) as conn:
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'recordings' "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        ).fetchall()
        for name, _ddl in indexes:
            conn.execute(pgsql.SQL("DROP INDEX {}").format(pgsql.Identifier(name)))
        copy = pgsql.SQL("COPY recordings ({}) FROM STDIN").format(
            pgsql.SQL(", ").join(pgsql.Identifier(c) for c in COLUMNS)
        )
        with conn.transaction(), conn.cursor() as cur, cur.copy(copy) as out:
            for chunk in chunks:
                check_columns(chunk[0])
                for values in chunk:
                    out.write_row(
                        [_naive(values[c]) if c in _TIMES else values.get(c) for c in COLUMNS]
                    )
        for _name, ddl in indexes:
            conn.execute(ddl)
        conn.execute("VACUUM ANALYZE recordings")


_TIMES = {"started_at", "created_at", "keep_until"}


def _naive(value: dt.datetime | None) -> dt.datetime | None:
    # The columns hold naive UTC (UTCDateTime); COPY must not shift them by a session zone.
    return None if value is None else value.astimezone(dt.UTC).replace(tzinfo=None)


# --- the measured queries ------------------------------------------------------------


def officer() -> Principal:
    return Principal("officer", "privacy_officer")


def supervisor(unit: str) -> Principal:
    return Principal("supervisor", "supervisor", care_unit=unit)


def _days(t: Target, back: int) -> tuple[str, str]:
    day = t.started_at.date()
    return (day - dt.timedelta(days=back)).isoformat(), day.isoformat()


@dataclass(frozen=True)
class Kind:
    """One kind of search: who asks, what, the expected index and the p99 target."""

    label: str
    index: str
    target_ms: float | None
    ask: Callable[[Target], tuple[Principal, SearchQuery]]
    next_page: bool = False
    # Whose values: "rows" (rows drawn at random: callers as often as they call),
    # "rows with pnr" (those of them that carry a personnummer), "busiest" (the
    # caller with most calls) or "nobody" (a number never called from).
    who: str = "rows"


def _caller(t: Target) -> tuple[Principal, SearchQuery]:
    return officer(), SearchQuery(caller=t.caller.typed, limit=PAGE)


def _pnr(t: Target) -> tuple[Principal, SearchQuery]:
    return officer(), SearchQuery(personnummer=t.caller.pnr, limit=PAGE)


def _caller_unit(t: Target) -> tuple[Principal, SearchQuery]:
    q = SearchQuery(caller=t.caller.typed, care_unit=t.care_unit, limit=PAGE)
    return supervisor(t.care_unit), q


def _week(t: Target) -> tuple[Principal, SearchQuery]:
    lo, hi = _days(t, 6)
    return officer(), SearchQuery(started_from=lo, started_to=hi, limit=PAGE)


def _year(t: Target) -> tuple[Principal, SearchQuery]:
    lo, hi = _days(t, 364)
    return officer(), SearchQuery(started_from=lo, started_to=hi, limit=PAGE)


def _unit_month(t: Target) -> tuple[Principal, SearchQuery]:
    lo, hi = _days(t, 29)
    q = SearchQuery(care_unit=t.care_unit, started_from=lo, started_to=hi, limit=PAGE)
    return supervisor(t.care_unit), q


def _three_units_week(t: Target) -> tuple[Principal, SearchQuery]:
    # A supervisor of three units searching all of them: care_unit IN (...).
    first = int(t.care_unit.removeprefix("unit-"))
    units = frozenset(f"unit-{(first + i) % UNITS:03d}" for i in range(3))
    lo, hi = _days(t, 6)
    principal = Principal("supervisor", "supervisor", care_units=units)
    return principal, SearchQuery(started_from=lo, started_to=hi, limit=PAGE)


KINDS = (
    Kind("caller", "ix_recordings_caller_started", CALLER_P99_MS, _caller),
    Kind("personnummer", "ix_recordings_pnr_started", CALLER_P99_MS, _pnr, who="rows with pnr"),
    Kind("caller in own unit", "ix_recordings_caller", CALLER_P99_MS, _caller_unit),
    Kind("date page (1 week)", "ix_recordings_started", PAGE_P99_MS, _week),
    Kind("date page 2 (1 year, cursor)", "ix_recordings_started", PAGE_P99_MS, _year, True),
    Kind("unit date page (1 month)", "ix_recordings_unit_started", PAGE_P99_MS, _unit_month),
    Kind("3 own units, 1 week", "ix_recordings_unit_started", PAGE_P99_MS, _three_units_week),
    # Not targets: the worst caller, and the fixed cost of any search (access
    # decisions, audit entry, durable commit) when the SELECT finds nothing.
    Kind("caller, the busiest one", "ix_recordings_caller_started", None, _caller, who="busiest"),
    Kind("caller, no match", "ix_recordings_caller_started", None, _caller, who="nobody"),
)


class Capture:
    """The recordings SELECTs an engine issues while active, with their parameters."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def _hook(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM recordings" in statement:
            self.seen.append((statement, params))

    @contextmanager
    def active(self) -> Iterator[Capture]:
        event.listen(Engine, "before_cursor_execute", self._hook)
        try:
            yield self
        finally:
            event.remove(Engine, "before_cursor_execute", self._hook)

    def only(self) -> tuple[str, Any]:
        if len(self.seen) != 1:
            raise SystemExit(f"expected one recordings query per search, saw {len(self.seen)}")
        return self.seen[0]


@dataclass
class Backend:
    """What the measurement needs of one database: raw execution and plans."""

    name: str
    url: str
    execute: Callable[[str, Any], list[Any]]
    explain: Callable[[str, Any], str]
    size_bytes: Callable[[], int]
    index_bytes: Callable[[], dict[str, int]]


@dataclass
class Samples:
    ours: list[float]
    raw: list[float]
    lean: list[float]
    found: int = 0
    statement: tuple[str, Any] | None = None


def measure(vault: Vault, db: Backend, kind: Kind, targets: list[Target], queries: int) -> Samples:
    """Milliseconds of ours and of the same SELECT raw, taking turns; results compared."""
    out, capture = Samples([], [], []), Capture()
    done, i = 0, 0
    with capture.active():
        while done < queries + WARMUP:
            if i >= 4 * (queries + WARMUP) + 100:
                raise SystemExit(f"{kind.label}: too few targets with a next page")
            principal, query = kind.ask(targets[i % len(targets)])
            i += 1
            cursor = None
            if kind.next_page:
                cursor = search_page(vault, principal, query).next_cursor
                if cursor is None:
                    continue
            capture.seen.clear()
            start = time.perf_counter()
            page = search_page(vault, principal, query, cursor)
            t_ours = time.perf_counter() - start
            statement, params = capture.only()
            start = time.perf_counter()
            theirs = db.execute(statement, params)
            t_raw = time.perf_counter() - start
            start = time.perf_counter()
            db.execute(lean_select(statement), params)
            t_lean = time.perf_counter() - start
            if [s.id for s in page.items] != [uuid.UUID(str(r[0])) for r in theirs[:PAGE]]:
                raise SystemExit(f"{db.name} {kind.label}: ours and the raw SELECT disagree")
            if not page.items and kind.who != "nobody":
                raise SystemExit(f"{db.name} {kind.label}: found nothing for an existing row")
            done += 1
            if done > WARMUP:
                out.ours.append(t_ours * 1e3)
                out.raw.append(t_raw * 1e3)
                out.lean.append(t_lean * 1e3)
                out.found += len(page.items)
                out.statement = out.statement or (statement, params)
    return out


def lean_select(statement: str) -> str:
    """The same SELECT without the sealed waveform (~4 KB a row): a diagnostic only."""
    lean = statement.replace(", recordings.enc_peaks", "")
    if lean == statement:
        raise SystemExit("the search no longer selects recordings.enc_peaks; update lean_select")
    return lean


def issued(vault: Vault, kind: Kind, target: Target) -> tuple[int, tuple[str, Any]]:
    """Run one search of ``kind`` untimed: results found, and the SELECT it issued."""
    capture = Capture()
    principal, query = kind.ask(target)
    with capture.active():
        cursor = search_page(vault, principal, query).next_cursor if kind.next_page else None
        capture.seen.clear()
        page = search_page(vault, principal, query, cursor)
    return len(page.items), capture.only()


def full_scan(plan: str) -> bool:
    """True if ``plan`` reads the whole recordings table or the whole of one of its indexes."""
    return any(
        line.strip().startswith("SCAN recordings") or "Seq Scan on recordings" in line
        for line in plan.splitlines()
    )


def plan_uses(plan: str, index: str) -> bool:
    """True if ``plan`` searches recordings through ``index`` (and scans nothing whole)."""
    return index in plan and not full_scan(plan)


def sqlite_backend(db: Path) -> tuple[Backend, sqlite3.Connection]:
    conn = sqlite3.connect(db, isolation_level=None)

    def explain(statement: str, params: Any) -> str:
        # A connection of its own: sqlite3's statement cache would replay a plan
        # prepared before a schema change.
        with closing(sqlite3.connect(db)) as fresh:
            steps = fresh.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()
        depth: dict[int, int] = {0: 0}
        lines = []
        for node, parent, _unused, detail in steps:
            depth[node] = depth.get(parent, 0) + 1
            lines.append("  " * (depth[node] - 1) + detail)
        return "\n".join(lines)

    def size() -> int:
        return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))

    def indexes() -> dict[str, int]:
        rows = conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master "
            "WHERE type = 'index' AND tbl_name = 'recordings') GROUP BY name"
        ).fetchall()
        return {name: int(size) for name, size in rows}

    backend = Backend(
        "SQLite",
        f"sqlite:///{db}",
        lambda s, p: conn.execute(s, p).fetchall(),
        explain,
        size,
        indexes,
    )
    return backend, conn


def postgres_backend(url: str) -> tuple[Backend, psycopg.Connection[Any]]:
    conn = pg_connect(url)

    def explain(statement: str, params: Any) -> str:
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params).fetchall()
        return "\n".join(r[0] for r in rows)

    def size() -> int:
        value = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(value[0]) if value else 0

    def indexes() -> dict[str, int]:
        rows = conn.execute(
            "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
            "WHERE relname = 'recordings'"
        ).fetchall()
        return {str(name): int(size) for name, size in rows}

    backend = Backend(
        "PostgreSQL", url, lambda s, p: conn.execute(s, p).fetchall(), explain, size, indexes
    )
    return backend, conn


# --- the run -------------------------------------------------------------------------


@contextmanager
def database(name: str, tmp: Path) -> Iterator[tuple[str, Callable[..., None]]]:
    """The URL of a fresh database and its bulk loader; dropped afterwards."""
    if name == "sqlite":
        db = tmp / "sqlite" / "vault.db"
        db.parent.mkdir(mode=0o700)
        try:
            yield f"sqlite:///{db}", lambda chunks: load_sqlite(db, chunks)
        finally:
            shutil.rmtree(db.parent)  # gigabytes at full size: gone before PostgreSQL loads
        return
    from callvault.testing.postgres import create_database, drop_database, url_for

    dbname = create_database()
    try:
        url = url_for(dbname)
        yield url, lambda chunks: load_postgres(url, chunks)
    finally:
        drop_database(dbname)


def population_rows(pop: Population) -> list[Row]:
    counts = sorted(pop.counts)
    return [
        row("rows", pop.rows, "recordings"),
        row("callers", len(pop.callers), "callers"),
        row("median calls of a caller", counts[len(counts) // 2], "calls"),
        row("calls of the busiest caller", counts[-1], "calls"),
        row("care units / agents / years", f"{UNITS} / {AGENTS} / {YEARS}"),
    ]


def latency_rows(db: str, kind: Kind, s: Samples, plan: str, counts: list[int]) -> list[Row]:
    label = f"{db} {kind.label}"
    p99 = percentile(s.ours, 99)
    rows = [
        row(f"{label}: index used", kind.index if plan_uses(plan, kind.index) else "NO"),
        row(f"{label}: mean results", s.found / len(s.ours)),
        row(f"{label}: raw SELECT p50", percentile(s.raw, 50), "ms"),
        row(f"{label}: raw SELECT p99", percentile(s.raw, 99), "ms"),
        row(f"{label}: raw SELECT without enc_peaks p50", percentile(s.lean, 50), "ms"),
        row(f"{label}: ours p50", percentile(s.ours, 50), "ms"),
        target_row(f"{label}: ours p99", p99, "ms", at_most=kind.target_ms)
        if kind.target_ms
        else row(f"{label}: ours p99", p99, "ms"),
    ]
    for q in (50, 99):
        ratio = percentile(s.ours, q) / percentile(s.raw, q)
        rows.append(row(f"{label}: ours / raw SELECT p{q}", ratio, "x"))
    if kind.who == "busiest":
        rows.insert(0, row(f"{label}: calls of that caller", max(counts), "calls"))
    return rows


def archive_rows(mb_per_million: dict[str, float]) -> list[Row]:
    """What 1177's archive needs: metadata from the measured size, audio from cv1's sizes."""
    rows = [row("1177 archive: recordings", FULL_ROWS, "recordings")]
    for name, mb in mb_per_million.items():
        rows.append(row(f"1177 archive: {name} metadata (projected)", mb * 2.7 / 1000, "GB"))
    mean_s = MEAN_CALL_S
    for codec, rate in (("8 kHz G.711 (8-bit)", 8000), ("8 kHz PCM 16-bit", 16000)):
        plain = int(mean_s * rate) + 44
        sealed = cv1.ciphertext_size(plain)
        overhead = (sealed - plain) / plain * 100
        total = sealed * FULL_ROWS / 1e12
        rows.append(row(f"1177 audio, {codec}: sealed objects", total, "TB"))
        rows.append(row(f"1177 audio, {codec}: cv1 overhead", overhead, "%"))
    return rows


@dataclass
class Loaded:
    """A vault on a freshly loaded database, with its raw peer connection."""

    vault: Vault
    backend: Backend
    conn: Any
    load_seconds: float
    size_bytes: int


@contextmanager
def loaded(name: str, tmp: Path, keys: Any, pop: Population, keep: int) -> Iterator[Loaded]:
    """``pop``'s rows in a new ``name`` database (sqlite or postgres), gone afterwards."""
    with database(name, tmp) as (url, load):
        vault = open_vault(url, keys, tmp / f"blobs-{name}", initialise=True)
        buckets = make_buckets(vault)
        vault.close()
        started = time.perf_counter()
        load(pop.chunks(buckets, keep=keep))
        seconds = time.perf_counter() - started
        if name == "sqlite":
            backend, conn = sqlite_backend(Path(url.removeprefix("sqlite:///")))
        else:
            backend, conn = postgres_backend(url)
        # A new engine: no pooled connection saw the schema before the load.
        vault = open_vault(url, keys, tmp / f"blobs-{name}", initialise=False)
        try:
            yield Loaded(vault, backend, conn, seconds, backend.size_bytes())
        finally:
            vault.close()
            conn.close()


def run_backend(
    name: str, tmp: Path, keys: Any, pop: Population, queries: int, plans: list[str]
) -> tuple[list[Row], float]:
    """Load one database, measure every kind; rows and MB per million recordings."""
    with loaded(name, tmp, keys, pop, keep=queries + WARMUP) as db:
        backend = db.backend
        mb_per_million = db.size_bytes / 1e6 / (pop.rows / 1e6)
        version = db.conn.execute(
            "SELECT sqlite_version()" if name == "sqlite" else "SHOW server_version"
        ).fetchone()
        rows = [
            row(f"{backend.name} version", version[0] if version else "?"),
            row(f"{backend.name} bulk load + indexes (not a target)", db.load_seconds, "s"),
            row(f"{backend.name} database size", db.size_bytes / 1e6, "MB"),
            row(f"{backend.name} size per million recordings", mb_per_million, "MB"),
        ]
        for index, size in sorted(backend.index_bytes().items()):
            per_million = size / 1e6 / (pop.rows / 1e6)
            rows.append(row(f"{backend.name} index {index} per million", per_million, "MB"))
        for kind in KINDS:
            samples = measure(db.vault, backend, kind, pop.targets_for(kind.who), queries)
            assert samples.statement is not None
            plan = backend.explain(*samples.statement)
            plans.append(f"### {backend.name}: {kind.label}\n\n```\n{plan}\n```\n")
            rows += latency_rows(backend.name, kind, samples, plan, pop.counts)
    return rows, mb_per_million


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="recordings per database")
    parser.add_argument("--full", action="store_true", help=f"{FULL_ROWS:,} rows (1177's size)")
    parser.add_argument("--callers", type=int, default=0, help="distinct callers (default: scaled)")
    parser.add_argument("--queries", type=int, default=300, help="timed queries per kind")
    parser.add_argument("--only", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--plans", action="store_true", help="write scale_plans.md too")
    parser.add_argument("--seed", type=int, default=1177)
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir")
    args = parser.parse_args(argv)
    rows_n = FULL_ROWS if args.full else args.rows
    callers = args.callers or max(10, round(FULL_CALLERS * rows_n / FULL_ROWS))
    backends = [b.strip() for b in args.only.split(",") if b.strip()]
    if rows_n < 1000 or args.queries < 1 or not 1 <= callers <= rows_n:
        parser.error("need --rows >= 1000, --queries >= 1 and 1 <= --callers <= rows")
    if not backends or set(backends) - {"sqlite", "postgres"}:
        parser.error("--only takes sqlite, postgres or both")
    plans: list[str] = []
    rows: list[Row] = []
    per_million: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cvbench-scale-", dir=args.workdir) as tmp:
        keys = make_keys(Path(tmp) / "keys")
        pop = Population(args.seed, keys.index_key(), rows_n, callers)
        for name in backends:
            measured, per_million[name] = run_backend(
                name, Path(tmp), keys, pop, args.queries, plans
            )
            rows += measured
    rows = population_rows(pop) + rows + archive_rows(per_million)
    if rows_n < FULL_ROWS:
        rows.append(row("note", f"a {rows_n / FULL_ROWS:.3g} share of the archive; --full for all"))
    report("scale", rows)
    if args.plans:
        path = results_dir() / "scale_plans.md"
        head = (
            f"Plans at {rows_n:,} recordings, {callers:,} callers (bench/bench_scale.py --plans)\n"
        )
        path.write_text(head + "\n" + "\n".join(plans))
        print(f"(plans written to {path})")


if __name__ == "__main__":
    main()
