"""The retention sweep: recordings crypto-shredded per second, against plain ``DELETE``.

Run: ``.venv/bin/python -m bench.bench_retention [--rows N]`` (``--rows 1000000`` for
the full run; the default finishes in about a minute on a 2-core VM).

* Ours: ``services.retention.sweep`` over ``--rows`` due recordings planted in
  an embedded vault (SQLite WAL, synchronous=FULL): per batch of 500, one
  transaction that re-checks each row (active, not held), deletes it (its
  wrapped DEK and sealed identifiers), queues its object and appends its
  ``recording:shred`` receipt to the Merkle-tree audit log; then the queued
  objects are deleted and the emptied bucket KEKs destroyed.  Planted rows
  have no objects, so the figure is the database side: the part that makes
  a recording unreadable.
* Peer: the same rows deleted by primary key from a byte copy of the same
  database (same table, same indexes), 500 per transaction, with nothing
  else: no re-check, no queue, no receipt.  The floor any deletion costs.

Afterwards the audit log (one receipt per shredded recording) must verify.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import bench_principal, make_vault, report, row, target_row
from callvault.core.recordings import RecordingRow
from callvault.services import audit, keyring, retention
from callvault.services.context import Vault
from callvault.testing.metadata_support import recording

BATCH = retention.SHRED_BATCH
# Shredding must not be the slow part of a nightly sweep: 1,000 recordings a
# second clears a year of a large advice line (~1 M calls) in under 20 minutes.
TARGET_PER_SECOND = 1000
COLUMNS = [f.name for f in dataclasses.fields(RecordingRow)]
MONTHS = tuple(f"{y}-{m:02d}" for y in (2013, 2014, 2015) for m in range(1, 13))


def plant(vault: Vault, db: Path, count: int) -> None:
    """``count`` due rows under real bucket KEKs, bulk-inserted with sqlite3.

    Through the store one row costs a millisecond of statement building, and
    a million of them would dwarf the sweep; the rows are the same either way.
    """
    buckets = [keyring.current_bucket(vault, month, "quality").id for month in MONTHS]
    due = "2016-01-01 00:00:00.000000"
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        insert = (
            f"INSERT INTO recordings ({', '.join(COLUMNS)}, keep_until) "
            f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})"
        )
        for start in range(0, count, 10_000):
            batch = range(start, min(count, start + 10_000))
            con.executemany(insert, [(*_values(_row(buckets, n)), due) for n in batch])
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def _row(buckets: list[int], n: int) -> RecordingRow:
    month = MONTHS[n % len(MONTHS)]
    started = dt.datetime.fromisoformat(f"{month}-01T10:00:00+00:00")
    return recording(
        buckets[n % len(MONTHS)],
        started_at=started,
        created_at=started,
        retention_class="quality",
        care_unit="unit-bench",
    )


def _values(r: RecordingRow) -> tuple[Any, ...]:
    """A row as SQLAlchemy stores it in SQLite: UUIDs as hex, naive UTC text times."""
    out: list[Any] = []
    for name in COLUMNS:
        value = getattr(r, name)
        if isinstance(value, uuid.UUID):
            value = value.hex
        elif isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        out.append(value)
    return tuple(out)


def peer_delete(db: Path) -> tuple[int, float]:
    """Time deleting every planted row by primary key from a byte copy of the
    database: the same table, the same indexes, nothing else."""
    copy = db.with_name("peer.db")
    shutil.copyfile(db, copy)
    con = sqlite3.connect(copy, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        ids = [r[0] for r in con.execute("SELECT id FROM recordings")]
        started = time.perf_counter()
        for start in range(0, len(ids), BATCH):
            con.execute("BEGIN IMMEDIATE")
            chunk = [(i,) for i in ids[start : start + BATCH]]
            con.executemany("DELETE FROM recordings WHERE id = ?", chunk)
            con.execute("COMMIT")
        elapsed = time.perf_counter() - started
        left = con.execute("SELECT count(*) FROM recordings").fetchone()[0]
        assert left == 0, f"peer left {left} rows"
    finally:
        con.close()
    for leftover in copy.parent.glob("peer.db*"):
        leftover.unlink()
    return len(ids), elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=50_000, help="due recordings to shred")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("need --rows >= 1")
    with tempfile.TemporaryDirectory(prefix="cvbench-retention-", dir=args.workdir) as tmp:
        vault = make_vault(Path(tmp) / "vault")
        db = Path(tmp) / "vault" / "data" / "vault.db"
        started = time.perf_counter()
        plant(vault, db, args.rows)
        planted = time.perf_counter() - started
        peer_rows, peer_seconds = peer_delete(db)

        started = time.perf_counter()
        swept = retention.sweep(vault, bench_principal())
        ours_seconds = time.perf_counter() - started
        assert sum(swept.shredded.values()) == args.rows, swept
        assert len(swept.buckets_destroyed) == len(MONTHS), swept.buckets_destroyed

        started = time.perf_counter()
        verified = audit.check(vault)
        verify_seconds = time.perf_counter() - started
        assert verified.ok, verified.problems
        vault.close()

    ours, peer = args.rows / ours_seconds, peer_rows / peer_seconds
    rows = [
        row("SQLite", sqlite3.sqlite_version),
        row("recordings shredded", args.rows, "recordings"),
        row("plant rows (not a target)", planted, "s"),
        row("ours: sweep", ours_seconds, "s"),
        target_row("ours: shredded per second", ours, "rec/s", at_least=TARGET_PER_SECOND),
        row("peer: DELETE by primary key (copy of the database)", peer_seconds, "s"),
        row("peer: deleted per second", peer, "rec/s"),
        row("ours / peer (rows per second)", ours / peer, "x"),
        row("bucket KEKs destroyed", len(swept.buckets_destroyed), "buckets"),
        row("audit log verified after the sweep", verify_seconds, "s"),
        row("audit entries verified", verified.size, "entries"),
    ]
    report("retention", rows)


if __name__ == "__main__":
    main()
