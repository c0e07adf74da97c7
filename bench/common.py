"""Tiny helpers shared by the benchmarks: print a table, keep the figures as JSON,
target rows, synthetic identifiers and a fresh embedded vault."""

from __future__ import annotations

import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callvault.core.access import Principal

if TYPE_CHECKING:
    from callvault.services.context import Vault

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Tests point this at a temporary directory so they never overwrite real figures.
RESULTS_ENV = "BENCH_RESULTS_DIR"

Row = dict[str, Any]


def results_dir() -> Path:
    """Where ``report`` writes: ``$BENCH_RESULTS_DIR`` if set, else ``bench/results``."""
    override = os.environ.get(RESULTS_ENV)
    return Path(override) if override else RESULTS_DIR


def report(name: str, rows: list[dict[str, Any]]) -> Path:
    """Print ``rows`` as an aligned table and write them to ``<results_dir()>/<name>.json``.

    Columns are the union of the rows' keys in first-seen order; a missing cell
    prints empty.  Floats are shown with 3 significant decimals.  Returns the
    JSON path.
    """
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(line[i]) for line in cells]) for i, col in enumerate(columns)]
    print(f"\n== {name} ==")
    print("  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    payload = {
        "name": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "rows": rows,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"(written to {path})")
    return path


def machine() -> dict[str, Any]:
    """Enough about the host to compare runs: CPU model, cores, Python."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": sys.version.split()[0]}


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def row(measure: str, value: Any, unit: str = "") -> Row:
    """A plain figure: no target, so the table's target/ok cells stay empty."""
    return {"measure": measure, "value": value, "unit": unit, "target": "", "ok": ""}


def target_row(
    measure: str,
    value: float,
    unit: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
) -> Row:
    """A figure checked against a target (``>= at_least`` or ``<= at_most``)."""
    out = row(measure, value, unit)
    if at_least is not None:
        out.update(target=f">= {at_least:g}", ok=value >= at_least)
    elif at_most is not None:
        out.update(target=f"<= {at_most:g}", ok=value <= at_most)
    return out


# --- synthetic identifiers -------------------------------------------------------
# Random but well-formed: they pass the vault's normalisation and checks.  They
# belong to no one the benchmark knows of and live only in memory.

_MOBILE_SERIES = "02369"  # 070, 072, 073, 076, 079


def fake_mobile(rng: random.Random) -> str:
    """A Swedish mobile number as typed, e.g. ``073-123 45 67``."""
    digits = f"{rng.randrange(10**7):07d}"
    return f"07{rng.choice(_MOBILE_SERIES)}-{digits[:3]} {digits[3:5]} {digits[5:]}"


def fake_personnummer(rng: random.Random) -> str:
    """A Luhn-valid personnummer ``YYYYMMDD-NNNC`` born 1930-2019."""
    year, month = rng.randrange(1930, 2020), rng.randrange(1, 13)
    day = rng.randrange(1, 29)
    nine = f"{year % 100:02d}{month:02d}{day:02d}{rng.randrange(1000):03d}"
    return f"{year // 100}{nine[:6]}-{nine[6:]}{_luhn_digit(nine)}"


def _luhn_digit(nine: str) -> int:
    total = 0
    for position, char in enumerate(nine):
        n = int(char) * (2 - position % 2)
        total += n - 9 if n > 9 else n
    return (10 - total % 10) % 10


# --- a fresh embedded vault ---------------------------------------------------------


def make_vault(root: Path, policy_units: Sequence[str] = ()) -> Vault:
    """An initialised embedded vault under ``root``: SQLite (WAL, synchronous=FULL),
    a local blob store and a key file with cheap Argon2 parameters (key
    derivation is not what the benchmarks measure).  ``policy_units`` get
    recording policies for both retention classes, so ingest accepts them (R19)."""
    from callvault.adapters.audio import analyse
    from callvault.adapters.blobstore import open_blobstore
    from callvault.adapters.db.store import SqlMetadataStore
    from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
    from callvault.core.ports import SystemClock
    from callvault.services import vault as vault_service
    from callvault.services.context import Vault

    for sub in ("data", "keys"):
        (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = KeyfileProvider.create(
        root / "keys" / "callvault.key", b"benchmark passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    vault = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{root / 'data' / 'vault.db'}"),
        blobs=open_blobstore((root / "data" / "blobs").as_uri()),
        keys=keys,
        clock=SystemClock(),
        probe=analyse,
        origin=vault_service.origin_for(os.urandom(16).hex()),
    )
    vault_service.initialise(vault, bench_principal())
    if policy_units:
        from callvault.testing.lifecycle import allow_ingest

        allow_ingest(vault, policy_units, audited=True)
    return vault


def bench_principal() -> Principal:
    """The operator the benchmarks act as (every service call is audited under it)."""
    return Principal("bench", "operator")
