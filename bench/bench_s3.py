"""Ingest into an S3 blob store against a plain boto3 upload; range reads S3 vs disk.

Run: ``.venv/bin/python -m bench.bench_s3 [--files N] [--seconds S] [--reads N]``

* Server: a throwaway SeaweedFS 4.48 (``callvault.testing.seaweedfs``) on
  127.0.0.1, on the same two cores as the benchmark: its CPU time counts.
* Corpus: ``--files`` mono 8 kHz 16-bit PCM WAV tones of ``--seconds`` each
  (a different pitch per file, so none is a duplicate).  Not timed.
* Ingest: ``services.ingest.ingest`` of every file, one after another, into
  a vault whose blobs are in S3 (metadata in SQLite, as the other benches).
  Peer: ``put_object`` of the same files with a plain boto3 client, one
  after another.  Ratio = our MB/s over the peer's.  Local-disk ingest of
  the same files is shown for reference.
* Playback: ``--reads`` random 64 KiB ranged reads from one stored object,
  the way playback fetches cv1 segments, from S3 and from the local store,
  and as plain boto3 ranged GETs (the peer of our S3 read); p50 and p95.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
from pathlib import Path

from bench.common import (
    bench_principal,
    make_vault,
    percentile,
    report,
    row,
)
from callvault.core.recordings import new_object_name
from callvault.services.details import CallDetails
from callvault.services.ingest import ingest
from callvault.testing.audio import make_tone_wav
from callvault.testing.seaweedfs import SeaweedFS

UNIT = "1177-bench"
SEGMENT = 64 * 1024


def corpus(directory: Path, files: int, seconds: float) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [
        make_tone_wav(directory / f"call-{i:04d}.wav", seconds, frequency=200.0 + 7 * i)
        for i in range(files)
    ]


def details(i: int) -> CallDetails:
    started = dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i)
    return CallDetails.parse(
        care_unit=UNIT, started_at=started, today=dt.date.today(), call_id=f"s3-bench-{i}"
    )


def upload_all(client: object, bucket: str, paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        body = path.read_bytes()
        client.put_object(Bucket=bucket, Key=f"peer/{path.name}", Body=body)  # type: ignore[attr-defined]
    return time.perf_counter() - start


def range_latencies(store: object, name: str, size: int, reads: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    samples = []
    for _ in range(reads):
        offset = rng.randrange(0, max(1, size - SEGMENT))
        start = time.perf_counter()
        data = store.read(name, offset, SEGMENT)  # type: ignore[attr-defined]
        samples.append(time.perf_counter() - start)
        assert len(data) == min(SEGMENT, size - offset)
    return samples


class RawReader:
    """The peer of ``S3BlobStore.read``: one ranged GET with a plain boto3 client."""

    def __init__(self, client: object, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def read(self, key: str, offset: int, length: int) -> bytes:
        response = self.client.get_object(  # type: ignore[attr-defined]
            Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}"
        )
        return bytes(response["Body"].read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each call")
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        paths = corpus(root / "in", args.files, args.seconds)
        total_mb = sum(p.stat().st_size for p in paths) / 1e6
        with SeaweedFS(root / "seaweedfs") as server:
            bucket = server.make_bucket()
            s3_vault = make_vault(root / "s3vault", policy_units=[UNIT])
            s3_vault.blobs = server.blobstore(bucket, "vault/")
            local_vault = make_vault(root / "localvault", policy_units=[UNIT])
            # One warm-up each, so client set-up and first-volume growth are not timed.
            ingest_all_from(s3_vault, paths[:1], 0)
            ingest_all_from(local_vault, paths[:1], 0)
            upload_all(server.client(), bucket, paths[:1])
            ours = ingest_all_from(s3_vault, paths, 1)
            peer = upload_all(server.client(), bucket, paths[1:])
            local = ingest_all_from(local_vault, paths, 1)

            timed_mb = total_mb * (len(paths) - 1) / len(paths)
            name, size = new_object_name(), 8 * 1024 * 1024
            blob = random.Random(1).randbytes(size)
            s3_vault.blobs.put(name, [blob])
            local_vault.blobs.put(name, [blob])
            s3_reads = range_latencies(s3_vault.blobs, name, size, args.reads, 2)
            local_reads = range_latencies(local_vault.blobs, name, size, args.reads, 2)
            raw_reads = range_latencies(
                RawReader(server.client(), bucket), "vault/" + name, size, args.reads, 2
            )
            s3_vault.close()
            local_vault.close()

    rows = [
        row("files", len(paths) - 1),
        row("corpus", round(timed_mb, 1), "MB"),
        row("ingest into S3 (vault)", timed_mb / ours, "MB/s"),
        row("plain boto3 put_object", timed_mb / peer, "MB/s"),
        row("ingest S3 / plain boto3", (timed_mb / ours) / (timed_mb / peer), "x"),
        row("ingest into local disk (vault)", timed_mb / local, "MB/s"),
        row("ingest S3 / local disk", local / ours, "x"),
        row("64 KiB range read S3 p50", percentile(s3_reads, 50) * 1e3, "ms"),
        row("64 KiB range read S3 p95", percentile(s3_reads, 95) * 1e3, "ms"),
        row("64 KiB ranged GET plain boto3 p50", percentile(raw_reads, 50) * 1e3, "ms"),
        row(
            "range read S3 store / plain boto3 (p50)",
            percentile(s3_reads, 50) / percentile(raw_reads, 50),
            "x",
        ),
        row("64 KiB range read local p50", percentile(local_reads, 50) * 1e3, "ms"),
        row("64 KiB range read local p95", percentile(local_reads, 95) * 1e3, "ms"),
        row(
            "range read S3 / local (p50)",
            percentile(s3_reads, 50) / percentile(local_reads, 50),
            "x",
        ),
    ]
    report("s3", rows)
    return 0


def ingest_all_from(vault: object, paths: list[Path], first: int) -> float:
    principal = bench_principal()
    start = time.perf_counter()
    for i in range(first, len(paths)):
        ingest(vault, principal, paths[i], details(i))  # type: ignore[arg-type]
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())
