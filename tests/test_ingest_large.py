"""A 2 GB WAV ingests end to end in flat memory (under 150 MB RSS) and exports back."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from callvault.testing.audio import make_noise_wav_streaming

RSS_LIMIT_KIB = 150 * 1024
SECONDS, RATE = 22_400, 48_000  # 16-bit mono: 2.15 GB, past 2**31

# The ingest runs as a grandchild so RUSAGE_CHILDREN measures exactly it.
_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "callvault", *sys.argv[1:]],
                      capture_output=True, text=True)
print(json.dumps({"code": done.returncode, "out": done.stdout, "err": done.stderr,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.slow
def test_two_gigabyte_wav_ingests_and_exports_with_flat_memory(cli_vault, tmp_path):
    vault = cli_vault()
    wav = tmp_path / "large.wav"
    out = tmp_path / "back.wav"
    try:
        make_noise_wav_streaming(wav, SECONDS, RATE)
        args = ["ingest", str(wav), "--care-unit", "1177-sthlm"]
        args += ["--started-at", "2019-02-18T10:22:00+01:00"]
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, *args],
            env=vault.env, capture_output=True, text=True, check=True, timeout=900,
        )  # fmt: skip
        result = json.loads(done.stdout)
        assert result["code"] == 0, result["err"]
        assert result["maxrss_kib"] < RSS_LIMIT_KIB
        recording_id = result["out"].split()[0]
        vault.run("export", recording_id, "-o", str(out), "--reason", "size test", timeout=900)
        assert sha256_of(out) == sha256_of(wav)
    finally:
        wav.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
