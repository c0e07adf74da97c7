"""Decode a RIFF/WAVE file with soundfile (libsndfile), block by block."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import BinaryIO

import numpy as np
import soundfile

from callvault.adapters.audio.peaks import PeakAccumulator
from callvault.adapters.audio.probe import WavLayout, check_duration, check_parameters
from callvault.core.errors import UnsupportedAudio

# libsndfile subtype -> codec name we report.  Anything else (MP3-in-WAV,
# NMS ADPCM, ...) is refused: fewer decoders facing hostile input.
CODECS = {
    "PCM_U8": "pcm_u8",
    "PCM_16": "pcm_s16le",
    "PCM_24": "pcm_s24le",
    "PCM_32": "pcm_s32le",
    "FLOAT": "pcm_f32le",
    "DOUBLE": "pcm_f64le",
    "ULAW": "ulaw",
    "ALAW": "alaw",
    "IMA_ADPCM": "ima_adpcm",
    "MS_ADPCM": "ms_adpcm",
    "GSM610": "gsm610",
    "G721_32": "g721",
}
# Plain sample formats: the frame count follows from the data chunk length.
_LINEAR = {"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"}
_FLOATS = {"FLOAT", "DOUBLE"}
# ~2 MiB of int16 per read: large enough that per-call overhead vanishes,
# small enough that memory stays flat.
BLOCK_SAMPLES = 1 << 20


@dataclasses.dataclass(frozen=True)
class Decoded:
    codec: str
    sample_rate: int
    channels: int
    frames: int
    peaks: bytes


def decode_wav(path: pathlib.Path | BinaryIO, layout: WavLayout) -> Decoded:
    """Decode every frame; refuse unless the count matches what the header promised.

    Integer and companded encodings are read as int16 (libsndfile scales them;
    only the top bits matter for peaks), float encodings as float32 because
    libsndfile does not scale float to int.  ``path`` may be a seekable
    binary file object instead of a path.
    """
    if isinstance(path, pathlib.Path):
        source: str | BinaryIO = str(path)
    else:
        path.seek(0)
        source = path
    with soundfile.SoundFile(source) as f:
        if f.format != "WAV" or f.subtype not in CODECS:
            raise UnsupportedAudio("unsupported WAV encoding")
        rate, channels, expected = int(f.samplerate), int(f.channels), int(f.frames)
        if (rate, channels) != (layout.sample_rate, layout.channels):
            raise UnsupportedAudio("malformed WAV header")
        check_parameters(rate, channels)
        check_duration(expected, rate)
        if f.subtype in _LINEAR and expected != layout.data_size // layout.block_align:
            raise UnsupportedAudio("malformed WAV header")
        floats = f.subtype in _FLOATS
        dtype = np.float32 if floats else np.int16
        peaks = PeakAccumulator(1.0 if floats else 32768.0, expected)
        buf = np.empty((max(1, BLOCK_SAMPLES // channels), channels), dtype=dtype)
        decoded = 0
        while True:
            block = f.read(out=buf)
            if len(block) == 0:
                break
            peaks.add(block.reshape(-1), channels)
            decoded += len(block)
        subtype = f.subtype
    if decoded != expected:
        raise UnsupportedAudio("truncated or undecodable WAV data")
    return Decoded(CODECS[subtype], rate, channels, decoded, peaks.finish())
