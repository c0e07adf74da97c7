"""Blind-index search over a large recordings table, against a raw sqlite3 SELECT.

Run: ``.venv/bin/python -m bench.bench_search [--rows N] [--queries Q]``

* Data: a fresh embedded vault whose ``recordings`` table is filled with
  ``--rows`` synthetic rows (default 1,000,000) straight through sqlite3:
  callers drawn from ``rows / 3`` phone numbers and, for 60 % of the rows,
  personnummer from ``rows / 4`` (so a caller has about three calls),
  ``--care-units`` care units (default 3000), 500 agents, calls spread over
  ten years, one real bucket KEK per call month (the foreign key holds), and
  sealed fields of their real sizes (random bytes: search never opens them;
  waveform peaks are ~4 KB a row as in the vault).  The schema's indexes
  are dropped for the load and rebuilt from their own DDL.  Nothing
  survives the run.
* Ours: ``services.recordings.search`` by caller, and by personnummer +
  care unit + a one-year date range, ``--queries`` each (default 2000) for
  values that exist: identifier normalisation, blind index, the query, the
  audit entry and its durable commit.  Also the store's query alone
  (``transaction`` + ``tx.search``, no audit) to split the two.
* Peer: the same SELECT (same conditions, order and limit) by raw sqlite3 on
  the indexed column, with the blind index precomputed.
* Target: p99 of ours <= 10 ms.  Ours, the store query and the peer take
  turns per query; results of ours and the peer are compared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import sqlite as sqlite_dialect

from bench.common import (
    Row,
    bench_principal,
    fake_mobile,
    fake_personnummer,
    make_vault,
    percentile,
    report,
    row,
    target_row,
)
from callvault.adapters.db.schema import recordings
from callvault.adapters.db.store import SqlMetadataStore
from callvault.core import identifiers as ids
from callvault.core.recordings import ACTIVE, SearchCriteria
from callvault.services import keyring
from callvault.services.context import Vault
from callvault.services.recordings import SearchQuery, search

P99_TARGET_MS = 10.0
CARE_UNITS, AGENTS = 3000, 500
FIRST_DAY, YEARS = dt.datetime(2015, 1, 1, tzinfo=dt.UTC), 10
CHUNK = 20_000
WARMUP = 50
RANGE_DAYS = 183
# Sizes of the sealed columns as the vault writes them (nonce + ciphertext + tag).
WRAPPED_DEK, SEALED_ID, SEALED_CALL_ID, SEALED_PEAKS = 61, 40, 40, 4028
MEDIA = [
    ("audio/wav", "wav", "pcm_s16le"),
    ("audio/wav", "wav", "ulaw"),
    ("audio/wav", "wav", "alaw"),
    ("audio/mpeg", "mp3", "mp3"),
]
COLUMNS = [c.name for c in recordings.columns]
ORDER_LIMIT = "ORDER BY started_at DESC, id LIMIT ?"


@dataclass(frozen=True)
class Person:
    typed: str
    bidx: bytes


@dataclass(frozen=True)
class Target:
    """One query that must find something: the values of an existing row."""

    caller: Person
    pnr: Person | None
    care_unit: str
    started_at: dt.datetime


# --- population (not timed against anything) ------------------------------------------


def people(
    rng: random.Random, count: int, fake: Callable[[random.Random], str], kind: str, key: bytes
) -> list[Person]:
    today = dt.date.today()
    out = []
    for _ in range(count):
        typed = fake(rng)
        value = (
            ids.PhoneNumber.parse(typed).value
            if kind == "phone"
            else ids.PersonalNumber.parse(typed, today=today).value
        )
        out.append(Person(typed, ids.blind_index(key, kind, value)))
    return out


def make_buckets(vault: Vault) -> dict[str, int]:
    """One real bucket KEK per call month, so every row's foreign key holds."""
    months = {}
    for m in range(12 * YEARS):
        month = f"{FIRST_DAY.year + m // 12}-{m % 12 + 1:02d}"
        months[month] = keyring.current_bucket(vault, month, "record").id
    return months


def _binder(column: str, dialect: Any) -> Callable[[Any], Any]:
    process = recordings.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        raise SystemExit(f"no SQLite bind conversion for recordings.{column}")
    return process


class Generator:
    """Rows in the column order of ``recordings``, values as SQLAlchemy binds them."""

    def __init__(self, rng: random.Random, vault: Vault, rows: int, units: int) -> None:
        self.rng = rng
        key = vault.keys.index_key()
        self.callers = people(rng, max(1, rows // 3), fake_mobile, "phone", key)
        self.pnrs = people(rng, max(1, rows // 4), fake_personnummer, "pnr", key)
        self.buckets = make_buckets(vault)
        self.units = [f"unit-{i:04d}" for i in range(units)]
        self.peaks = [rng.randbytes(SEALED_PEAKS) for _ in range(64)]
        dialect = sqlite_dialect.dialect()
        self.targets: list[Target] = []
        # Values stored exactly as SQLAlchemy would bind them (UUID hex, UTC text).
        self.bind = {name: _binder(name, dialect) for name in ("id", "started_at", "created_at")}

    def row(self) -> tuple[dict[str, Any], Target | None]:
        rb, r = self.rng.randbytes, self.rng
        started = FIRST_DAY + dt.timedelta(seconds=r.randrange(YEARS * 365 * 86400))
        caller = r.choice(self.callers)
        pnr = r.choice(self.pnrs) if r.random() < 0.6 else None
        unit = r.choice(self.units)
        media, container, codec = r.choice(MEDIA)
        ms = r.randrange(20_000, 180_000)
        size = ms * (8 if codec != "pcm_s16le" else 16) + 44
        state = ACTIVE if r.random() > 0.001 else "pending"
        bind = self.bind
        values = {
            "id": bind["id"](uuid.UUID(bytes=rb(16), version=4)),
            "state": state,
            "object_name": rb(16).hex(),
            "fingerprint": rb(16),
            "bucket_kek_id": self.buckets[started.strftime("%Y-%m")],
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
            "ciphertext_size": size + 40 + 16 * (size // 65_536 + 1),
            "ciphertext_sha256": rb(32),
            "care_unit": unit,
            "agent": f"agent-{r.randrange(AGENTS)}",
            "started_at": bind["started_at"](started),
            "retention_class": "record",
            "created_at": bind["created_at"](started + dt.timedelta(seconds=ms // 1000 + 60)),
            "caller_bidx": caller.bidx,
            "pnr_bidx": pnr.bidx if pnr else None,
            "call_id_bidx": rb(16),
            "enc_caller": rb(SEALED_ID),
            "enc_pnr": rb(SEALED_ID) if pnr else None,
            "enc_call_id": rb(SEALED_CALL_ID),
            "enc_peaks": r.choice(self.peaks),
        }
        target = Target(caller, pnr, unit, started) if state == ACTIVE else None
        return values, target

    def chunks(self, rows: int, keep: int) -> Iterator[list[tuple[Any, ...]]]:
        """Rows in chunks; reservoir-samples ``keep`` query targets into ``self.targets``."""
        self.targets = []
        seen = 0
        for start in range(0, rows, CHUNK):
            chunk = []
            for _ in range(min(CHUNK, rows - start)):
                values, target = self.row()
                chunk.append(tuple(values.get(name) for name in COLUMNS))
                if target is None:
                    continue
                seen += 1
                if len(self.targets) < keep:
                    self.targets.append(target)
                elif (j := self.rng.randrange(seen)) < keep:
                    self.targets[j] = target
            yield chunk


def check_columns(sample: dict[str, Any]) -> None:
    """Fail loudly if the schema gained a required column this generator does not fill."""
    missing = [c.name for c in recordings.columns if not c.nullable and c.name not in sample]
    if missing:
        raise SystemExit(f"bench_search does not fill recordings columns: {missing}")


def load(db: Path, gen: Generator, rows: int, keep: int) -> None:
    """Bulk insert without the secondary indexes, then rebuild them from their DDL."""
    check_columns(gen.row()[0])
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
    for chunk in gen.chunks(rows, keep):
        conn.executemany(insert, chunk)
    for _name, sql in indexes:
        conn.execute(sql)
    conn.execute("COMMIT")
    broken = conn.execute("PRAGMA foreign_key_check(recordings)").fetchone()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    if broken is not None:
        raise SystemExit("a recordings row references a missing bucket KEK")


# --- the queries ---------------------------------------------------------------------


def day(value: dt.datetime, days: int) -> dt.date:
    return (value + dt.timedelta(days=days)).date()


def query_pair(t: Target, by_pnr: bool) -> tuple[SearchQuery, SearchCriteria, str, tuple[Any, ...]]:
    """The same lookup three ways: the service's query, the store's criteria, raw SQL."""
    if not by_pnr:
        sql = f"SELECT * FROM recordings WHERE state = ? AND caller_bidx = ? {ORDER_LIMIT}"
        return (
            SearchQuery(caller=t.caller.typed),
            SearchCriteria(caller_bidx=t.caller.bidx),
            sql,
            (ACTIVE, t.caller.bidx, 100),
        )
    assert t.pnr is not None
    lo, hi = day(t.started_at, -RANGE_DAYS), day(t.started_at, RANGE_DAYS)
    start = dt.datetime.combine(lo, dt.time(), dt.UTC)
    end = dt.datetime.combine(hi, dt.time(), dt.UTC) + dt.timedelta(days=1)
    sql = (
        "SELECT * FROM recordings WHERE state = ? AND pnr_bidx = ? AND care_unit = ? "
        f"AND started_at >= ? AND started_at < ? {ORDER_LIMIT}"
    )
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    return (
        SearchQuery(
            personnummer=t.pnr.typed,
            care_unit=t.care_unit,
            started_from=lo.isoformat(),
            started_to=hi.isoformat(),
        ),
        SearchCriteria(
            pnr_bidx=t.pnr.bidx, care_unit=t.care_unit, started_from=start, started_to=end
        ),
        sql,
        (ACTIVE, t.pnr.bidx, t.care_unit, start.strftime(fmt), end.strftime(fmt), 100),
    )


@dataclass
class Samples:
    ours: list[float]
    store: list[float]
    raw: list[float]
    found: int = 0


def run_queries(
    vault: Vault, raw: sqlite3.Connection, targets: list[Target], by_pnr: bool, queries: int
) -> Samples:
    """Milliseconds per query for ours, the store alone and raw sqlite3, taking turns."""
    principal = bench_principal()
    pool = [t for t in targets if t.pnr is not None] if by_pnr else targets
    out = Samples([], [], [])
    for i in range(queries + WARMUP):
        query, criteria, sql, params = query_pair(pool[i % len(pool)], by_pnr)
        start = time.perf_counter()
        ours = search(vault, principal, query)
        t_ours = time.perf_counter() - start
        start = time.perf_counter()
        with vault.store.transaction() as tx:
            tx.search(criteria)
        t_store = time.perf_counter() - start
        start = time.perf_counter()
        theirs = raw.execute(sql, params).fetchall()
        t_raw = time.perf_counter() - start
        if [s.id.hex for s in ours] != [r[0] for r in theirs] or not ours:
            raise SystemExit("ours and raw sqlite3 disagree (or found nothing)")
        if i >= WARMUP:
            out.ours.append(t_ours * 1e3)
            out.store.append(t_store * 1e3)
            out.raw.append(t_raw * 1e3)
            out.found += len(ours)
    return out


def plan(raw: sqlite3.Connection, by_pnr: bool, target: Target) -> str:
    _, _, sql, params = query_pair(target, by_pnr)
    steps = raw.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return "; ".join(step[-1] for step in steps)


def latency_rows(label: str, s: Samples, queries: int, query_plan: str) -> list[Row]:
    rows = [
        row(f"{label}: query plan", query_plan),
        row(f"{label}: mean results", s.found / queries),
    ]
    for name, samples in (("raw sqlite3", s.raw), ("store query, no audit", s.store)):
        rows += [row(f"{label}: {name} p{q}", percentile(samples, q), "ms") for q in (50, 99)]
    rows.append(row(f"{label}: ours p50", percentile(s.ours, 50), "ms"))
    p99 = percentile(s.ours, 99)
    rows.append(target_row(f"{label}: ours p99", p99, "ms", at_most=P99_TARGET_MS))
    for q in (50, 99):
        ratio = percentile(s.ours, q) / percentile(s.raw, q)
        rows.append(row(f"{label}: ours / raw sqlite3 p{q}", ratio, "x"))
    return rows


def reopen(vault: Vault, url: str) -> None:
    """A fresh engine after the bulk load (no connection saw the old schema)."""
    vault.close()
    vault.store = SqlMetadataStore.open(url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="recordings in the table")
    parser.add_argument("--queries", type=int, default=2000, help="timed queries per kind")
    parser.add_argument("--care-units", type=int, default=CARE_UNITS, help="distinct units")
    parser.add_argument("--seed", type=int, default=1177)
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir")
    args = parser.parse_args(argv)
    if args.rows < 10 or args.queries < 1 or args.care_units < 1:
        parser.error("need --rows >= 10, --queries >= 1 and --care-units >= 1")
    with tempfile.TemporaryDirectory(prefix="cvbench-search-", dir=args.workdir) as tmp:
        vault = make_vault(Path(tmp) / "vault")
        db = Path(tmp) / "vault" / "data" / "vault.db"
        gen = Generator(random.Random(args.seed), vault, args.rows, args.care_units)
        started = time.perf_counter()
        load(db, gen, args.rows, keep=args.queries + WARMUP)
        loaded = time.perf_counter() - started
        reopen(vault, f"sqlite:///{db}")
        raw = sqlite3.connect(db, isolation_level=None)
        rows = [
            row("SQLite", sqlite3.sqlite_version),
            row("rows", args.rows, "recordings"),
            row("care units", args.care_units, "units"),
            row("database size", db.stat().st_size / 1e6, "MB"),
            row("bulk load + index build (not a target)", loaded, "s"),
        ]
        for label, by_pnr in (("by caller", False), ("by pnr + unit + 1 year", True)):
            query_plan = plan(raw, by_pnr, next(t for t in gen.targets if t.pnr))
            samples = run_queries(vault, raw, gen.targets, by_pnr, args.queries)
            rows += latency_rows(label, samples, args.queries, query_plan)
        raw.close()
        vault.close()
    report("search", rows)


if __name__ == "__main__":
    main()
