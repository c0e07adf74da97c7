"""Synthetic test audio, generated on demand into a directory the caller owns.

Nothing here is a real recording: speech is synthesised by espeak-ng from
invented sentences whose identifiers come from ranges reserved for testing
(Skatteverket's test personnummer, PTS's numbers reserved for fiction).
Every generator is deterministic for the same inputs and tool versions, and
fails with a ``RuntimeError`` naming the missing tool (Debian packages
``espeak-ng``, ``sox``, ``lame``) rather than skipping.
"""

from __future__ import annotations

import pathlib
import shutil
import struct
import subprocess

import numpy as np
import soundfile

#: Invented caller sentences; the identifiers are reserved test values.
SAMPLE_PHRASES_SV = (
    "Hej, jag ringer om min dotter. Hon har haft feber i tre dagar.",
    "Mitt personnummer är 19121212-1212 och ni når mig på 070-174 06 05.",
    "Han hostar mycket på natten och vill inte äta.",
)
SAMPLE_PHRASES_EN = ("Hello, I am calling about a rash that will not go away.",)

# encoding -> sox output options (WAV container)
_SOX_ENCODINGS = {
    "pcm16": ("-e", "signed-integer", "-b", "16"),
    "ulaw": ("-e", "u-law", "-b", "8"),
    "alaw": ("-e", "a-law", "-b", "8"),
    "ima_adpcm": ("-e", "ima-adpcm", "-b", "4"),
    "ms_adpcm": ("-e", "ms-adpcm", "-b", "4"),
    "gsm610": (
        "-e",
        "gsm-full-rate",
    ),
}
# encoding -> libsndfile subtype
_SF_SUBTYPES = {
    "pcm8": "PCM_U8",
    "pcm16": "PCM_16",
    "pcm24": "PCM_24",
    "pcm32": "PCM_32",
    "float": "FLOAT",
    "ulaw": "ULAW",
    "alaw": "ALAW",
    "ima_adpcm": "IMA_ADPCM",
    "ms_adpcm": "MS_ADPCM",
    "gsm610": "GSM610",
}
_PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox", "lame": "lame"}
WAV_ENCODINGS = tuple(_SOX_ENCODINGS)
TONE_ENCODINGS = tuple(_SF_SUBTYPES)


def require_tool(name: str) -> str:
    """Absolute path of an external tool, or ``RuntimeError`` saying what to install."""
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name} is needed to generate test audio but is not installed "
            f"(apt-get install {_PACKAGES.get(name, name)})"
        )
    return found


def _run(argv: list[str], stdin: bytes | None = None) -> bytes:
    done = subprocess.run(argv, input=stdin, capture_output=True, check=False, timeout=120)
    if done.returncode != 0:
        tool = pathlib.Path(argv[0]).name
        raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return done.stdout


def make_speech_wav(
    path: pathlib.Path,
    text: str,
    voice: str = "sv",
    encoding: str = "pcm16",
    rate: int = 8000,
) -> pathlib.Path:
    """Synthesise ``text`` with espeak-ng and write it as a mono WAV with sox.

    ``encoding`` is one of :data:`WAV_ENCODINGS`.  The speech passes through a
    pipe, so no intermediate file exists.  Dither is off so output repeats.
    """
    flags = _SOX_ENCODINGS[encoding]
    espeak, sox = require_tool("espeak-ng"), require_tool("sox")
    speech = _run([espeak, "-v", voice, "--stdout", "--stdin"], stdin=text.encode())
    # espeak-ng writes a streaming header whose lengths are placeholders;
    # `--ignore-length` makes sox read to the end of the pipe instead.
    _run(
        [
            sox,
            "-D",
            "--ignore-length",
            "-t",
            "wav",
            "-",
            "-r",
            str(rate),
            "-c",
            "1",
            *flags,
            "-t",
            "wav",
            str(path),
        ],
        stdin=speech,
    )
    return path


def make_tone_wav(
    path: pathlib.Path,
    seconds: float,
    rate: int = 8000,
    encoding: str = "pcm16",
    *,
    channels: int = 1,
    frequency: float = 440.0,
    amplitude: float = 0.5,
) -> pathlib.Path:
    """A sine tone written by soundfile; ``encoding`` is one of :data:`TONE_ENCODINGS`."""
    frames = round(seconds * rate)
    t = np.arange(frames, dtype=np.float64) / rate
    mono = (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    signal = np.repeat(mono[:, None], channels, axis=1)
    soundfile.write(str(path), signal, rate, subtype=_SF_SUBTYPES[encoding], format="WAV")
    return path


def make_mp3(path: pathlib.Path, source_wav: pathlib.Path, mode: str = "cbr") -> pathlib.Path:
    """Encode a PCM WAV with lame.

    ``"cbr"``: 64 kbit/s with lame's Info tag (frame count, encoder delay), so
    decoders trim the padding and the length matches the source.  (At lower
    bitrates the tag does not fit a 16 kHz+ frame and lame leaves it out.)
    lame may lower the sample rate for stereo input above 32 kHz.
    ``"vbr_no_xing"``: VBR quality 4 with ``-t``, so no Xing/Info tag: the
    only way to know the duration is to decode every frame.
    """
    options = {"cbr": ["-b", "64"], "vbr_no_xing": ["-V", "4", "-t"]}[mode]
    lame = require_tool("lame")
    _run([lame, "--quiet", "--nohist", *options, str(source_wav), str(path)])
    return path


def make_noise_wav_streaming(
    path: pathlib.Path,
    seconds: float,
    rate: int = 48000,
    *,
    seed: int = 0,
    block_seconds: float = 10.0,
) -> pathlib.Path:
    """16-bit mono noise of any length, written in blocks (memory stays flat).

    One block of seeded noise is reused with a slowly varying gain (a rising
    ramp over the file), which keeps generation I/O bound and gives the
    waveform a shape that peaks can be checked against.
    """
    total = round(seconds * rate)
    block = max(1, round(block_seconds * rate))
    base = np.random.default_rng(seed).uniform(-1.0, 1.0, block).astype(np.float32)
    with soundfile.SoundFile(
        str(path), "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV"
    ) as f:
        written = 0
        while written < total:
            n = min(block, total - written)
            gain = 0.05 + 0.9 * (written / total)
            f.write((base[:n] * (gain * 32767)).astype(np.int16))
            written += n
    return path


def wav_header(
    *,
    sample_rate: int,
    channels: int,
    bits: int = 16,
    data_size: int,
    format_tag: int = 1,
) -> bytes:
    """A 44-byte canonical WAV header with whatever values a test needs (even absurd ones).

    ::

        "RIFF" len "WAVE" "fmt " 16 tag channels rate byte_rate align bits "data" data_size
    """
    align = max(1, channels * bits // 8) & 0xFFFF
    fmt = struct.pack(
        "<HHIIHH", format_tag, channels, sample_rate, sample_rate * align & 0xFFFFFFFF, align, bits
    )
    riff_len = (36 + data_size) & 0xFFFFFFFF
    return (
        b"RIFF" + struct.pack("<I", riff_len) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", data_size)
    )  # fmt: skip
