"""``analyse``: accept a file as WAV or MP3 audio by its content, or refuse it.

The order of checks is the order of cost: size limits, then the first bytes,
then header walks, then a full decode.  Every refusal is an
``UnsupportedAudio`` whose message names the kind of problem only: never the
file name (it may carry a phone number) and never bytes of the file.
Decoder exceptions are re-raised ``from None`` because FFmpeg's messages
include the path.
"""

from __future__ import annotations

import os
import pathlib
import stat
from typing import BinaryIO

import av

from callvault.adapters.audio.magic import sniff
from callvault.adapters.audio.mp3 import decode_mp3
from callvault.adapters.audio.probe import (
    SNIFF_BYTES,
    AudioInfo,
    check_duration,
    first_mpeg_frame_offset,
    read_wav_layout,
    xing_frame_count,
)
from callvault.adapters.audio.wav import Decoded, decode_wav
from callvault.core.errors import CallvaultError, InvalidInput, UnsupportedAudio

_MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}
# Enough to hold any first MP3 frame (the largest is 2,881 bytes).
_FIRST_FRAME_BYTES = 4096


def analyse(path: pathlib.Path | BinaryIO, *, max_bytes: int) -> AudioInfo:
    """Decode ``path`` fully and describe it, or refuse it.

    ``path`` may also be a readable, seekable binary file object (such as a
    decrypting view of a stored object, so that no plaintext touches a
    disk); it is read from its start whatever its position.

    Raises ``UnsupportedAudio`` for anything that is not complete, decodable
    WAV or MP3 within the limits in :mod:`callvault.adapters.audio.probe`
    (and ``max_bytes``), and ``InvalidInput`` if the path cannot be read or
    is not a regular file.  No other exception escapes.  Memory use does not
    grow with the file's size or length.
    """
    try:
        return _analyse(path, max_bytes)
    except CallvaultError:
        raise
    except av.FFmpegError:
        raise UnsupportedAudio("undecodable audio data") from None
    except OSError:
        raise InvalidInput("cannot read input file") from None
    except Exception:
        # Fail closed: whatever else a decoder throws at hostile input
        # (soundfile's RuntimeErrors, numpy's ValueErrors, struct.error, ...)
        # is a refusal, and its message (which may hold the path) is dropped.
        raise UnsupportedAudio("undecodable audio data") from None


def _analyse(source: pathlib.Path | BinaryIO, max_bytes: int) -> AudioInfo:
    if not isinstance(source, str | os.PathLike):
        return _analyse_open(source, source.seek(0, os.SEEK_END), max_bytes, source)
    path = pathlib.Path(source)
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput("input is not a regular file")
    with open(path, "rb") as fh:
        return _analyse_open(fh, st.st_size, max_bytes, path)


def _analyse_open(
    fh: BinaryIO, size: int, max_bytes: int, source: pathlib.Path | BinaryIO
) -> AudioInfo:
    """Checks on the open ``fh``, then a full decode of ``source`` (the same bytes)."""
    if size == 0:
        raise UnsupportedAudio("empty file")
    if size > max_bytes:
        raise UnsupportedAudio(f"larger than the {max_bytes / 1_000_000:g} MB limit")
    fh.seek(0)
    kind = sniff(fh.read(SNIFF_BYTES))
    if kind == "wav":
        layout = read_wav_layout(fh, size)
    elif kind == "mp3":
        fh.seek(first_mpeg_frame_offset(fh, size))
        tagged_frames = xing_frame_count(fh.read(_FIRST_FRAME_BYTES))
    else:
        raise UnsupportedAudio("not WAV or MP3 audio")
    decoded = decode_wav(source, layout) if kind == "wav" else decode_mp3(source, tagged_frames)
    return _describe(kind, decoded, size)


def _describe(kind: str, decoded: Decoded, size: int) -> AudioInfo:
    if decoded.frames == 0:
        raise UnsupportedAudio("no audio frames")
    check_duration(decoded.frames, decoded.sample_rate)
    return AudioInfo(
        media_type=_MEDIA_TYPES[kind],
        container=kind,
        codec=decoded.codec,
        sample_rate=decoded.sample_rate,
        channels=decoded.channels,
        frames=decoded.frames,
        duration_seconds=decoded.frames / decoded.sample_rate,
        size_bytes=size,
        peaks=decoded.peaks,
    )
