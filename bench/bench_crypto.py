"""cv1 throughput and random-access latency, against `openssl speed` and `age`.

Run: ``.venv/bin/python -m bench.bench_crypto [--size-mib N] [--seconds S] [--reads R]``

* Throughput: a file of random bytes (``--size-mib``, default 1024) is encrypted
  and decrypted file to file, streaming in 1 MiB reads, so memory stays flat
  (the peak RSS is reported).  The same is measured in memory, which is what
  ``openssl speed -evp aes-256-gcm -bytes 65536`` measures, and ``age`` encrypts
  and decrypts the same file.  Files live in a temporary directory and mostly
  in the page cache: this measures the CPU path, not the disk.
* Random access: a one-hour 8 kHz 16-bit mono WAV of noise (57.6 MB) is sealed;
  1 KiB at minute 59 is read with ``decrypt_range`` (the file opened per
  request, as a blob store does) and compared with open+seek+read of the
  plaintext file, interleaved, p50/p99 over ``--reads`` reads.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import resource
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bench.common import percentile, report
from callvault.core import format as cv1

MIB = 1 << 20
CHUNK = MIB
MB = 1e6  # throughput is reported in MB/s (10^6 bytes), like openssl's "k" = 1000 bytes
ENCRYPT_VS_OPENSSL, VS_AGE, P50_VS_PLAIN = 0.8, 1.2, 3.0
WAV_RATE, WAV_SECONDS, WAV_HEADER = 8000, 3600, 44

Row = dict[str, Any]


def keystream(size: int, block: int = 8 * MIB) -> Iterator[bytes]:
    """Pseudo-random bytes fast (AES-CTR over zeros); os.urandom is the bottleneck otherwise."""
    enc = Cipher(algorithms.AES(secrets.token_bytes(32)), modes.CTR(bytes(16))).encryptor()
    zeros = bytes(block)
    while size > 0:
        take = min(block, size)
        yield enc.update(zeros[:take])
        size -= take


def read_chunks(f: io.FileIO) -> Iterator[memoryview]:
    """1 MiB views into one reused buffer: no per-chunk allocation."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := f.readinto(buf):
        yield view[:n]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def file_reader(fd: int) -> Callable[[int, int], bytes]:
    return lambda offset, length: os.pread(fd, length, offset)


def encrypt_file(dek: bytes, ad: bytes, src: Path, dst: Path) -> None:
    with src.open("rb", buffering=0) as f, dst.open("wb", buffering=0) as out:
        for piece in cv1.encrypt_stream(dek, ad, read_chunks(f)):
            out.write(piece)


def decrypt_file(dek: bytes, ad: bytes, src: Path, dst: Path) -> None:
    fd = os.open(src, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        with dst.open("wb", buffering=0) as out:
            for piece in cv1.decrypt_stream(dek, ad, file_reader(fd), size):
                out.write(piece)
    finally:
        os.close(fd)


def copy_file(src: Path, dst: Path) -> None:
    """The I/O floor: the same 1 MiB read/write loop with no crypto."""
    with src.open("rb", buffering=0) as f, dst.open("wb", buffering=0) as out:
        for chunk in read_chunks(f):
            out.write(chunk)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as f:
        for chunk in read_chunks(f):
            digest.update(chunk)
    return digest.hexdigest()


def in_memory(dek: bytes, ad: bytes, total: int) -> tuple[float, float]:
    """Seconds to encrypt and decrypt ``total`` bytes held in memory (64 MiB, reused)."""
    data = memoryview(b"".join(keystream(min(total, 64 * MIB))))
    passes = max(1, total // len(data))
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]

    def encrypt() -> None:
        for _ in range(passes):
            for _piece in cv1.encrypt_stream(dek, ad, chunks):
                pass

    ct = memoryview(b"".join(cv1.encrypt_stream(dek, ad, chunks)))

    def decrypt() -> None:
        for _ in range(passes):
            for _piece in cv1.decrypt_stream(dek, ad, lambda o, n: ct[o : o + n], len(ct)):
                pass

    scale = total / (passes * len(data))
    return timed(encrypt) * scale, timed(decrypt) * scale


def openssl_speed(seconds: int) -> float:
    """Bytes per second of ``openssl speed -evp aes-256-gcm`` at 64 KiB blocks."""
    cmd = ["openssl", "speed", "-evp", "aes-256-gcm", "-bytes", "65536", "-seconds", str(seconds)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    match = re.search(r"^AES-256-GCM\s+([\d.]+)k\s*$", out, re.MULTILINE)
    if match is None:
        raise SystemExit(f"could not parse openssl speed output:\n{out}")
    return float(match.group(1)) * 1000


def age_times(tmp: Path, src: Path, repeat: int) -> tuple[float, float]:
    """Best wall seconds for ``age -r`` encrypt and ``age -d -i`` decrypt of ``src``."""
    for tool in ("age", "age-keygen"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install the Debian package 'age'")
    identity = tmp / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
    ).stdout.strip()
    sealed, opened = tmp / "age.bin", tmp / "age.out"
    encrypt = ["age", "-r", recipient, "-o", str(sealed), str(src)]
    decrypt = ["age", "-d", "-i", str(identity), "-o", str(opened), str(sealed)]
    enc = best_of(repeat, lambda: subprocess.run(encrypt, check=True), sealed)
    subprocess.run(encrypt, check=True)
    dec = best_of(repeat, lambda: subprocess.run(decrypt, check=True), opened)
    sealed.unlink()
    return enc, dec


def best_of(repeat: int, fn: Callable[[], object], output: Path) -> float:
    """Fastest of ``repeat`` runs; ``output`` is removed after each so page-cache state matches."""
    times = []
    for _ in range(repeat):
        times.append(timed(fn))
        output.unlink()
    return min(times)


def mbps(size: int, seconds: float) -> float:
    return size / seconds / MB


def ratio_row(measure: str, value: float, target: float | None = None) -> Row:
    row: Row = {"measure": measure, "value": value, "unit": "x"}
    if target is not None:
        row.update(target=f">= {target}", ok=value >= target)
    return row


def file_round_trip(tmp: Path, size: int, repeat: int) -> dict[str, float]:
    """Seconds (best of ``repeat``) for plain copy, cv1 encrypt and cv1 decrypt, file to file."""
    dek = secrets.token_bytes(32)
    ad = cv1.associated_data(uuid.uuid4(), b"bench", "application/octet-stream")
    src, sealed, opened = tmp / "plain.bin", tmp / "sealed.cv1", tmp / "opened.bin"
    copied = tmp / "copy.bin"
    times = {
        "copy": best_of(repeat, lambda: copy_file(src, copied), copied),
        "encrypt": best_of(repeat, lambda: encrypt_file(dek, ad, src, sealed), sealed),
    }
    encrypt_file(dek, ad, src, sealed)
    times["decrypt"] = best_of(repeat, lambda: decrypt_file(dek, ad, sealed, opened), opened)
    decrypt_file(dek, ad, sealed, opened)
    if sealed.stat().st_size != cv1.ciphertext_size(size) or sha256_file(opened) != sha256_file(
        src
    ):
        raise SystemExit("round trip through files did not reproduce the input")
    sealed.unlink()
    opened.unlink()
    return times


def throughput(tmp: Path, size: int, seconds: int, repeat: int) -> list[Row]:
    src = tmp / "plain.bin"
    with src.open("wb") as f:
        for block in keystream(size):
            f.write(block)
    files = file_round_trip(tmp, size, repeat)
    # Taken before the in-memory run, which holds 128 MiB on purpose.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dek = secrets.token_bytes(32)
    m_enc, m_dec = in_memory(dek, cv1.associated_data(uuid.uuid4(), b"bench", "x/y"), size)
    ossl = openssl_speed(seconds) / MB
    a_enc, a_dec = age_times(tmp, src, repeat)
    src.unlink()
    speeds = {
        "plain copy file->file (page-cache I/O floor)": mbps(size, files["copy"]),
        "cv1 encrypt file->file": mbps(size, files["encrypt"]),
        "cv1 decrypt file->file": mbps(size, files["decrypt"]),
        "cv1 encrypt in memory": mbps(size, m_enc),
        "cv1 decrypt in memory": mbps(size, m_dec),
        "openssl speed -evp aes-256-gcm -bytes 65536": ossl,
        "age encrypt file->file": mbps(size, a_enc),
        "age decrypt file->file": mbps(size, a_dec),
    }
    rows: list[Row] = [{"measure": k, "value": v, "unit": "MB/s"} for k, v in speeds.items()]
    rows.append({"measure": "peak RSS after file->file runs", "value": rss, "unit": "MiB"})
    rows.append({"measure": "OpenSSL: openssl CLI; cryptography", "value": openssl_versions()})
    return [
        *rows,
        ratio_row("encrypt in memory / openssl", mbps(size, m_enc) / ossl, ENCRYPT_VS_OPENSSL),
        ratio_row("decrypt in memory / openssl", mbps(size, m_dec) / ossl, ENCRYPT_VS_OPENSSL),
        ratio_row(
            "encrypt file->file / openssl", mbps(size, files["encrypt"]) / ossl, ENCRYPT_VS_OPENSSL
        ),
        ratio_row(
            "decrypt file->file / openssl", mbps(size, files["decrypt"]) / ossl, ENCRYPT_VS_OPENSSL
        ),
        ratio_row("encrypt file->file / plain copy", files["copy"] / files["encrypt"]),
        ratio_row("decrypt file->file / plain copy", files["copy"] / files["decrypt"]),
        ratio_row("encrypt file->file / age", a_enc / files["encrypt"], VS_AGE),
        ratio_row("decrypt file->file / age", a_dec / files["decrypt"], VS_AGE),
    ]


def openssl_versions() -> str:
    """The `openssl` binary's version and the one cryptography is built on: they differ."""
    from cryptography.hazmat.backends.openssl.backend import backend

    cli = subprocess.run(["openssl", "version"], check=True, capture_output=True, text=True)
    return f"{cli.stdout.split()[1]}; {backend.openssl_version_text().split()[1]}"


def make_noise_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(WAV_RATE)
        for block in keystream(WAV_SECONDS * WAV_RATE * 2, block=WAV_RATE * 2 * 60):
            w.writeframes(block)


def opening_reader(path: Path) -> Callable[[int, int], bytes]:
    """A blob-store-like ``read``: every call opens, preads and closes the file."""

    def read(offset: int, length: int) -> bytes:
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    return read


def random_access(tmp: Path, reads: int) -> list[Row]:
    """1 KiB at minute 59 of a sealed hour of audio, against the plaintext file."""
    dek, ad = secrets.token_bytes(32), cv1.associated_data(uuid.uuid4(), b"bench", "audio/wav")
    commitment = cv1.key_commitment(dek, ad)
    wav, sealed = tmp / "hour.wav", tmp / "hour.cv1"
    make_noise_wav(wav)
    encrypt_file(dek, ad, wav, sealed)
    ct_size, offset = sealed.stat().st_size, WAV_HEADER + 59 * 60 * WAV_RATE * 2
    warm = cv1.CiphertextReader(dek, ad, opening_reader(sealed), ct_size)

    def plain() -> bytes:
        with wav.open("rb", buffering=0) as f:
            f.seek(offset)
            return f.read(1024)

    def ours(check: bool) -> bytes:
        fd = os.open(sealed, os.O_RDONLY)  # one open per request, like plain()
        try:
            if check:
                cv1.check_commitment(dek, ad, commitment)
            return cv1.decrypt_range(dek, ad, file_reader(fd), ct_size, offset, 1024)
        finally:
            os.close(fd)

    cases: dict[str, Callable[[], bytes]] = {
        "plaintext open+seek+read": plain,
        "cv1 decrypt_range": lambda: ours(False),
        "cv1 commitment check + decrypt_range": lambda: ours(True),
        "cv1 reused CiphertextReader (header+key kept)": lambda: warm.read(offset, 1024),
    }
    if any(fn() != plain() for fn in cases.values()):
        raise SystemExit("cv1 reads disagree with the plaintext file")
    samples = interleaved(cases, reads)
    wav.unlink()
    sealed.unlink()
    rows: list[Row] = [
        {"measure": f"1 KiB at minute 59: {name} p{q}", "value": percentile(t, q), "unit": "us"}
        for name, t in samples.items()
        for q in (50, 99)
    ]
    p50 = percentile(samples["cv1 decrypt_range"], 50) / percentile(
        samples["plaintext open+seek+read"], 50
    )
    target = {"target": f"<= {P50_VS_PLAIN}", "ok": p50 <= P50_VS_PLAIN}
    return [*rows, {**ratio_row("random read p50 cv1 / plaintext", p50), **target}]


def interleaved(cases: dict[str, Callable[[], bytes]], reads: int) -> dict[str, list[float]]:
    """Microseconds per call, cases taking turns so drift hits all alike; 50 warm-ups."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(reads + 50):
        for name, fn in cases.items():
            elapsed = timed(fn)
            if i >= 50:
                samples[name].append(elapsed * 1e6)
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="throughput file size (MiB)")
    parser.add_argument("--seconds", type=int, default=3, help="openssl speed duration")
    parser.add_argument("--reads", type=int, default=2000, help="random reads to time")
    parser.add_argument("--repeat", type=int, default=3, help="file runs per measure (best)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cvbench-") as tmp:
        rows = throughput(Path(tmp), args.size_mib * MIB, args.seconds, args.repeat)
        rows += random_access(Path(tmp), args.reads)
    for row in rows:
        row.setdefault("target", "")
        row.setdefault("ok", "")
    report("crypto", rows)


if __name__ == "__main__":
    main()
