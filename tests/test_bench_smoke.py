"""Every benchmark still runs end to end, at tiny sizes, and reports its targets.

The figures themselves mean nothing at these sizes; what is checked is that
each benchmark completes its own consistency checks (all files ingested, ours
and raw sqlite3 agree, the audit log verifies), writes its JSON, and that
the summary picks up every target.  Results and temporary files go under
pytest's tmp_path, never into bench/results or the system temp directory.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# `bench` lives at the repository root, beside src/; pytest puts only tests/ on the path.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bench_audit, bench_crypto, bench_ingest, bench_search, run_all  # noqa: E402
from bench.common import RESULTS_ENV  # noqa: E402

MAINS: dict[str, Callable[[list[str]], Any]] = {
    "crypto": bench_crypto.main,
    "ingest": bench_ingest.main,
    "audit": bench_audit.main,
    "search": bench_search.main,
}
# Benchmarks that take a --workdir get pytest's; crypto uses the patched tempdir.
WITH_WORKDIR = {"ingest", "audit", "search"}


class Benches:
    """Runs each benchmark at most once per module (quick sizes); returns its JSON."""

    def __init__(self, results: Path, work: Path) -> None:
        self.results, self.work = results, work
        self._done: dict[str, dict[str, Any]] = {}

    def __call__(self, name: str) -> dict[str, Any]:
        if name not in self._done:
            argv = list(run_all.QUICK_ARGS[name])
            if name in WITH_WORKDIR:
                argv += ["--workdir", str(self.work)]
            MAINS[name](argv)
            self._done[name] = json.loads((self.results / f"{name}.json").read_text())
        return self._done[name]


@pytest.fixture(scope="module")
def benches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Benches]:
    base = tmp_path_factory.mktemp("bench")
    runner = Benches(base / "results", base / "work")
    runner.work.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RESULTS_ENV, str(runner.results))
        mp.setattr(tempfile, "tempdir", str(runner.work))
        yield runner
    assert not any(runner.work.iterdir()), "a benchmark left files behind"


def measures(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{r['measure']} [{r.get('unit', '')}]": r for r in data["rows"]}


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in data["rows"] if r.get("target")]


def assert_finite_positive(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        assert isinstance(r["value"], float | int) and math.isfinite(r["value"]), r
        assert r["value"] > 0, r


def test_crypto_benchmark_runs_and_reports_ratios_against_openssl_and_age(
    benches: Benches,
) -> None:
    data = benches("crypto")
    ratios = [r for r in data["rows"] if r.get("unit") == "x"]
    assert any("openssl" in r["measure"] for r in ratios)
    assert any("age" in r["measure"] for r in ratios)
    assert_finite_positive(ratios)


def test_ingest_benchmark_ingests_every_generated_file_and_compares_with_cp(
    benches: Benches,
) -> None:
    rows = measures(benches("ingest"))
    assert rows["files [files]"]["value"] == 10
    # 30 % MP3 of 10 files: 3, split CBR/VBR; the rest WAV in three encodings.
    assert rows["mix []"]["value"] == "alaw 2, mp3-cbr 2, mp3-vbr 1, pcm16 3, ulaw 2"
    ratio = rows["ingest / cp -r (MB/s) [x]"]
    assert ratio["target"] == ">= 0.6"
    assert_finite_positive([ratio, rows["ours: ingest [MB/s]"]])
    phases = [r["value"] for key, r in rows.items() if key.startswith("phase:")]
    assert len(phases) == 4 and sum(phases) == pytest.approx(100, abs=0.01)


def test_audit_benchmark_reports_both_commit_modes_and_a_verified_log(
    benches: Benches,
) -> None:
    data = benches("audit")
    assert [r["target"] for r in targets(data)] == [">= 3000", ">= 20000"]
    rows = measures(data)
    # 20 single + 200 grouped entries, plus the vault's own init, checkpoint entries.
    assert rows["audit verify: log size [entries]"]["value"] >= 220
    assert_finite_positive([r for r in data["rows"] if r.get("unit") in ("x", "entries/s")])


def test_search_benchmark_finds_known_rows_and_reports_p99_against_target(
    benches: Benches,
) -> None:
    data = benches("search")
    assert [r["target"] for r in targets(data)] == ["<= 10", "<= 10"]
    rows = measures(data)
    assert rows["by caller: mean results []"]["value"] >= 1
    assert "ix_recordings_caller" in rows["by caller: query plan []"]["value"]
    assert_finite_positive([r for r in data["rows"] if r.get("unit") in ("x", "ms")])


def test_summary_lists_every_target_of_every_benchmark(benches: Benches) -> None:
    expected = {name: len(targets(benches(name))) for name in run_all.BENCHMARKS}
    rows = run_all.summarise(list(run_all.BENCHMARKS), 0.0, benches.results)
    for name, count in expected.items():
        assert sum(1 for r in rows if r["bench"] == name and r["target"]) == count
    assert all(r["measure"] != "no fresh results" for r in rows)


def test_summary_flags_a_benchmark_whose_results_are_stale(benches: Benches) -> None:
    benches("audit")
    rows = run_all.summarise(["audit"], time.time() + 3600, benches.results)
    assert rows == [{"bench": "audit", "measure": "no fresh results", "ok": False}]


# --- http: callvault serve against nginx, then concurrent players ---------------------------
# Registered here so the summary test above covers it too; nginx is a Debian package the
# benchmark starts itself (make system-deps installs it), never skipped when missing.

from bench import bench_http  # noqa: E402

MAINS["http"] = bench_http.main
WITH_WORKDIR.add("http")


def test_http_benchmark_serves_ranges_from_both_servers_and_streams_to_players(
    benches: Benches,
) -> None:
    assert bench_http.nginx_binary(), "nginx is missing: apt-get install nginx"
    rows = measures(benches("http"))
    for server in ("callvault", "nginx"):
        assert rows[f"{server}: failed requests []"]["value"] == 0
        assert_finite_positive([rows[f"{server}: throughput [req/s]"], rows[f"{server}: p99 [ms]"]])
    assert rows["ranges differing from nginx []"]["value"] == 0
    assert rows["callvault / nginx (req/s) [x]"]["target"] == ">= 0.5"
    assert rows["players: requests []"]["value"] >= 10
    assert rows["players: failed requests []"]["value"] == 0
    assert rows["players: stalls [chunks]"]["target"] == "<= 0"


# --- extract: the patient's log extract against a plain SQL list of the same rows -----------

from bench import bench_extract  # noqa: E402

MAINS["extract"] = bench_extract.main
WITH_WORKDIR.add("extract")


def test_extract_benchmark_builds_a_verified_extract_of_the_listed_rows(
    benches: Benches,
) -> None:
    rows = measures(benches("extract"))
    assert rows["verified ok []"]["value"] is True
    listed = rows["plain SQL rows listed []"]["value"]
    assert rows["extract entries (accesses + ingests) []"]["value"] == listed == 52
    assert rows["extract, median [s]"]["target"] == "<= 2"
    assert_finite_positive([rows["extract / plain SQL [x]"]])


# --- import: `callvault import` of a 1177-style tree against cp -r of the same tree ---------

from bench import bench_import  # noqa: E402

MAINS["import"] = bench_import.main
WITH_WORKDIR.add("import")


def test_import_benchmark_imports_the_whole_tree_and_projects_the_1177_archive(
    benches: Benches,
) -> None:
    rows = measures(benches("import"))
    assert rows["files [files]"]["value"] == 6
    assert rows["imported and verified [files]"]["value"] == 6
    ratio = rows["import / cp -r (MB/s) [x]"]
    assert ratio["target"] == ">= 0.6"
    estimate = rows[f"{bench_import.ESTIMATE} [days]"]
    assert_finite_positive([ratio, rows["ours: callvault import [files/s]"], estimate])


# --- s3: ingest into SeaweedFS against plain boto3 puts; range reads S3 vs disk -------------

from bench import bench_s3  # noqa: E402

MAINS["s3"] = bench_s3.main
WITH_WORKDIR.add("s3")


def test_s3_benchmark_ingests_into_seaweedfs_and_times_range_reads(benches: Benches) -> None:
    rows = measures(benches("s3"))
    assert rows["files []"]["value"] == 2  # the first file is the untimed warm-up
    assert_finite_positive(
        [rows["ingest S3 / plain boto3 [x]"], rows["range read S3 / local (p50) [x]"]]
    )


# --- scale: searches of an archive's size on SQLite and PostgreSQL, against the raw SELECT ---

from bench import bench_scale  # noqa: E402

MAINS["scale"] = bench_scale.main
WITH_WORKDIR.add("scale")


def test_scale_benchmark_searches_both_databases_through_their_indexes(
    benches: Benches,
) -> None:
    data = benches("scale")
    rows = measures(data)
    for db in ("SQLite", "PostgreSQL"):
        for kind in bench_scale.KINDS:
            assert rows[f"{db} {kind.label}: index used []"]["value"] == kind.index
            assert_finite_positive([rows[f"{db} {kind.label}: ours / raw SELECT p99 [x]"]])
    goals = sorted(r["target"] for r in targets(data))
    expected = sorted(f"<= {k.target_ms:g}" for k in bench_scale.KINDS if k.target_ms) * 2
    assert goals == sorted(expected) and goals.count("<= 10") == 6
    assert rows["1177 archive: recordings [recordings]"]["value"] == 2_700_000


# --- retention: the sweep against plain DELETE of the same rows ------------------------------

from bench import bench_retention  # noqa: E402

MAINS["retention"] = bench_retention.main
WITH_WORKDIR.add("retention")


def test_retention_benchmark_shreds_every_row_and_compares_with_delete(benches: Benches) -> None:
    data = benches("retention")
    assert [r["target"] for r in targets(data)] == [">= 1000"]
    rows = measures(data)
    assert rows["recordings shredded [recordings]"]["value"] == 2000
    assert rows["audit entries verified [entries]"]["value"] >= 2000
    assert_finite_positive(
        [rows["ours / peer (rows per second) [x]"], rows["ours: shredded per second [rec/s]"]]
    )


# --- jobs: N workers on a CPU-bound scrub, against one process without the queue -------------

from bench import bench_jobs  # noqa: E402

MAINS["jobs"] = bench_jobs.main
WITH_WORKDIR.add("jobs")


def test_jobs_benchmark_scrubs_every_recording_with_each_worker_count(benches: Benches) -> None:
    data = benches("jobs")
    rows = measures(data)
    ratios = [r for name, r in rows.items() if name.endswith("[x]")]
    assert ratios, sorted(rows)
    assert_finite_positive(ratios)
