"""Content signatures of WAV and MPEG audio: sniffing input, scanning stored bytes.

Two uses with different needs:

* ``sniff`` decides which decoder may look at an input, from its first bytes
  only (never from a file name).  It is strict: RIFF/WAVE, or MP3 that opens
  with an ID3v2 tag or with a complete, valid MPEG Layer III frame header.
* ``starts_with_plaintext_audio`` / ``contains_plaintext_audio`` check that
  bytes the vault *stores* are not plaintext audio (R4).  They are broad: any
  MPEG audio layer counts, and RF64 too.

MPEG audio frame header (4 bytes, big-endian bit order)::

    AAAAAAAA AAABBCCD EEEEFFGH IIJJKLMM
    A sync (11 bits set)   B version (00 = 2.5, 01 reserved, 10 = 2, 11 = 1)
    C layer (01 = III, 10 = II, 11 = I, 00 reserved)   D no-CRC flag
    E bitrate index (0 free format, 15 invalid)   F sample-rate index (3 invalid)
    G padding   H private   I channel mode (11 = mono)   J..M ignored here
"""

from __future__ import annotations

import dataclasses

import numpy as np

ID3_HEADER_LEN = 10
# The chained-frame scan needs this many valid MPEG frames back to back before
# it calls bytes "MP3"; random ciphertext matches one header in ~2^12 positions,
# four chained headers of one stream in well under 2^-60.
MPEG_CHAIN = 4
_SCAN_WINDOW = 8 << 20

_KBPS = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# version bits -> (MPEG version used for the tables, sample rates)
_VERSIONS = {
    0b00: (2, (11025, 12000, 8000)),
    0b10: (2, (22050, 24000, 16000)),
    0b11: (1, (44100, 48000, 32000)),
}
_LAYERS = {0b01: 3, 0b10: 2, 0b11: 1}


@dataclasses.dataclass(frozen=True)
class MpegHeader:
    """The fields of one MPEG audio frame header that matter here."""

    mpeg1: bool
    layer: int
    sample_rate: int
    frame_bytes: int
    samples: int
    mono: bool


def parse_mpeg_header(b: bytes) -> MpegHeader | None:
    """Decode 4 header bytes; ``None`` unless they are a valid fixed-bitrate header."""
    if len(b) < 4 or b[0] != 0xFF or b[1] & 0xE0 != 0xE0:
        return None
    version = _VERSIONS.get((b[1] >> 3) & 0b11)
    layer = _LAYERS.get((b[1] >> 1) & 0b11)
    bitrate_index, rate_index = b[2] >> 4, (b[2] >> 2) & 0b11
    if version is None or layer is None or bitrate_index in (0, 15) or rate_index == 3:
        return None
    table_version, rates = version
    rate = rates[rate_index]
    bitrate = _KBPS[(table_version, layer)][bitrate_index] * 1000
    pad = (b[2] >> 1) & 1
    if layer == 1:
        frame_bytes, samples = (12 * bitrate // rate + pad) * 4, 384
    elif layer == 3 and table_version == 2:
        frame_bytes, samples = 72 * bitrate // rate + pad, 576
    else:
        frame_bytes, samples = 144 * bitrate // rate + pad, 1152
    return MpegHeader(table_version == 1, layer, rate, frame_bytes, samples, b[3] >> 6 == 3)


def id3v2_size(b: bytes) -> int | None:
    """Total length of an ID3v2 tag starting at ``b[0]``, or ``None`` if there is none.

    Layout: ``"ID3" major(2..4) revision flags size(4 x 7-bit, synchsafe)``,
    plus a 10-byte footer when flag bit 4 is set.
    """
    if len(b) < ID3_HEADER_LEN or b[:3] != b"ID3" or b[3] not in (2, 3, 4) or b[4] == 0xFF:
        return None
    size_bytes = b[6:10]
    if any(x & 0x80 for x in size_bytes):
        return None
    size = 0
    for x in size_bytes:
        size = (size << 7) | x
    footer = ID3_HEADER_LEN if b[5] & 0x10 else 0
    return ID3_HEADER_LEN + size + footer


def sniff(first_bytes: bytes) -> str | None:
    """``"wav"``, ``"mp3"`` or ``None``, judged from the first bytes of a file.

    ``"wav"``: ``RIFF <size> WAVE``.  ``"mp3"``: an ID3v2 tag header, or a
    valid MPEG Layer III frame header at offset 0.  Anything else (RF64, Layer
    I/II, free-format, leading junk) is ``None``.  Pass at least 12 bytes.
    """
    if len(first_bytes) >= 12 and first_bytes[:4] == b"RIFF" and first_bytes[8:12] == b"WAVE":
        return "wav"
    if id3v2_size(first_bytes) is not None:
        return "mp3"
    header = parse_mpeg_header(first_bytes[:4])
    if header is not None and header.layer == 3:
        return "mp3"
    return None


@dataclasses.dataclass(frozen=True)
class Magic:
    """A byte signature: ``data[i] & mask[i] == pattern[i]`` for every i."""

    name: str
    pattern: bytes
    mask: bytes

    def matches(self, data: bytes, offset: int = 0) -> bool:
        window = data[offset : offset + len(self.pattern)]
        if len(window) < len(self.pattern):
            return False
        return all(d & m == p for d, m, p in zip(window, self.mask, self.pattern, strict=True))


_ANY4 = b"\x00\x00\x00\x00"
_ALL4 = b"\xff\xff\xff\xff"

#: Signatures no stored object may start with (R4).  The MPEG entries are the
#: 11-bit frame sync with each of the three valid layer codes.
PLAINTEXT_AUDIO_MAGICS: frozenset[Magic] = frozenset(
    {
        Magic("riff-wave", b"RIFF" + _ANY4 + b"WAVE", _ALL4 + _ANY4 + _ALL4),
        Magic("rf64-wave", b"RF64" + _ANY4 + b"WAVE", _ALL4 + _ANY4 + _ALL4),
        Magic("id3v2", b"ID3", b"\xff\xff\xff"),
        Magic("mpeg-layer3", b"\xff\xe2", b"\xff\xe6"),
        Magic("mpeg-layer2", b"\xff\xe4", b"\xff\xe6"),
        Magic("mpeg-layer1", b"\xff\xe6", b"\xff\xe6"),
    }
)


def starts_with_plaintext_audio(data: bytes) -> bool:
    """True if ``data`` begins with any of :data:`PLAINTEXT_AUDIO_MAGICS`.

    Meant for stored objects with a fixed non-audio prefix (a cv1 object
    starts with its header length byte, 0x28), where a match is never chance.
    For arbitrary random bytes an MPEG sync matches about 1 start in 2,700.
    """
    return any(magic.matches(data) for magic in PLAINTEXT_AUDIO_MAGICS)


def contains_plaintext_audio(data: bytes) -> bool:
    """True if plaintext WAV or MPEG audio starts anywhere in ``data``.

    Finds ``RIFF....WAVE``/``RF64....WAVE``; a plausible ID3v2 header (major
    2..4, revision 0, no undefined flags, synchsafe size); or
    :data:`MPEG_CHAIN` valid MPEG frames of one stream back to back.  Single
    chance frame syncs in ciphertext do not count.  Vectorised; memory is
    proportional to the number of 0xFFE candidates, not to ``len(data)``.
    """
    return _has_riff_wave(data) or _has_id3(data) or _has_mpeg_chain(data)


def _occurrences(data: bytes, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def _has_riff_wave(data: bytes) -> bool:
    return any(
        data[i + 8 : i + 12] == b"WAVE"
        for needle in (b"RIFF", b"RF64")
        for i in _occurrences(data, needle)
    )


def _has_id3(data: bytes) -> bool:
    for i in _occurrences(data, b"ID3"):
        head = data[i : i + ID3_HEADER_LEN]
        if id3v2_size(head) is not None and head[4] == 0 and head[5] & 0x0F == 0:
            return True
    return False


def _frame_length_table() -> np.ndarray:
    """Frame length for every (byte1 & 0x1E) << 6 | byte2 >> 1 index; 0 = invalid."""
    table = np.zeros(1 << 11, dtype=np.int64)
    for index in range(1 << 11):
        b1 = 0xE0 | ((index >> 6) & 0x1E)
        b2 = (index & 0x7F) << 1
        header = parse_mpeg_header(bytes((0xFF, b1, b2, 0)))
        table[index] = header.frame_bytes if header else 0
    return table


_FRAME_LENGTHS = _frame_length_table()


def _sync_positions(arr: np.ndarray) -> np.ndarray:
    """Offsets of every 11-bit frame sync with 3 bytes after it, window by window."""
    found = []
    for start in range(0, max(0, arr.size - 3), _SCAN_WINDOW):
        # Each window looks 3 bytes past its end so no header straddles unseen.
        part = arr[start : min(arr.size, start + _SCAN_WINDOW + 3)]
        hits = np.flatnonzero((part[:-3] == 0xFF) & ((part[1:-2] & 0xE0) == 0xE0))
        found.append(hits + start)
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def _has_mpeg_chain(data: bytes) -> bool:
    arr = np.frombuffer(data, dtype=np.uint8)
    pos = _sync_positions(arr)
    if pos.size < MPEG_CHAIN:
        return False
    b1, b2 = arr[pos + 1].astype(np.int64), arr[pos + 2].astype(np.int64)
    length = _FRAME_LENGTHS[((b1 & 0x1E) << 6) | (b2 >> 1)]
    # One stream keeps version, layer and sample rate from frame to frame.
    stream = ((b1 & 0x1E) << 8) | (b2 & 0x0C)
    valid = length > 0
    pos, length, stream = pos[valid], length[valid], stream[valid]
    alive = np.arange(pos.size)
    current = alive
    for _ in range(MPEG_CHAIN - 1):
        nxt = np.searchsorted(pos, pos[current] + length[current])
        nxt = np.minimum(nxt, pos.size - 1)
        ok = (pos[nxt] == pos[current] + length[current]) & (stream[nxt] == stream[alive])
        alive, current = alive[ok], nxt[ok]
        if alive.size == 0:
            return False
    return True
