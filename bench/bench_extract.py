"""The patient's log extract (R18) for a caller with many accesses, against a plain SQL list.

Run: ``.venv/bin/python -m bench.bench_extract [--recordings R] [--accesses N] [--noise M]``

A caller has ``--recordings`` recordings (default 10) that were accessed
``--accesses`` times (default 1000: views, plays, downloads, in entries of
their own), in a log that also holds ``--noise`` entries about other
recordings (default 20000).  Ours: ``services.extracts.produce``, which
finds the recordings by blind index, writes and signs its own entry, reads
the entries and every leaf hash up to the checkpoint, and builds one
inclusion proof per entry.  Peer: one ``SELECT seq, body FROM
audit_entries WHERE recording_id IN (...)`` with sqlite3 on the same file:
the cheapest way to list the same rows, with no proof at all.  Also timed:
the PDF, and offline verification of the JSON.  Rounds alternate.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import bench_principal, make_vault, report, row, target_row
from callvault.core.access import Principal
from callvault.core.audit import Action, AuditEvent, Outcome
from callvault.core.extract_verify import verify_extract
from callvault.services import audit, extract_pdf, extracts, ingest
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.testing.audio import make_tone_wav

CALLER = "070-174 06 05"
ROUNDS = 5
TARGET_SECONDS = 2.0
_ACTIONS = (Action.RECORDING_VIEW, Action.RECORDING_PLAY, Action.RECORDING_DOWNLOAD)


def _ingest(vault: Vault, root: Path, count: int) -> list[uuid.UUID]:
    ids = []
    for n in range(count):
        wav = root / f"call-{n}.wav"
        make_tone_wav(wav, 1.0, frequency=300 + 10 * n)
        details = CallDetails.parse(
            care_unit="unit-a",
            started_at=f"2026-03-01T10:{n % 60:02d}:00+01:00",
            today=vault.now().date(),
            caller=CALLER,
        )
        ids.append(ingest.ingest(vault, bench_principal(), wav, details).recording_id)
        wav.unlink()
    return ids


def _log(vault: Vault, targets: list[uuid.UUID], accesses: int, noise: int) -> None:
    """``accesses`` entries about ``targets`` spread among ``noise`` others, in batches."""
    people = [Principal(f"nurse.{i}", "supervisor", care_unit="unit-a") for i in range(20)]
    total, every = accesses + noise, max(1, (accesses + noise) // max(1, accesses))
    batch: list[AuditEvent] = []
    made = 0
    for i in range(total):
        ours = i % every == 0 and made < accesses
        made += ours
        rid = targets[i % len(targets)] if ours else uuid.uuid4()
        batch.append(
            audit.make_event(
                vault, people[i % len(people)], _ACTIONS[i % 3], Outcome.SUCCESS, rid,
                "follow-up of the advice given",
            )
        )  # fmt: skip
        if len(batch) == 500 or i == total - 1:
            with vault.store.transaction() as tx:
                audit.append(tx, batch)
            batch = []


def _peer(db: Path, ids: list[uuid.UUID]) -> tuple[float, int]:
    conn = sqlite3.connect(db)
    try:
        # SQLAlchemy's Uuid is stored as 32 hex digits on SQLite.
        marks = ",".join("?" * len(ids))
        started = time.perf_counter()
        rows = conn.execute(
            f"SELECT seq, body FROM audit_entries WHERE recording_id IN ({marks}) ORDER BY seq",
            [i.hex for i in ids],
        ).fetchall()
        return time.perf_counter() - started, len(rows)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recordings", type=int, default=10)
    parser.add_argument("--accesses", type=int, default=1000)
    parser.add_argument("--noise", type=int, default=20000)
    parser.add_argument("--workdir", type=Path, help="parent of the temporary vault")
    args = parser.parse_args(argv)
    officer = Principal("privacy.bench", "privacy_officer")
    with tempfile.TemporaryDirectory(prefix="bench-extract-", dir=args.workdir) as tmp:
        root = Path(tmp)
        vault = make_vault(root, policy_units=["unit-a"])
        try:
            ids = _ingest(vault, root, args.recordings)
            _log(vault, ids, args.accesses, args.noise)
            audit.seal(vault)
            ours, peer, entries = [], [], 0
            extract = None
            for _ in range(ROUNDS):
                started = time.perf_counter()
                extract = extracts.produce(vault, officer, caller=CALLER)
                ours.append(time.perf_counter() - started)
                seconds, listed = _peer(root / "data" / "vault.db", ids)
                peer.append(seconds)
                entries = len(extract.entries)
            assert extract is not None
            started = time.perf_counter()
            pdf = extract_pdf.render(extract.document, "sv")
            pdf_seconds = time.perf_counter() - started
            started = time.perf_counter()
            verified = verify_extract(extract.json_bytes(), audit.verifier_key(vault))
            verify_seconds = time.perf_counter() - started
        finally:
            vault.close()
    ours_s, peer_s = statistics.median(ours), statistics.median(peer)
    report(
        "extract",
        [
            row("log size (entries)", args.accesses + args.noise),
            row("extract entries (accesses + ingests)", entries),
            row("plain SQL rows listed", listed),
            target_row("extract, median", ours_s, "s", at_most=TARGET_SECONDS),
            row("plain SQL list, median", peer_s, "s"),
            row("extract / plain SQL", ours_s / peer_s, "x"),
            row("PDF render", pdf_seconds, "s"),
            row("PDF size", len(pdf), "bytes"),
            row("offline verify", verify_seconds, "s"),
            row("verified ok", verified.ok),
        ],
    )


if __name__ == "__main__":
    main()
