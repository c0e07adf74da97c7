"""Signed-in range requests through ``callvault serve`` against nginx serving the
plaintext files, both over TLS on loopback; then 500 concurrent players.

Run: ``.venv/bin/python -m bench.bench_http [--recordings N] [--seconds S] [--players P]``

* Data: ``--recordings`` (20) WAVs of ``--minutes`` (60) of 8 kHz 16-bit mono
  noise (57.6 MB an hour), ingested in process into a fresh vault made by
  ``callvault init``; the same files stay on disk, in clear, for nginx.
* Ours: ``callvault serve --workers W`` (uvicorn, ``--workers`` (1) processes, TLS with the vault's
  self-signed certificate) on a free loopback port.  One supervisor signs in
  over HTTP (password + TOTP) and opens a playback grant per recording; every
  request then carries the session cookie.  Each range is authenticated,
  authorised against the grant, read and decrypted (1-2 cv1 segments).
* Peer: nginx (Debian package, as many worker processes as ours,
  ``sendfile on``, ``access_log off``) serving the plaintext WAVs
  over TLS with the same certificate: the insecure baseline the vault
  replaces.
* Load: the same generator for both servers, ``wrk`` (Debian package, C,
  HTTP/1.1 keep-alive, two threads) with a Lua script that asks, back to
  back on ``--connections`` (32) connections, for a random ``--range-kib``
  (64 KiB) byte range of a random recording; ``--rounds`` (3) alternating
  rounds of ``--seconds`` (5) per server, each after a one-second warm-up.
  A generator in Python caps out far below nginx and would flatter the
  ratio.  Any answer but 206 counts as an error; before the load, 50 random
  ranges are fetched from both servers and compared byte for byte.
* Players: ``--players`` (500) concurrent players (asyncio and httpx in this
  process), each on its own TLS connection, each streaming a recording at
  8 kHz 16-bit (16,000 B/s): a ``--player-chunk-kib`` (64 KiB) range every
  chunk's worth of audio (4.1 s for 64 KiB), for ``--sustain-seconds`` (60).
  A player buffers one chunk, so a chunk that arrives later than one chunk's
  duration after it was due is an audible stall.  The players share the
  one session and its grants (a person may open 60 playback grants an
  hour).
* Targets: ours >= 0.5x nginx's requests/s; p99 <= 20 ms at 32 concurrent
  streams; no stall among the players.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import random
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row, bench_principal, percentile, report, row, target_row
from callvault.testing.audio import make_noise_wav_streaming
from callvault.testing.http import TestAccount, enrolled_account

RATE_BYTES = 16_000  # 8 kHz, 16-bit, mono
UNIT = "unit-bench"
REASON = {"reason": "Benchmark of streamed playback"}
TARGET_RATIO = 0.5
TARGET_P99_MS = 20.0
STALL_SECONDS = 1.0
MAX_RECORDINGS = 30  # playback grants are opened twice; a person may open 60 an hour
GRANT_SECONDS = 600


@dataclass(frozen=True)
class Target:
    """One recording as a server offers it: the path to ask and its size in bytes."""

    path: str
    size: int


@dataclass(frozen=True)
class Round:
    """What ``wrk`` measured in one round against one server."""

    requests: int
    seconds: float
    errors: int  # answers other than 2xx/3xx, and socket errors
    p50_ms: float
    p99_ms: float
    cpu_seconds: float = 0.0  # used by the server's processes during the round


def combined(rounds: list[Round]) -> dict[str, float]:
    """Requests/s over all rounds; the median round's p50 and the worst round's p99."""
    served = sum(r.requests for r in rounds)
    return {
        "requests": served,
        "rate": sum(r.requests for r in rounds) / sum(r.seconds for r in rounds),
        "p50": statistics.median(r.p50_ms for r in rounds),
        "p99": max(r.p99_ms for r in rounds),
        "errors": sum(r.errors for r in rounds),
        # CPU per request is what a busy, shared machine disturbs least.
        "cpu_ms": 1000
        * sum(r.cpu_seconds for r in rounds)
        / max(sum(r.requests for r in rounds), 1),
    }


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and all its descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier += children
    return sum(used.get(p, 0.0) for p in tree)


# --- corpus and vault ------------------------------------------------------------------------


def generate(plain: Path, count: int, minutes: float) -> list[Path]:
    plain.mkdir()
    files = [plain / f"call-{i:03d}.wav" for i in range(count)]
    for i, path in enumerate(files):
        make_noise_wav_streaming(path, minutes * 60, rate=8000, seed=1000 + i)
    return files


def vault_env(work: Path, port: int) -> dict[str, str]:
    secret = work / "passphrase"
    secret.write_text(secrets.token_urlsafe(24) + "\n")
    secret.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env.update(
        CALLVAULT_HOME=str(work / "home"),
        CALLVAULT_PASSPHRASE_FILE=str(secret),
        CALLVAULT_BIND=f"127.0.0.1:{port}",
        TMPDIR=str(work),
    )
    return env


def callvault(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "callvault", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"callvault {args[0]} failed: {done.stderr.strip()}")


def fill_vault(env: dict[str, str], files: list[Path]) -> tuple[list[str], TestAccount]:
    """Init, ingest every file in process, enrol the player; the recordings' ids."""
    from callvault.bootstrap import open_vault
    from callvault.config import Settings
    from callvault.services import audit
    from callvault.services.details import CallDetails
    from callvault.services.ingest import ingest
    from callvault.testing.http import ensure_care_units
    from callvault.testing.lifecycle import allow_ingest

    callvault(env, "init")
    vault = open_vault(Settings.from_env(env))
    try:
        ensure_care_units(vault, [UNIT])
        allow_ingest(vault, [UNIT])
        ids = []
        for i, path in enumerate(files):
            details = CallDetails.parse(
                care_unit=UNIT,
                started_at=f"2026-03-01T{8 + i // 60:02d}:{i % 60:02d}:00+01:00",
                today=dt.date(2026, 3, 2),
                agent="bench.nurse",
                call_id=f"bench-{i}",
            )
            ids.append(str(ingest(vault, bench_principal(), path, details).recording_id))
        account = enrolled_account(vault, "bench.player", role="supervisor", care_units=[UNIT])
        audit.seal(vault)
    finally:
        vault.close()
    return ids, account


# --- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError("server did not listen within 60 s")


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[int]:
    """A server process (ours or nginx), stopped with SIGTERM (SIGKILL after 20 s); its pid."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    try:
        wait_listening(port, process, log)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError("nginx is missing: apt-get install nginx (Debian package)")
    return found


def nginx_conf(root: Path, plain: Path, tls: Path, port: int, workers: int) -> Path:
    """A minimal nginx: ``workers`` processes, TLS with the vault's certificate, static files."""
    root.mkdir()
    temps = "\n".join(
        f"    {kind}_temp_path {root / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, workers would otherwise drop to an account that cannot enter the 0700 work dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = root / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes {workers};
daemon off;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    types {{ audio/wav wav; }}
    default_type application/octet-stream;
{temps}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {tls / "cert.pem"};
        ssl_certificate_key {tls / "key.pem"};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {plain};
        location / {{ }}
    }}
}}
"""
    )
    return conf


# --- signing in ------------------------------------------------------------------------------


def tls_client(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


def sign_in(base: str, ctx: ssl.SSLContext, account: TestAccount) -> dict[str, str]:
    """Password, then TOTP; the headers a signed-in browser sends (cookie, CSRF token)."""
    with httpx.Client(base_url=base, verify=ctx, timeout=30) as client:
        body = {"username": account.username, "password": account.password}
        client.post("/api/v1/auth/login", json=body).raise_for_status()
        second = account.second_factor(dt.datetime.now(dt.UTC))
        answer = client.post("/api/v1/auth/totp", json=second)
        answer.raise_for_status()
        return {
            "Cookie": f"__Host-cv_session={client.cookies['__Host-cv_session']}",
            "X-CSRF-Token": answer.json()["csrf_token"],
        }


def open_grants(base: str, ctx: ssl.SSLContext, headers: dict[str, str], ids: list[str]) -> None:
    """A playback grant (10 minutes) for every recording, in this session."""
    with httpx.Client(base_url=base, verify=ctx, timeout=30, headers=headers) as client:
        for rid in ids:
            client.post(f"/api/v1/recordings/{rid}/playback", json=REASON).raise_for_status()


# --- the load generator --------------------------------------------------------------------

WRK_SCRIPT = """-- Random byte ranges of random recordings (written by bench.bench_http).
local targets = {{ {targets} }}
local length = {length}
local headers = {{ {headers} }}
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("seed", threads * 7919 + {seed})
end
function init(args)
    math.randomseed(seed)
end
function request()
    local t = targets[math.random(#targets)]
    local first = math.random(0, t[2] - length)
    headers["Range"] = "bytes=" .. first .. "-" .. (first + length - 1)
    return wrk.format("GET", t[1], headers)
end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("CVBENCH %d %d %d %d %d\\n", summary.requests, summary.duration,
        e.status + e.connect + e.read + e.write + e.timeout,
        latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is missing: apt-get install wrk (Debian package)")
    return found


def wrk_script(
    path: Path, targets: list[Target], headers: dict[str, str], length: int, seed: int
) -> Path:
    listed = ", ".join(f'{{"{t.path}", {t.size}}}' for t in targets)
    pairs = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
    path.write_text(WRK_SCRIPT.format(targets=listed, headers=pairs, length=length, seed=seed))
    return path


def wrk(base: str, script: Path, connections: int, seconds: float) -> Round:
    """One closed-loop round: ``connections`` connections asking back to back."""
    options = f"-t {min(2, connections)} -c {connections} -d {seconds:g}s --timeout 10s"
    argv = [wrk_binary(), *options.split(), "-s", str(script), base]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("CVBENCH "))
    requests, micros, errors, p50, p99 = (int(x) for x in line.split()[1:])
    return Round(requests, micros / 1e6, errors, p50 / 1000, p99 / 1000)


Side = tuple[str, dict[str, str], list[Target], int]  # base URL, headers, targets, server pid


def throughput(
    args: argparse.Namespace, work: Path, sides: dict[str, Side]
) -> dict[str, list[Round]]:
    """Alternating rounds per server (drift hits both alike), each after a warm-up."""
    length = args.range_kib * 1024
    results: dict[str, list[Round]] = {name: [] for name in sides}
    for n in range(args.rounds):
        for name, (base, headers, targets, pid) in sides.items():
            script = wrk_script(work / f"wrk-{name}.lua", targets, headers, length, n)
            wrk(base, script, args.connections, 1)
            before = tree_cpu_seconds(pid)
            measured = wrk(base, script, args.connections, args.seconds)
            cpu = tree_cpu_seconds(pid) - before
            results[name].append(dataclasses.replace(measured, cpu_seconds=cpu))
    return results


async def fetch(client: httpx.AsyncClient, target: Target, start: int, length: int) -> bool:
    """One range request; True if it answered 206 with exactly ``length`` bytes."""
    stop = min(start + length, target.size) - 1
    try:
        response = await client.get(target.path, headers={"Range": f"bytes={start}-{stop}"})
    except httpx.HTTPError:
        return False
    return response.status_code == 206 and len(response.content) == stop - start + 1


@dataclass
class PlayerStats:
    latencies: list[float] = field(default_factory=list)
    stalls: int = 0  # chunks that arrived after the buffered one had played out
    slow: int = 0  # requests over STALL_SECONDS
    errors: int = 0
    lag: float = 0.0  # the longest a player stood silent, in seconds


async def players(
    base: str, ctx: ssl.SSLContext, headers: dict[str, str], targets: list[Target], args: Any
) -> PlayerStats:
    """``args.players`` players, each on its own connection, streaming in real time."""
    seconds, chunk = args.sustain_seconds, args.player_chunk_kib * 1024
    interval = chunk / RATE_BYTES
    stats = PlayerStats()
    start = time.perf_counter() + 2.0  # room to open the connections
    end = start + seconds

    async def player(n: int) -> None:
        rng = random.Random(7919 + n)
        target = rng.choice(targets)
        position = rng.randrange(0, max(1, target.size - int(seconds * RATE_BYTES) - chunk))
        first = start + rng.uniform(0, interval)  # players do not start in lockstep
        one = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(
            base_url=base, verify=ctx, headers=headers, timeout=60, limits=one
        ) as client:
            k = 0
            while (due := first + k * interval) < end:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                began = time.perf_counter()
                ok = await fetch(client, target, position % (target.size - chunk), chunk)
                done = time.perf_counter()
                stats.latencies.append(done - began)
                stats.errors += not ok
                stats.slow += done - began > STALL_SECONDS
                stats.stalls += done > due + interval
                stats.lag = max(stats.lag, done - (due + interval))
                position += chunk
                k += 1

    await asyncio.gather(*(player(n) for n in range(args.players)))
    return stats


def compare_servers(
    ours: str,
    session: dict[str, str],
    peer: str,
    ctx: ssl.SSLContext,
    pairs: list[tuple[Target, Target]],
    length: int,
    checks: int = 50,
) -> int:
    """Fetch the same random ranges from both servers; the number that differ."""
    rng = random.Random(5)
    differ = 0
    with (
        httpx.Client(base_url=ours, verify=ctx, headers=session) as a,
        httpx.Client(base_url=peer, verify=ctx) as b,
    ):
        for _ in range(checks):
            mine, theirs = rng.choice(pairs)
            start = rng.randrange(0, mine.size - length)
            header = {"Range": f"bytes={start}-{start + length - 1}"}
            got = a.get(mine.path, headers=header)
            want = b.get(theirs.path, headers=header)
            differ += got.status_code != 206 or got.content != want.content
    return differ


# --- the run ------------------------------------------------------------------------------------


def warm_page_cache(*roots: Path) -> None:
    """Read everything once, so neither server pays for the disk."""
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                with path.open("rb") as f:
                    while f.read(1 << 20):
                        pass


def rows_for(
    args: argparse.Namespace, rounds: dict[str, list[Round]], stats: PlayerStats, differ: int
) -> list[Row]:
    ours, peer = combined(rounds["callvault"]), combined(rounds["nginx"])
    rows = [
        row("recordings", args.recordings, "files"),
        row("audio per recording", args.minutes, "min"),
        row("concurrent connections", args.connections, ""),
        row("range size", args.range_kib, "KiB"),
        row("ranges differing from nginx", differ, ""),
    ]
    for name, figures in (("callvault", ours), ("nginx", peer)):
        rows += [
            row(f"{name}: requests", figures["requests"], ""),
            row(f"{name}: throughput", figures["rate"], "req/s"),
            row(f"{name}: p50", figures["p50"], "ms"),
            row(f"{name}: p99", figures["p99"], "ms"),
            row(f"{name}: failed requests", figures["errors"], ""),
            row(f"{name}: server CPU per request", figures["cpu_ms"], "ms"),
        ]
    rows += [
        target_row(
            "callvault / nginx (req/s)", ours["rate"] / peer["rate"], "x", at_least=TARGET_RATIO
        ),
        row("callvault / nginx (p99)", ours["p99"] / peer["p99"], "x"),
        row("callvault / nginx (CPU per request)", ours["cpu_ms"] / peer["cpu_ms"], "x"),
        target_row(
            f"callvault p99 at {args.connections} streams", ours["p99"], "ms", at_most=TARGET_P99_MS
        ),
    ]
    return rows + player_rows(args, stats)


def player_rows(args: argparse.Namespace, stats: PlayerStats) -> list[Row]:
    lat = [x * 1000 for x in stats.latencies] or [float("nan")]
    return [
        row("players", args.players, ""),
        row("players: sustained", args.sustain_seconds, "s"),
        row("players: chunk", args.player_chunk_kib, "KiB"),
        row("players: requests", len(stats.latencies), ""),
        row("players: p50", percentile(lat, 50), "ms"),
        row("players: p99", percentile(lat, 99), "ms"),
        row("players: max", max(lat), "ms"),
        row(f"players: requests over {STALL_SECONDS:g} s", stats.slow, ""),
        row("players: failed requests", stats.errors, ""),
        row("players: longest silence", stats.lag, "s"),
        target_row("players: stalls", stats.stalls, "chunks", at_most=0),
    ]


def run(args: argparse.Namespace, work: Path) -> list[Row]:
    files = generate(work / "plain", args.recordings, args.minutes)
    ours_port, peer_port = free_port(), free_port()
    env = vault_env(work, ours_port)
    ids, account = fill_vault(env, files)
    home = Path(env["CALLVAULT_HOME"])
    conf = nginx_conf(work / "nginx", work / "plain", home / "tls", peer_port, args.workers)
    warm_page_cache(work / "plain", home / "data")
    ctx = tls_client(home / "tls" / "cert.pem")
    ours_base, peer_base = f"https://127.0.0.1:{ours_port}", f"https://127.0.0.1:{peer_port}"
    serve = [sys.executable, "-m", "callvault", "serve", "--workers", str(args.workers)]
    nginx = [nginx_binary(), "-p", str(work / "nginx"), "-c", str(conf), "-e", "stderr"]
    sizes = [f.stat().st_size for f in files]
    ours_targets = [
        Target(f"/api/v1/recordings/{r}/audio", n) for r, n in zip(ids, sizes, strict=True)
    ]
    peer_targets = [Target(f"/{f.name}", n) for f, n in zip(files, sizes, strict=True)]
    with (
        running(serve, env, ours_port, work / "serve.log") as ours_pid,
        running(nginx, env, peer_port, work / "nginx" / "stderr.log") as peer_pid,
    ):
        signed_in = sign_in(ours_base, ctx, account)
        session = {"Cookie": signed_in["Cookie"]}  # GET needs no CSRF token
        open_grants(ours_base, ctx, signed_in, ids)
        pairs = list(zip(ours_targets, peer_targets, strict=True))
        differ = compare_servers(ours_base, session, peer_base, ctx, pairs, args.range_kib * 1024)
        sides = {
            "callvault": (ours_base, session, ours_targets, ours_pid),
            "nginx": (peer_base, {}, peer_targets, peer_pid),
        }
        rounds = throughput(args, work, sides)
        open_grants(ours_base, ctx, signed_in, ids)  # the first ones may be near their end
        stats = asyncio.run(players(ours_base, ctx, session, ours_targets, args))
    return rows_for(args, rounds, stats, differ)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--recordings", type=int, default=20, help="recordings to serve")
    parser.add_argument("--minutes", type=float, default=60.0, help="length of each recording")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument("--range-kib", type=int, default=64, help="size of each range")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per server")
    parser.add_argument("--players", type=int, default=500, help="concurrent players")
    parser.add_argument("--sustain-seconds", type=float, default=60.0, help="players' run")
    parser.add_argument("--player-chunk-kib", type=int, default=64, help="range per request")
    parser.add_argument("--workers", type=int, default=1, help="processes of each server")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir")
    args = parser.parse_args(argv)
    if not 1 <= args.recordings <= MAX_RECORDINGS:
        parser.error(f"--recordings must be 1..{MAX_RECORDINGS} (playback grants an hour)")
    if (
        args.rounds * (args.seconds + 1) * 2 > GRANT_SECONDS
        or args.sustain_seconds > GRANT_SECONDS - 30
    ):
        parser.error("each phase must fit in a playback grant's 10 minutes")
    with tempfile.TemporaryDirectory(prefix="cvbench-http-", dir=args.workdir) as tmp:
        rows = run(args, Path(tmp))
    report("http", rows)


if __name__ == "__main__":
    main()
