"""Audio adapter: accept WAV/MP3 by content, decode fully, measure, draw peaks.

Public surface::

    analyse(path, *, max_bytes) -> AudioInfo      # or UnsupportedAudio / InvalidInput
    peaks_to_list(peaks) -> [(min, max), ...]
    sniff(first_bytes) -> "wav" | "mp3" | None
    PLAINTEXT_AUDIO_MAGICS, starts_with_plaintext_audio(data), contains_plaintext_audio(data)
"""

from callvault.adapters.audio.decode import analyse
from callvault.adapters.audio.magic import (
    PLAINTEXT_AUDIO_MAGICS,
    Magic,
    contains_plaintext_audio,
    sniff,
    starts_with_plaintext_audio,
)
from callvault.adapters.audio.peaks import PEAK_BUCKETS, peaks_to_list
from callvault.adapters.audio.probe import (
    MAX_CHANNELS,
    MAX_DURATION_SECONDS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AudioInfo,
)

__all__ = [
    "MAX_CHANNELS",
    "MAX_DURATION_SECONDS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "PEAK_BUCKETS",
    "PLAINTEXT_AUDIO_MAGICS",
    "AudioInfo",
    "Magic",
    "analyse",
    "contains_plaintext_audio",
    "peaks_to_list",
    "sniff",
    "starts_with_plaintext_audio",
]
