"""Decode an MP3 file with PyAV (FFmpeg), frame by frame.

What is accepted, and why:

* The demuxer is forced to ``mp3``: FFmpeg never probes the content for other
  formats (playlists, concat scripts and the like must not get a chance).
* The path is handed over as an absolute ``file:`` URL with only the file
  protocol allowed: FFmpeg reads a bare ``http:...`` or ``subfile:...`` path
  as a network or nested URL.
* A decode error is tolerated only in the final packet: recorders that stop
  abruptly often leave a cut last frame.  An error followed by further
  packets means damage inside the stream and is refused.
* If the first frame carries a Xing/Info frame count, fewer packets than that
  means the file was cut short (more than one frame missing): refused.
  Without such a tag, a cut at a frame boundary cannot be told from a
  shorter recording and is accepted.
* Sample rate and channel count must stay the same in every frame.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, BinaryIO

import av
import numpy as np

from callvault.adapters.audio.peaks import PeakAccumulator
from callvault.adapters.audio.probe import MAX_DURATION_SECONDS, check_parameters
from callvault.adapters.audio.wav import Decoded
from callvault.core.errors import UnsupportedAudio

_MP3_DECODERS = {"mp3", "mp3float"}
_LOCAL_FILE_ONLY = {"protocol_whitelist": "file"}
# Decoded frames are batched to about this many samples before peak reduction,
# so the numpy work happens on large blocks, not on 576-sample frames.
_BATCH_SAMPLES = 1 << 18
# Sample formats whose plane bytes are native float32 (what mp3float gives).
_FLOAT32_FORMATS = {"flt", "fltp"}


class _Batcher:
    """Collects decoded frames as interleaved float32 and feeds the peaks."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.peaks = PeakAccumulator(1.0)
        self._parts: list[np.ndarray[Any, Any]] = []
        self._pending = 0

    def push(self, frame: av.AudioFrame) -> None:
        fmt = frame.format
        if fmt.name in _FLOAT32_FORMATS and (self.channels == 1 or not fmt.is_planar):
            # One plane already holds every sample interleaved: view its
            # buffer rather than build an array per frame with to_ndarray
            # (13 % of MP3 decoding).  The plane may be padded, hence count.
            # The view keeps the frame alive until flush copies it.
            count = frame.samples * self.channels
            data = np.frombuffer(memoryview(frame.planes[0]), np.float32, count=count)
        else:
            array = frame.to_ndarray().astype(np.float32, copy=False)
            if fmt.is_planar:
                array = array.T  # (channels, n) -> (n, channels)
            data = np.ascontiguousarray(array).reshape(-1)
        self._parts.append(data)
        self._pending += data.size
        if self._pending >= _BATCH_SAMPLES:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self.peaks.add(np.concatenate(self._parts), self.channels)
            self._parts, self._pending = [], 0


def decode_mp3(path: pathlib.Path | BinaryIO, tagged_frames: int | None) -> Decoded:
    """Decode every frame of the first audio stream; see the module doc for the rules.

    ``path`` may be a seekable binary file object: FFmpeg then reads through
    it and opens no URL at all.
    """
    with _open_mp3(path) as container:
        if not container.streams.audio:
            raise UnsupportedAudio("no audio stream")
        stream = container.streams.audio[0]
        if stream.codec_context.name not in _MP3_DECODERS:
            raise UnsupportedAudio("not WAV or MP3 audio")
        rate, channels = int(stream.codec_context.sample_rate), stream.codec_context.channels
        if not rate or not channels:
            raise UnsupportedAudio("no decodable MP3 frames")
        check_parameters(rate, channels)
        batch = _Batcher(channels)
        frames, packets, damaged = 0, 0, False
        for packet in container.demux(stream):
            if packet.size:
                if damaged:
                    raise UnsupportedAudio("damaged MP3 stream")
                packets += 1
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                damaged = True
                continue
            for frame in decoded:
                if frame.sample_rate != rate or frame.layout.nb_channels != channels:
                    raise UnsupportedAudio("MP3 parameters change mid-stream")
                batch.push(frame)
                frames += frame.samples
            if frames > MAX_DURATION_SECONDS * rate:
                raise UnsupportedAudio(f"longer than the {MAX_DURATION_SECONDS // 3600} h limit")
        batch.flush()
    if tagged_frames is not None and packets < tagged_frames:
        raise UnsupportedAudio("truncated MP3 stream")
    return Decoded("mp3", rate, channels, frames, batch.peaks.finish())


def _open_mp3(path: pathlib.Path | BinaryIO) -> Any:
    if isinstance(path, pathlib.Path):
        url = "file:" + os.path.abspath(path)
        return av.open(url, format="mp3", container_options=_LOCAL_FILE_ONLY)
    path.seek(0)
    return av.open(path, format="mp3")
