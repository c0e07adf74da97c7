"""The audio adapter: accept WAV/MP3 by content, measure by decoding, refuse the rest (R27)."""

from __future__ import annotations

import io
import os
import traceback
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from callvault.adapters.audio import (
    MAX_DURATION_SECONDS,
    PEAK_BUCKETS,
    analyse,
    contains_plaintext_audio,
    peaks_to_list,
    sniff,
    starts_with_plaintext_audio,
)
from callvault.adapters.audio.peaks import PeakAccumulator
from callvault.core.errors import InvalidInput, UnsupportedAudio
from callvault.testing.audio import (
    SAMPLE_PHRASES_SV,
    TONE_ENCODINGS,
    WAV_ENCODINGS,
    make_mp3,
    make_speech_wav,
    make_tone_wav,
    wav_header,
)

LIMIT = 50_000_000
# Frames per codec block: block codecs pad the last block, so their decoded
# length may exceed the source by up to one block.
# (sox ends GSM 6.10 with one extra 320-frame block of its own.)
BLOCK_FRAMES = {"ima_adpcm": 505, "ms_adpcm": 500, "gsm610": 640}
CODEC_OF = {
    "pcm8": "pcm_u8", "pcm16": "pcm_s16le", "pcm24": "pcm_s24le", "pcm32": "pcm_s32le",
    "float": "pcm_f32le", "ulaw": "ulaw", "alaw": "alaw", "ima_adpcm": "ima_adpcm",
    "ms_adpcm": "ms_adpcm", "gsm610": "gsm610",
}  # fmt: skip
# A file name that carries a (reserved test) phone number and personnummer.
PHI_NAME = "samtal_46701740605_19121212-1212"
PHI_FRAGMENTS = ("1740605", "19121212", "samtal")


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def speech_wav(audio_dir: Path) -> Path:
    return make_speech_wav(audio_dir / "speech.wav", SAMPLE_PHRASES_SV[1], encoding="pcm16")


@pytest.fixture(scope="module")
def cbr_mp3(audio_dir: Path, speech_wav: Path) -> Path:
    return make_mp3(audio_dir / "speech_cbr.mp3", speech_wav, mode="cbr")


def refusal(path: Path, max_bytes: int = LIMIT) -> UnsupportedAudio:
    with pytest.raises(UnsupportedAudio) as caught:
        analyse(path, max_bytes=max_bytes)
    return caught.value


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- accepted audio ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "channels"),
    # GSM 6.10 is mono by definition.
    [(e, c) for e in TONE_ENCODINGS for c in (1, 2) if (e, c) != ("gsm610", 2)],
)
def test_each_wav_encoding_reports_codec_and_length_from_decoded_frames(
    tmp_path, encoding, channels
):
    wav = make_tone_wav(tmp_path / "t.wav", 1.5, 16000, encoding, channels=channels)
    info = analyse(wav, max_bytes=LIMIT)
    truth = 24000
    assert (info.media_type, info.container) == ("audio/wav", "wav")
    assert info.codec == CODEC_OF[encoding]
    assert (info.sample_rate, info.channels) == (16000, channels)
    assert truth <= info.frames <= truth + BLOCK_FRAMES.get(encoding, 0)
    assert info.duration_seconds == info.frames / 16000
    assert info.size_bytes == wav.stat().st_size


@pytest.mark.parametrize("encoding", WAV_ENCODINGS)
def test_speech_wav_in_each_telephony_encoding_is_accepted(audio_dir, speech_wav, encoding):
    wav = make_speech_wav(audio_dir / f"s_{encoding}.wav", SAMPLE_PHRASES_SV[1], encoding=encoding)
    info = analyse(wav, max_bytes=LIMIT)
    truth = soundfile.info(str(speech_wav)).frames
    expected = ("audio/wav", CODEC_OF[encoding], 8000)
    assert (info.media_type, info.codec, info.sample_rate) == expected
    assert truth <= info.frames <= truth + BLOCK_FRAMES.get(encoding, 0)


def test_cbr_mp3_duration_matches_the_source_within_one_frame(speech_wav, cbr_mp3):
    info = analyse(cbr_mp3, max_bytes=LIMIT)
    truth = soundfile.info(str(speech_wav)).frames
    assert (info.media_type, info.container, info.codec) == ("audio/mpeg", "mp3", "mp3")
    assert (info.sample_rate, info.channels) == (8000, 1)
    assert abs(info.frames - truth) <= 576  # one MPEG-2.5 Layer III frame


def test_stereo_mp3_reports_two_channels(tmp_path):
    wav = make_tone_wav(tmp_path / "st.wav", 2.0, 16000, "pcm16", channels=2)
    info = analyse(make_mp3(tmp_path / "st.mp3", wav, mode="cbr"), max_bytes=LIMIT)
    assert (info.channels, info.sample_rate) == (2, 16000)
    assert abs(info.frames - 32000) <= 576  # one MPEG-2 Layer III frame


def test_vbr_mp3_without_xing_is_measured_by_decoding_not_by_its_header(tmp_path, speech_wav):
    # Three seconds of silence first: lame encodes them at the lowest bitrate,
    # so a duration estimated from the first frame's bitrate is far too long.
    rate = 22050
    speech = make_speech_wav(tmp_path / "s22.wav", SAMPLE_PHRASES_SV[0], rate=rate)
    samples, _ = soundfile.read(str(speech), dtype="int16")
    source = tmp_path / "source.wav"
    soundfile.write(str(source), np.concatenate([np.zeros(3 * rate, np.int16), samples]), rate)
    mp3 = make_mp3(tmp_path / "vbr.mp3", source, mode="vbr_no_xing")
    head = mp3.read_bytes()[:2048]
    assert b"Xing" not in head and b"Info" not in head

    info = analyse(mp3, max_bytes=LIMIT)

    truth = soundfile.info(str(source)).duration
    assert abs(info.duration_seconds - truth) < 0.1
    with av.open(str(mp3)) as container:
        header_estimate = container.duration / av.time_base
    assert abs(header_estimate - truth) > 5.0


def test_mp3_named_wav_is_accepted_as_mp3(tmp_path, cbr_mp3):
    disguised = write(tmp_path / "call.wav", cbr_mp3.read_bytes())
    info = analyse(disguised, max_bytes=LIMIT)
    assert (info.media_type, info.container) == ("audio/mpeg", "mp3")


def test_wav_named_mp3_is_accepted_as_wav(tmp_path, speech_wav):
    disguised = write(tmp_path / "call.mp3", speech_wav.read_bytes())
    assert analyse(disguised, max_bytes=LIMIT).media_type == "audio/wav"


def test_mp3_cut_inside_its_final_frame_is_accepted(tmp_path, cbr_mp3):
    data = cbr_mp3.read_bytes()
    info = analyse(write(tmp_path / "cut.mp3", data[:-40]), max_bytes=LIMIT)
    whole = analyse(cbr_mp3, max_bytes=LIMIT)
    assert abs(info.frames - whole.frames) <= 576


def test_path_that_looks_like_a_url_is_read_as_a_local_file(tmp_path, cbr_mp3, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = write(tmp_path / "http:example.invalid", cbr_mp3.read_bytes())
    assert analyse(Path(local.name), max_bytes=LIMIT).codec == "mp3"


@pytest.mark.parametrize("fixture", ["speech_wav", "cbr_mp3"])
def test_anonymous_memory_file_can_be_analysed_without_touching_disk(request, fixture):
    # Ingest may spool uploads into a memfd so no plaintext file ever exists.
    fd = os.memfd_create("upload")
    try:
        os.write(fd, request.getfixturevalue(fixture).read_bytes())
        info = analyse(Path(f"/proc/self/fd/{fd}"), max_bytes=LIMIT)
    finally:
        os.close(fd)
    assert info.frames > 0


def test_file_of_exactly_max_bytes_is_accepted(speech_wav):
    size = speech_wav.stat().st_size
    assert analyse(speech_wav, max_bytes=size).size_bytes == size


# --- refused input ----------------------------------------------------------------------


def _pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _zip_of_wav(wav: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("call.wav", wav)
    return buf.getvalue()


NON_AUDIO = {
    "pdf": lambda wav: _pdf(),
    "text": lambda wav: "Samtal 2019-03-01, återring 070-1740605\n".encode() * 50,
    "random": lambda wav: np.random.default_rng(7).bytes(20_000),  # starts 8b 4a: no sync
    "jpeg": lambda wav: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + bytes(2000) + b"\xff\xd9",
    "zip": _zip_of_wav,
}


@pytest.mark.parametrize("kind", sorted(NON_AUDIO))
@pytest.mark.parametrize("suffix", [".wav", ".mp3"])
def test_non_audio_named_as_audio_is_refused(tmp_path, speech_wav, kind, suffix):
    data = NON_AUDIO[kind](speech_wav.read_bytes())
    error = refusal(write(tmp_path / f"call{suffix}", data))
    assert str(error) == "refused audio input: not WAV or MP3 audio"


def test_zero_length_file_is_refused_as_empty(tmp_path):
    assert "empty file" in str(refusal(write(tmp_path / "a.wav", b"")))


def test_wav_cut_mid_data_is_refused_as_truncated(tmp_path, speech_wav):
    data = speech_wav.read_bytes()
    assert "truncated" in str(refusal(write(tmp_path / "cut.wav", data[: len(data) // 2])))


def test_header_only_wav_is_refused(tmp_path):
    promised = wav_header(sample_rate=8000, channels=1, data_size=16000)
    assert "truncated" in str(refusal(write(tmp_path / "h.wav", promised)))
    empty = wav_header(sample_rate=8000, channels=1, data_size=0)
    assert "no audio frames" in str(refusal(write(tmp_path / "e.wav", empty)))


def test_wav_without_data_chunk_is_refused(tmp_path):
    header = wav_header(sample_rate=8000, channels=1, data_size=0)[:36]  # RIFF + fmt only
    assert "no audio data" in str(refusal(write(tmp_path / "n.wav", header)))


def test_file_over_max_bytes_is_refused_before_decoding(speech_wav):
    limit = speech_wav.stat().st_size - 1
    assert f"larger than the {limit / 1e6:g} MB limit" in str(refusal(speech_wav, limit))


@pytest.mark.parametrize(
    ("rate", "channels"),
    [
        (0, 1),
        (1, 1),
        (3999, 1),
        (192_001, 1),
        (4_000_000_000, 1),
        (8000, 0),
        (8000, 9),
        (8000, 300),
    ],
)
def test_absurd_wav_header_is_refused(tmp_path, rate, channels):
    data = wav_header(sample_rate=rate, channels=channels, data_size=8000) + bytes(8000)
    error = str(refusal(write(tmp_path / "x.wav", data)))
    assert "sample rate outside" in error or "channel count outside" in error


def test_unknown_wav_encoding_is_refused(tmp_path):
    data = wav_header(sample_rate=8000, channels=1, data_size=8000, format_tag=0x1234)
    refusal(write(tmp_path / "x.wav", data + bytes(8000)))


def test_wav_longer_than_the_duration_limit_is_refused_without_decoding_it(tmp_path):
    # 8-bit mono at 4 kHz: 4,000 bytes a second.  The file is sparse, so this
    # costs no disk; refusal must come from the header before any decoding.
    data_size = (MAX_DURATION_SECONDS + 1) * 4000
    path = write(tmp_path / "long.wav", wav_header(sample_rate=4000, channels=1, bits=8,
                                                    data_size=data_size))  # fmt: skip
    with path.open("r+b") as f:
        f.truncate(44 + data_size)
    assert "longer than the 24 h limit" in str(refusal(path, max_bytes=10**10))


def test_mp3_cut_short_of_its_info_frame_count_is_refused(tmp_path, cbr_mp3):
    data = cbr_mp3.read_bytes()
    cut = write(tmp_path / "cut.mp3", data[: len(data) // 2])
    assert "truncated" in str(refusal(cut))


@pytest.mark.parametrize("filler", ["zeros", "random"])
def test_mp3_damaged_in_the_middle_is_refused(tmp_path, cbr_mp3, filler):
    data = bytearray(cbr_mp3.read_bytes())
    middle = len(data) // 2
    hole = bytes(3000) if filler == "zeros" else np.random.default_rng(3).bytes(3000)
    data[middle : middle + 3000] = hole
    refusal(write(tmp_path / "hole.mp3", bytes(data)))


def test_mp3_whose_sample_rate_changes_mid_stream_is_refused(tmp_path):
    low = make_tone_wav(tmp_path / "a.wav", 1.0, 8000)
    high = make_tone_wav(tmp_path / "b.wav", 1.0, 16000)
    first = make_mp3(tmp_path / "a.mp3", low, mode="vbr_no_xing").read_bytes()
    second = make_mp3(tmp_path / "b.mp3", high, mode="vbr_no_xing").read_bytes()
    refusal(write(tmp_path / "joined.mp3", first + second))


def test_id3_tag_followed_by_a_document_is_refused(tmp_path):
    id3 = b"ID3\x03\x00\x00\x00\x00\x00\x20" + bytes(32)
    refusal(write(tmp_path / "x.mp3", id3 + _pdf() + np.random.default_rng(5).bytes(50_000)))


def test_missing_path_or_directory_is_invalid_input_not_audio_error(tmp_path):
    for path in (tmp_path / f"{PHI_NAME}.wav", tmp_path):
        with pytest.raises(InvalidInput) as caught:
            analyse(path, max_bytes=LIMIT)
        assert not isinstance(caught.value, UnsupportedAudio)
        assert all(fragment not in _rendered(caught.value) for fragment in PHI_FRAGMENTS)


def _rendered(error: BaseException) -> str:
    """Everything a logger would print for this exception, chained causes included."""
    return "".join(traceback.format_exception(error))


@pytest.mark.parametrize("case", ["pdf", "truncated_wav", "damaged_mp3", "id3_garbage", "empty"])
def test_refusal_never_names_the_file_nor_chains_decoder_messages(
    tmp_path, speech_wav, cbr_mp3, case
):
    wav, mp3 = speech_wav.read_bytes(), cbr_mp3.read_bytes()
    data = {
        "pdf": _pdf(),
        "truncated_wav": wav[:-1000],
        "damaged_mp3": mp3[:5000] + bytes(4000) + mp3[9000:],
        "id3_garbage": b"ID3\x03\x00\x00\x00\x00\x00\x00" + np.random.default_rng(1).bytes(9000),
        "empty": b"",
    }[case]
    error = refusal(write(tmp_path / f"{PHI_NAME}.wav", data))
    assert all(fragment not in _rendered(error) for fragment in PHI_FRAGMENTS)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


# --- peaks ------------------------------------------------------------------------------


def test_peaks_have_bounded_length_and_match_the_tone_amplitude(tmp_path):
    info = analyse(make_tone_wav(tmp_path / "t.wav", 5.0, 8000, amplitude=0.5), max_bytes=LIMIT)
    pairs = peaks_to_list(info.peaks)
    assert len(info.peaks) == 2 * PEAK_BUCKETS and len(pairs) == PEAK_BUCKETS
    assert all(-1.0 <= low <= high <= 1.0 for low, high in pairs)
    # 40 frames per bucket cover more than a 440 Hz period: every bucket sees ±0.5.
    assert all(abs(high - 0.5) < 0.02 and abs(low + 0.5) < 0.02 for low, high in pairs)


@pytest.mark.parametrize("container", ["wav", "mp3"])
def test_peaks_follow_the_signal_in_time_order(tmp_path, container):
    rate = 16000
    tone = make_tone_wav(tmp_path / "tone.wav", 4.0, rate, amplitude=0.8)
    signal, _ = soundfile.read(str(tone), dtype="int16")
    path = tmp_path / "quiet_then_loud.wav"
    soundfile.write(str(path), np.concatenate([np.zeros(4 * rate, np.int16), signal]), rate)
    if container == "mp3":
        path = make_mp3(tmp_path / "ql.mp3", path, mode="cbr")
    pairs = peaks_to_list(analyse(path, max_bytes=LIMIT).peaks)
    highs = np.array([high for _, high in pairs])
    assert highs[: int(0.45 * len(pairs))].max() < 0.05
    # (MP3 shifts the signal by the encoder delay, ~70 ms here: spare the ends.)
    assert highs[int(0.55 * len(pairs)) : int(0.95 * len(pairs))].min() > 0.6


def test_very_short_wav_has_one_peak_bucket_per_frame(tmp_path):
    samples = np.array([0, 16384, -16384, 32767, -32768, 0, 0, 8192], dtype=np.int16)
    path = tmp_path / "short.wav"
    soundfile.write(str(path), samples, 8000)
    pairs = peaks_to_list(analyse(path, max_bytes=LIMIT).peaks)
    assert [round(high * 127) for _, high in pairs] == [0, 64, -64, 127, -127, 0, 0, 32]


def test_float_wav_with_nan_and_overrange_samples_gives_bounded_peaks(tmp_path):
    samples = np.array([np.nan, 3.0, -7.0, np.inf, 0.25] * 2000, dtype=np.float32)
    path = tmp_path / "f.wav"
    soundfile.write(str(path), samples, 8000, subtype="FLOAT")
    pairs = peaks_to_list(analyse(path, max_bytes=LIMIT).peaks)
    assert all(-1.0 <= low <= high <= 1.0 for low, high in pairs)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    frames=st.integers(1, 120_000),
    channels=st.integers(1, 3),
    cuts=st.lists(st.integers(1, 40_000), max_size=12),
)
def test_peaks_do_not_depend_on_how_samples_are_split_into_blocks(seed, frames, channels, cuts):
    signal = np.random.default_rng(seed).integers(-32768, 32767, frames * channels, np.int16)
    whole = PeakAccumulator(32768.0)
    whole.add(signal, channels)
    pieces = PeakAccumulator(32768.0)
    start = 0
    for cut in [*cuts, frames]:
        end = min(frames, start + cut)
        pieces.add(signal[start * channels : end * channels], channels)
        start = end
    expected, got = whole.finish(), pieces.finish()
    assert got == expected
    values = np.frombuffer(got, np.int8)
    assert len(values) == 2 * min(frames, PEAK_BUCKETS)
    assert values.max() == round(signal.max() / 32768 * 127)
    assert values.min() == round(signal.min() / 32768 * 127)


def test_peaks_to_list_refuses_odd_length():
    with pytest.raises(InvalidInput):
        peaks_to_list(b"\x00\x01\x02")


# --- signatures -------------------------------------------------------------------------


def test_sniff_judges_content_not_names(speech_wav, cbr_mp3):
    assert sniff(speech_wav.read_bytes()[:64]) == "wav"
    assert sniff(cbr_mp3.read_bytes()[:64]) == "mp3"
    assert sniff(b"ID3\x04\x00\x00\x00\x00\x01\x00") == "mp3"
    assert sniff(b"\xff\xfd\x90\x00") is None  # MPEG-1 Layer II: not accepted as MP3
    assert sniff(b"\xff\xfb\xf0\x00") is None  # bitrate index 15 is invalid
    assert sniff(_pdf()) is None
    assert sniff(b"RIFF\x00\x00\x00\x00AVI ") is None


def test_stored_bytes_starting_with_audio_are_detected(speech_wav, cbr_mp3):
    assert starts_with_plaintext_audio(speech_wav.read_bytes())
    assert starts_with_plaintext_audio(cbr_mp3.read_bytes())
    assert starts_with_plaintext_audio(b"ID3\x03")
    assert starts_with_plaintext_audio(b"\xff\xfd\x90\x00")  # Layer II counts for R4
    cv1_like = b"\x28" + np.random.default_rng(2).bytes(4096)
    assert not starts_with_plaintext_audio(cv1_like)


def test_audio_embedded_anywhere_is_found_but_random_bytes_are_not(tmp_path, speech_wav):
    noise = np.random.default_rng(11).bytes(4_000_000)
    assert not contains_plaintext_audio(noise)
    vbr = make_mp3(tmp_path / "v.mp3", speech_wav, mode="vbr_no_xing").read_bytes()
    for audio in (speech_wav.read_bytes(), vbr[1000:20_000]):  # a bare MP3 run without tags
        assert contains_plaintext_audio(noise[:777] + audio + noise[:333])
    assert contains_plaintext_audio(noise[:99] + b"ID3\x04\x00\x00\x00\x00\x10\x00" + noise[:99])


# --- generators -------------------------------------------------------------------------


def test_generators_fail_loudly_when_a_tool_is_missing(tmp_path, monkeypatch, speech_wav):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeError, match="espeak-ng"):
        make_speech_wav(tmp_path / "s.wav", "hej")
    with pytest.raises(RuntimeError, match="lame"):
        make_mp3(tmp_path / "s.mp3", speech_wav)


def test_generators_are_deterministic(tmp_path, speech_wav, cbr_mp3):
    again = make_speech_wav(tmp_path / "s.wav", SAMPLE_PHRASES_SV[1], encoding="pcm16")
    assert again.read_bytes() == speech_wav.read_bytes()
    assert make_mp3(tmp_path / "s.mp3", again).read_bytes() == cbr_mp3.read_bytes()
