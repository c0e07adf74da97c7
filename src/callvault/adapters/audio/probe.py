"""What an input file claims to be: the result type, the limits and header walks.

Nothing here trusts a header for duration; headers are read only to refuse
early (absurd parameters, a data chunk longer than the file) and to find a
Xing/Info frame count that tells a truncated MP3 from a whole one.  All reads
are bounded: a few KiB per chunk header, never the audio.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import BinaryIO

from callvault.adapters.audio.magic import id3v2_size, parse_mpeg_header
from callvault.core.errors import UnsupportedAudio

MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8
MAX_DURATION_SECONDS = 24 * 3600
SNIFF_BYTES = 4096
# Enough chunks for any real WAV (fmt, fact, LIST, bext, cue, ...); bounds the
# walk over a hostile file made of millions of empty chunks.
_MAX_WAV_CHUNKS = 1024
_MAX_FMT_BYTES = 4096
_MAX_ID3_TAGS = 8


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What ingest learns about one accepted recording.

    ``frames`` and ``duration_seconds`` come from counting decoded samples.
    ``peaks`` is the waveform as described in :mod:`callvault.adapters.audio.peaks`.
    """

    media_type: str
    container: str
    codec: str
    sample_rate: int
    channels: int
    frames: int
    duration_seconds: float
    size_bytes: int
    peaks: bytes


@dataclasses.dataclass(frozen=True)
class WavLayout:
    """The ``fmt `` fields and where the ``data`` chunk lies, as the header says."""

    format_tag: int
    channels: int
    sample_rate: int
    block_align: int
    bits: int
    data_offset: int
    data_size: int


def check_parameters(sample_rate: int, channels: int) -> None:
    """Refuse sample rates and channel counts no telephone recording has."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise UnsupportedAudio(f"sample rate outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise UnsupportedAudio(f"channel count outside 1..{MAX_CHANNELS}")


def check_duration(frames: int, sample_rate: int) -> None:
    if frames > MAX_DURATION_SECONDS * sample_rate:
        raise UnsupportedAudio(f"longer than the {MAX_DURATION_SECONDS // 3600} h limit")


def read_wav_layout(fh: BinaryIO, size: int) -> WavLayout:
    """Walk the RIFF chunks up to ``data``; refuse what is malformed or truncated.

    ::

        0      4      8      12
        "RIFF" len    "WAVE" { id(4) len(4, LE) body(len) [pad to even] }*

    The RIFF length itself is not checked (recorders often get it wrong).  A
    ``data`` chunk that runs past the end of the file is refused as
    truncated, whatever the reason (a cut copy, a recorder that crashed
    before patching the length).  A missing pad byte after an odd-sized final
    chunk is tolerated.
    """
    fmt: tuple[int, int, int, int, int] | None = None
    pos = 12
    for _ in range(_MAX_WAV_CHUNKS):
        if pos + 8 > size:
            break
        fh.seek(pos)
        chunk_id, chunk_len = struct.unpack("<4sI", fh.read(8))
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(fh.read(min(chunk_len, _MAX_FMT_BYTES)), chunk_len)
        elif chunk_id == b"data":
            if fmt is None:
                raise UnsupportedAudio("malformed WAV header")
            if body + chunk_len > size:
                raise UnsupportedAudio("truncated: the WAV data chunk is shorter than its header")
            return WavLayout(*fmt, data_offset=body, data_size=chunk_len)
        pos = body + chunk_len + (chunk_len & 1)
    if fmt is None:
        raise UnsupportedAudio("malformed WAV header")
    raise UnsupportedAudio("no audio data chunk")


def _parse_fmt(body: bytes, declared: int) -> tuple[int, int, int, int, int]:
    if declared < 16 or declared > _MAX_FMT_BYTES or len(body) < 16:
        raise UnsupportedAudio("malformed WAV header")
    tag, channels, rate, _byte_rate, align, bits = struct.unpack("<HHIIHH", body[:16])
    check_parameters(rate, channels)
    if align == 0:
        raise UnsupportedAudio("malformed WAV header")
    return tag, channels, rate, align, bits


def first_mpeg_frame_offset(fh: BinaryIO, size: int) -> int:
    """Offset just past any leading ID3v2 tags (where the first frame should be)."""
    offset = 0
    for _ in range(_MAX_ID3_TAGS):
        fh.seek(offset)
        tag = id3v2_size(fh.read(10))
        if tag is None:
            break
        offset += tag
    if offset >= size:
        raise UnsupportedAudio("no audio data after the ID3 tag")
    return offset


def xing_frame_count(frame: bytes) -> int | None:
    """Frame count from a Xing/Info tag in the first MP3 frame, if it has one.

    The tag sits after the 4-byte header and the Layer III side information
    (MPEG-1: 17 bytes mono, 32 stereo; MPEG-2/2.5: 9 mono, 17 stereo)::

        "Xing"|"Info"  flags(4, BE)  [frames(4, BE) if flags & 1]  ...

    The count excludes the tag frame itself.  Used only to detect a file that
    is shorter than its encoder wrote it; never for duration.
    """
    header = parse_mpeg_header(frame[:4])
    if header is None or header.layer != 3:
        return None
    side = (17 if header.mono else 32) if header.mpeg1 else (9 if header.mono else 17)
    at = 4 + side
    if frame[at : at + 4] not in (b"Xing", b"Info") or len(frame) < at + 12:
        return None
    (flags,) = struct.unpack(">I", frame[at + 4 : at + 8])
    if not flags & 1:
        return None
    (frames,) = struct.unpack(">I", frame[at + 8 : at + 12])
    return int(frames)
