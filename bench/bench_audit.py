"""Audit log appends and verification, against raw sqlite3 inserts of the same rows.

Run: ``.venv/bin/python -m bench.bench_audit [--events N] [--group-events M] [--batch B]``

* Per-event durability: ``services.audit.record_alone``, one transaction and
  one durable commit per entry (SQLite WAL, synchronous=FULL), ``--events``
  entries (default 5000).  Peer: ``BEGIN IMMEDIATE; INSERT; COMMIT`` per row
  with sqlite3, same pragmas, same table and indexes (copied from the vault's
  schema), rows of the same size.  Target >= 3000 entries/s.
* Group commit: ``services.audit.append(tx, events)`` with ``--batch``
  events (default 500) per transaction, ``--group-events`` in all (default
  200000).  Peer: ``executemany`` of the same batches.  Target >= 20000/s.
  Ours includes building each ``AuditEvent`` (its PHI screening), the
  canonical encoding, the leaf hash and the Merkle frontier update; ours/raw
  is the price of those.
* Verification: ``services.audit.verify`` over the resulting log (after a
  signed checkpoint), in entries/s.  Peer: reading the same rows with
  sqlite3 and recomputing each leaf hash, the floor of any verifier.

Ours and the peer take turns in rounds so drift on a shared machine hits both.
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import (
    Row,
    bench_principal,
    make_vault,
    percentile,
    report,
    row,
    target_row,
)
from callvault.core.audit import Action
from callvault.services import audit
from callvault.services.context import Vault

SINGLE_TARGET, GROUP_TARGET = 3000, 20000
ROUNDS = 10
REASON = "quality review of the call"

RawRow = tuple[int, bytes, bytes, str, str, str]


class RawLog:
    """The peer: the vault's own ``audit_entries`` DDL in a separate sqlite3 file."""

    def __init__(self, path: Path, vault_db: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000"):
            self.conn.execute(f"PRAGMA {pragma}")
        source = sqlite3.connect(vault_db)
        ddl = source.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'audit_entries' AND sql IS NOT NULL"
        ).fetchall()
        source.close()
        for (statement,) in ddl:
            self.conn.execute(statement)
        self.seq = 0

    def rows(self, sample: RawRow, count: int) -> list[RawRow]:
        """``count`` rows like ``sample``; recording ids random, as in ours (the
        index on them costs more for random keys than for a constant)."""
        body, leaf, action, _rid, when = sample[1:]
        out = [(self.seq + i, body, leaf, action, uuid.uuid4().hex, when) for i in range(count)]
        self.seq += count
        return out

    def insert_each(self, rows: list[RawRow], latencies: list[float]) -> None:
        for values in rows:
            start = time.perf_counter()
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("INSERT INTO audit_entries VALUES (?, ?, ?, ?, ?, ?)", values)
            self.conn.execute("COMMIT")
            latencies.append(time.perf_counter() - start)

    def insert_batch(self, rows: list[RawRow]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany("INSERT INTO audit_entries VALUES (?, ?, ?, ?, ?, ?)", rows)
        self.conn.execute("COMMIT")


def sample_row(vault: Vault) -> RawRow:
    """A row shaped like the ones ours writes: a real canonical body and leaf hash."""
    event = audit.make_event(
        vault, bench_principal(), Action.RECORDING_VIEW, recording_id=uuid.uuid4(), reason=REASON
    )
    body = event.canonical_bytes()
    when = event.time.strftime("%Y-%m-%d %H:%M:%S.%f")
    leaf = hashlib.sha256(b"\x00" + body).digest()
    return (0, body, leaf, event.action.value, str(event.recording_id), when)


def single(vault: Vault, raw: RawLog, events: int) -> tuple[list[float], list[float]]:
    """Per-entry latencies (s) of ours and the peer, one durable commit per entry."""
    principal, sample = bench_principal(), sample_row(vault)
    ours: list[float] = []
    peer: list[float] = []
    for chunk in split(events, ROUNDS):
        ids = [uuid.uuid4() for _ in range(chunk)]
        for rid in ids:
            start = time.perf_counter()
            audit.record_alone(
                vault, principal, Action.RECORDING_VIEW, recording_id=rid, reason=REASON
            )
            ours.append(time.perf_counter() - start)
        raw.insert_each(raw.rows(sample, chunk), peer)
    return ours, peer


def grouped(vault: Vault, raw: RawLog, events: int, batch: int) -> tuple[float, float]:
    """Seconds for ours and the peer to append ``events`` in transactions of ``batch``."""
    principal, sample = bench_principal(), sample_row(vault)
    ours = peer = 0.0
    for chunk in split(events, ROUNDS):
        for size in split_by(chunk, batch):
            ids = [uuid.uuid4() for _ in range(size)]
            start = time.perf_counter()
            entries = [
                audit.make_event(
                    vault, principal, Action.RECORDING_VIEW, recording_id=rid, reason=REASON
                )
                for rid in ids
            ]
            with vault.store.transaction() as tx:
                audit.append(tx, entries)
            ours += time.perf_counter() - start
        for size in split_by(chunk, batch):
            rows = raw.rows(sample, size)
            start = time.perf_counter()
            raw.insert_batch(rows)
            peer += time.perf_counter() - start
    return ours, peer


def verify(vault: Vault, raw_db: Path) -> tuple[int, float, float]:
    """Entries verified, and seconds for ``audit.verify`` and for the read+hash floor."""
    principal = bench_principal()
    audit.checkpoint(vault, principal)
    start = time.perf_counter()
    result = audit.verify(vault, principal)
    ours = time.perf_counter() - start
    if not result.ok or result.unanchored > 0:
        raise SystemExit(f"audit verify failed on an untouched log: {result.problems[:3]}")
    conn = sqlite3.connect(raw_db)
    start = time.perf_counter()
    checked = 0
    query = "SELECT seq, body, leaf_hash FROM audit_entries ORDER BY seq"
    for _seq, body, leaf in conn.execute(query):
        if hashlib.sha256(b"\x00" + body).digest() != leaf:
            raise SystemExit("peer leaf hash mismatch")
        checked += 1
    peer = time.perf_counter() - start
    conn.close()
    # Same work per entry: scale the floor to the vault's log size.
    return result.size, ours, peer * result.size / max(checked, 1)


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal positive chunks (fewer if total is small)."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def split_by(total: int, size: int) -> list[int]:
    return [min(size, total - i) for i in range(0, total, size)]


def rate_rows(label: str, ours: float, peer: float, n: int, target: int) -> list[Row]:
    return [
        row(f"{label}: raw sqlite3", n / peer, "entries/s"),
        target_row(f"{label}: ours", n / ours, "entries/s", at_least=target),
        row(f"{label}: ours / raw sqlite3", peer / ours, "x"),
    ]


def latency_rows(ours: list[float], peer: list[float]) -> list[Row]:
    return [
        row(f"per-event commit latency: {name} p{q}", percentile(samples, q) * 1e3, "ms")
        for name, samples in (("ours", ours), ("raw sqlite3", peer))
        for q in (50, 99)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=5000, help="entries, one commit each")
    parser.add_argument("--group-events", type=int, default=200_000, help="entries, batched")
    parser.add_argument("--batch", type=int, default=500, help="entries per group commit")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir")
    args = parser.parse_args(argv)
    if min(args.events, args.group_events, args.batch) < 1:
        parser.error("counts must be positive")
    with tempfile.TemporaryDirectory(prefix="cvbench-audit-", dir=args.workdir) as tmp:
        work = Path(tmp)
        vault = make_vault(work / "vault")
        raw_db = work / "raw.db"
        raw = RawLog(raw_db, work / "vault" / "data" / "vault.db")
        s_ours, s_peer = single(vault, raw, args.events)
        g_ours, g_peer = grouped(vault, raw, args.group_events, args.batch)
        raw.conn.close()
        size, v_ours, v_peer = verify(vault, raw_db)
        vault.close()
    rows = [
        row("SQLite", sqlite3.sqlite_version),
        *rate_rows("per-event commit", sum(s_ours), sum(s_peer), args.events, SINGLE_TARGET),
        *latency_rows(s_ours, s_peer),
        *rate_rows(
            f"group commit ({args.batch}/tx)", g_ours, g_peer, args.group_events, GROUP_TARGET
        ),
        row("audit verify: log size", size, "entries"),
        row("audit verify: read + leaf hash floor", size / v_peer, "entries/s"),
        row("audit verify: ours", size / v_ours, "entries/s"),
        row("audit verify: ours / floor", v_peer / v_ours, "x"),
    ]
    report("audit", rows)


if __name__ == "__main__":
    main()
