"""Waveform peaks computed incrementally in bounded memory.

Stored format (``AudioInfo.peaks``)::

    min_0 max_0 min_1 max_1 ... min_{n-1} max_{n-1}      (signed int8 each)

``n <= PEAK_BUCKETS``; bucket ``i`` covers an equal share of the recording in
time order (the last may be slightly shorter).  A value ``v`` stands for the
amplitude ``v / 127`` of full scale, over all channels together.  A recording
shorter than ``PEAK_BUCKETS`` frames has one bucket per frame.

How it stays bounded when the length is unknown up front (MP3): samples are
reduced into at most ``_FINE_CAPACITY`` fine buckets of ``width`` frames;
when they overflow, neighbouring pairs merge and ``width`` doubles.  At the
end the fine buckets are grouped into ``PEAK_BUCKETS``; as there are always
more than ``_FINE_CAPACITY / 2`` of them once merging has started, each
output bucket's edges are off by at most an eighth of its width.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from callvault.core.errors import InvalidInput

PEAK_BUCKETS = 1000
PEAK_SCALE = 127
_FINE_CAPACITY = 16 * 1024


class PeakAccumulator:
    """Feed interleaved sample blocks in order with ``add``; call ``finish`` once.

    ``full_scale`` is the sample value that means amplitude 1.0 (32768 for
    int16 blocks, 1.0 for float blocks).  ``expected_frames``, if known, sets
    the initial bucket width so that merging rarely happens; it is a hint, the
    result does not depend on it beyond bucket-edge rounding.
    """

    def __init__(self, full_scale: float, expected_frames: int | None = None) -> None:
        self._scale = 1.0 / full_scale
        self._width = 1
        while expected_frames and self._width * _FINE_CAPACITY < expected_frames:
            self._width *= 2
        self._mins = np.empty(0, dtype=np.float64)
        self._maxs = np.empty(0, dtype=np.float64)
        self._fill = 0  # frames already in the open (partial) bucket
        self._open_min = 0.0
        self._open_max = 0.0

    def add(self, samples: npt.NDArray[np.generic], channels: int) -> None:
        """Reduce one block: a 1-D C-contiguous array of interleaved frames."""
        frames = samples.size // channels
        if frames == 0:
            return
        pos = 0
        if self._fill:
            take = min(self._width - self._fill, frames)
            self._grow_open(samples[: take * channels], take)
            pos = take
            if self._fill == self._width:
                self._close_open()
        whole = (frames - pos) // self._width
        if whole:
            end = pos + whole * self._width
            rows = samples[pos * channels : end * channels].reshape(whole, self._width * channels)
            self._append(rows.min(axis=1), rows.max(axis=1))
            pos = end
        if pos < frames:
            self._grow_open(samples[pos * channels : frames * channels], frames - pos)
        self._compact()

    def finish(self) -> bytes:
        """The peaks in the stored format (empty for no samples)."""
        if self._fill:
            self._close_open()
        mins, maxs = self._mins, self._maxs
        if mins.size > PEAK_BUCKETS:
            starts = (np.arange(PEAK_BUCKETS, dtype=np.int64) * mins.size) // PEAK_BUCKETS
            mins = np.minimum.reduceat(mins, starts)
            maxs = np.maximum.reduceat(maxs, starts)
        out = np.empty(2 * mins.size, dtype=np.int8)
        out[0::2] = self._quantise(mins)
        out[1::2] = self._quantise(maxs)
        return out.tobytes()

    def _quantise(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.int8]:
        # Float WAVs may hold NaN or values beyond full scale; clamp, never wrap.
        scaled = np.nan_to_num(values * self._scale, nan=0.0, posinf=1.0, neginf=-1.0)
        return np.rint(np.clip(scaled, -1.0, 1.0) * PEAK_SCALE).astype(np.int8)

    def _grow_open(self, samples: npt.NDArray[np.generic], frames: int) -> None:
        low, high = float(samples.min()), float(samples.max())
        if self._fill:
            low, high = min(low, self._open_min), max(high, self._open_max)
        self._open_min, self._open_max, self._fill = low, high, self._fill + frames

    def _close_open(self) -> None:
        self._append(np.array([self._open_min]), np.array([self._open_max]))
        self._fill = 0

    def _append(self, mins: npt.NDArray[np.generic], maxs: npt.NDArray[np.generic]) -> None:
        self._mins = np.concatenate((self._mins, mins.astype(np.float64)))
        self._maxs = np.concatenate((self._maxs, maxs.astype(np.float64)))

    def _compact(self) -> None:
        while self._mins.size > _FINE_CAPACITY:
            if self._mins.size % 2:
                # The odd last bucket becomes the head of the open bucket,
                # which is twice as wide after this merge.
                low, high = float(self._mins[-1]), float(self._maxs[-1])
                if self._fill:
                    low, high = min(low, self._open_min), max(high, self._open_max)
                self._open_min, self._open_max = low, high
                self._fill += self._width
                self._mins, self._maxs = self._mins[:-1], self._maxs[:-1]
            self._mins = np.minimum(self._mins[0::2], self._mins[1::2])
            self._maxs = np.maximum(self._maxs[0::2], self._maxs[1::2])
            self._width *= 2


def peaks_to_list(peaks: bytes) -> list[tuple[float, float]]:
    """Decode stored peaks into ``(min, max)`` pairs of amplitudes in [-1, 1]."""
    if len(peaks) % 2:
        raise InvalidInput("malformed waveform peaks")
    values = np.frombuffer(peaks, dtype=np.int8).astype(np.float64) / PEAK_SCALE
    return [(float(lo), float(hi)) for lo, hi in values.reshape(-1, 2)]
