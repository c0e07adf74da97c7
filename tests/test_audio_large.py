"""A 2 GB WAV is analysed in flat memory: nothing reads the whole file or signal."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from callvault.testing.audio import make_noise_wav_streaming

RATE = 48_000
# 16-bit mono at 48 kHz is 96,000 bytes a second: 22,400 s (6.2 h) is 2.15 GB,
# past 2**31 so that any signed 32-bit size arithmetic would show.
SECONDS = 22_400
RSS_LIMIT_KIB = 150 * 1024

# Runs the analysis as its own child, so RUSAGE_CHILDREN measures exactly that
# process and nothing else the test session has started.
_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2]],
                      capture_output=True, text=True, check=True)
result = json.loads(done.stdout)
result["maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(result))
"""
_ANALYSE = """
import json, pathlib, sys
from callvault.adapters.audio import analyse, peaks_to_list
info = analyse(pathlib.Path(sys.argv[1]), max_bytes=4 * 10**9)
highs = [high for _, high in peaks_to_list(info.peaks)]
print(json.dumps({"frames": info.frames, "size": info.size_bytes,
                  "duration": info.duration_seconds, "codec": info.codec, "highs": highs}))
"""


@pytest.mark.slow
def test_two_gigabyte_wav_is_analysed_with_flat_memory(tmp_path):
    wav = tmp_path / "large.wav"
    try:
        make_noise_wav_streaming(wav, SECONDS, RATE)
        assert wav.stat().st_size > 2**31
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, _ANALYSE, str(wav)],
            capture_output=True, text=True, check=True, timeout=600,
        )  # fmt: skip
    finally:
        wav.unlink(missing_ok=True)
    result = json.loads(done.stdout)
    assert result["maxrss_kib"] < RSS_LIMIT_KIB
    assert result["frames"] == SECONDS * RATE
    assert result["duration"] == SECONDS
    assert result["size"] == 44 + 2 * SECONDS * RATE
    assert result["codec"] == "pcm_s16le"
    # The generator ramps the noise gain from 0.05 to 0.95 over the file.
    highs = result["highs"]
    assert len(highs) == 1000
    assert highs[0] < 0.1 and highs[-1] > 0.9
    assert all(later >= earlier - 0.02 for earlier, later in itertools.pairwise(highs))
