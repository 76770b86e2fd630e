"""Audio durations: WAV read exactly, anything else bounded, upstream seconds read exactly."""

from __future__ import annotations

import io
import random
import struct
import wave

import pytest

from gateway.codecs.audiofile import (
    MAX_MS,
    MAX_WAV_BYTES_PER_SECOND,
    bound_ms,
    seconds_to_ms,
    wav_duration_ms,
)


def wav(frames: int, rate: int = 16_000, channels: int = 1, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(frames * channels * width))
    return out.getvalue()


@pytest.mark.parametrize(
    ("frames", "rate", "channels", "width", "ms"),
    [
        (40_000, 16_000, 1, 2, 2500),
        (44_100, 44_100, 2, 2, 1000),
        (1, 8_000, 1, 1, 1),  # 0.125 ms rounds up to 1
        (0, 8_000, 1, 2, 0),
        (24_001, 48_000, 2, 3, 501),  # 500.02 ms rounds up
    ],
)
def test_wav_durations(frames: int, rate: int, channels: int, width: int, ms: int) -> None:
    assert wav_duration_ms(wav(frames, rate, channels, width)) == ms


def test_a_header_that_claims_more_than_the_file_holds() -> None:
    data = wav(16_000)  # 1 s
    assert wav_duration_ms(data[: 44 + 8_000]) == 250  # only 4000 frames arrived


@pytest.mark.parametrize("data", [b"", b"ID3\x04", b"RIFF", b"RIFF\x00\x00\x00\x00WAVE", b"x" * 99])
def test_not_a_wav(data: bytes) -> None:
    assert wav_duration_ms(data) is None


def wave_module_ms(data: bytes) -> int:
    """What Python's ``wave`` module reads (the frames the data chunk's size field admits)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            frames = len(w.readframes(w.getnframes())) // (w.getsampwidth() * w.getnchannels())
            return -(-frames * 1000 // w.getframerate())
    except Exception:
        return 0


def test_mangled_wavs_never_raise_nor_read_less_than_the_wave_module() -> None:
    rng = random.Random(5)
    base = wav(400)
    for _ in range(5000):
        data = bytearray(base)
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(60)] = rng.randrange(256)
        mangled = bytes(data[: rng.randrange(len(data) + 1)])
        result = wav_duration_ms(mangled)
        if result is None:  # then the caller bounds it by its size, at 16 kbit/s
            result = bound_ms(len(mangled))
        assert result >= wave_module_ms(mangled)


def test_bound_assumes_16_kbit_per_second() -> None:
    assert bound_ms(2000) == 1000
    assert bound_ms(1) == 1
    assert bound_ms(0) == 0


@pytest.mark.parametrize(
    ("value", "ms"),
    [(3, 3000), (8.47, 8470), (8.470000267028809, 8471), (0.0001, 1), (0, 0), (0.0, 0)],
)
def test_seconds_to_ms(value: object, ms: int) -> None:
    assert seconds_to_ms(value) == ms


@pytest.mark.parametrize(
    "value", [None, True, "3", -1, -0.5, float("nan"), float("inf"), 1e300, MAX_MS / 1000 + 1]
)
def test_seconds_that_are_not_a_duration(value: object) -> None:
    assert seconds_to_ms(value) is None


# -- headers that claim less than the bytes hold -------------------------------------------

SIXTY_SECONDS = bytes(16_000 * 2 * 60)  # 16 kHz, mono, 16-bit


def fmt_chunk(
    tag: int = 1,
    channels: int = 1,
    rate: int = 16_000,
    bits: int = 16,
    byte_rate: int | None = None,
    block_align: int | None = None,
) -> bytes:
    align = channels * bits // 8 if block_align is None else block_align
    byte_rate = rate * align if byte_rate is None else byte_rate
    return b"fmt " + struct.pack("<IHHIIHH", 16, tag, channels, rate, byte_rate, align, bits)


def riff(
    fmt: bytes,
    samples: bytes,
    *,
    data_size: int | None = None,
    riff_size: int | None = None,
    between: bytes = b"",
) -> bytes:
    """A WAV file built by hand, its size fields saying whatever a test wants."""
    size = len(samples) if data_size is None else data_size
    body = b"WAVE" + fmt + between + b"data" + struct.pack("<I", size) + samples
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def test_an_honest_hand_built_wav() -> None:
    assert wav_duration_ms(riff(fmt_chunk(), SIXTY_SECONDS)) == 60_000


def test_a_data_size_of_zero_counts_every_sample() -> None:
    # Streaming writers leave it 0 (and ffmpeg then plays to the end of the file); so can a liar.
    assert wav_duration_ms(riff(fmt_chunk(), SIXTY_SECONDS, data_size=0)) == 60_000


def test_a_data_size_of_one_second_over_sixty_seconds_of_samples() -> None:
    assert wav_duration_ms(riff(fmt_chunk(), SIXTY_SECONDS, data_size=32_000)) == 60_000


@pytest.mark.parametrize("riff_size", [0, 4, 36, 44])
def test_a_small_riff_size_counts_every_sample(riff_size: int) -> None:
    assert wav_duration_ms(riff(fmt_chunk(), SIXTY_SECONDS, riff_size=riff_size)) == 60_000


def test_a_streaming_data_size_is_not_a_claim_to_bill() -> None:
    # 0xFFFFFFFF ("unknown") would be 37 hours of 16 kHz audio: what arrived is what counts.
    data = riff(fmt_chunk(), SIXTY_SECONDS, data_size=0xFFFF_FFFF, riff_size=0xFFFF_FFFF)
    assert wav_duration_ms(data) == 60_000


def test_a_zero_byte_rate_and_block_align_change_nothing() -> None:
    # Decoders derive PCM's rate from sample rate, channels and width; so does the gateway.
    lying = fmt_chunk(byte_rate=0, block_align=0)
    assert wav_duration_ms(riff(lying, SIXTY_SECONDS)) == 60_000
    assert wav_duration_ms(riff(lying, SIXTY_SECONDS, data_size=0)) == 60_000


def test_a_huge_byte_rate_field_changes_nothing() -> None:
    lying = fmt_chunk(byte_rate=0xFFFF_FFFF, block_align=0xFFFF)
    assert wav_duration_ms(riff(lying, SIXTY_SECONDS, data_size=0)) == 60_000


@pytest.mark.parametrize(
    "fmt",
    [
        pytest.param(fmt_chunk(rate=0, byte_rate=0), id="rate-0"),
        pytest.param(fmt_chunk(channels=0, byte_rate=0, block_align=0), id="channels-0"),
        pytest.param(fmt_chunk(bits=0, byte_rate=0, block_align=0), id="bits-0"),
        pytest.param(fmt_chunk()[:20], id="fmt-too-short"),
        pytest.param(b"", id="no-fmt"),
        pytest.param(fmt_chunk(tag=0x55, byte_rate=10**9 // 8), id="mp3-in-wav"),
        pytest.param(fmt_chunk(tag=2), id="adpcm"),
    ],
)
def test_a_rate_that_cannot_be_trusted_leaves_the_size_bound(fmt: bytes) -> None:
    """None: the caller bills by size at 16 kbit/s (and holds at 4), never 0 nor a division."""
    data = riff(fmt, SIXTY_SECONDS, data_size=0)
    assert wav_duration_ms(data) is None
    assert bound_ms(len(data)) > 60_000


def test_an_absurd_rate_is_capped() -> None:
    # 4.29 GHz x 65535 channels x 8 bytes would make any upload last a few nanoseconds.
    absurd = fmt_chunk(channels=0xFFFF, rate=0xFFFF_FFFF, bits=64, byte_rate=0, block_align=0)
    ms = wav_duration_ms(riff(absurd, SIXTY_SECONDS, data_size=0))
    assert ms == -(-len(SIXTY_SECONDS) * 1000 // MAX_WAV_BYTES_PER_SECOND) > 0


@pytest.mark.parametrize(
    ("tag", "bits"), [(3, 32), (6, 8), (7, 8)], ids=["float", "a-law", "mu-law"]
)
def test_other_uncompressed_formats_are_timed_by_their_rate(tag: int, bits: int) -> None:
    samples = bytes(8_000 * bits // 8 * 3)  # 3 s at 8 kHz, mono
    assert wav_duration_ms(riff(fmt_chunk(tag=tag, rate=8_000, bits=bits), samples)) == 3000


def test_a_second_data_chunk_counts_too() -> None:
    # ffmpeg looks for more data chunks after the first one ends.
    second = b"data" + struct.pack("<I", len(SIXTY_SECONDS)) + SIXTY_SECONDS
    data = riff(fmt_chunk(), SIXTY_SECONDS + second, data_size=len(SIXTY_SECONDS))
    assert wav_duration_ms(data) >= 120_000  # type: ignore[operator]


def test_chunks_before_the_data_are_skipped_with_their_pad_byte() -> None:
    odd = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\x00"
    assert wav_duration_ms(riff(fmt_chunk(), SIXTY_SECONDS, between=odd)) == 60_000


def test_of_two_fmt_chunks_the_slower_times_the_file() -> None:
    fast = fmt_chunk(rate=48_000, channels=2)  # would make 60 s of 16 kHz mono last 10 s
    for fmts in ((fast, fmt_chunk()), (fmt_chunk(), fast)):
        assert wav_duration_ms(riff(fmts[0], SIXTY_SECONDS, between=fmts[1])) == 60_000


def test_a_file_of_countless_empty_chunks_is_not_walked_to_its_end() -> None:
    empty = b"junk" + struct.pack("<I", 0)
    assert wav_duration_ms(riff(fmt_chunk(), SIXTY_SECONDS, between=empty * 62)) == 60_000
    assert wav_duration_ms(riff(fmt_chunk(), SIXTY_SECONDS, between=empty * 500_000)) is None


def test_a_walk_that_skips_pad_bytes_differently_finds_no_earlier_audio() -> None:
    """A decoder that does not skip an odd chunk's pad byte lands on a data chunk one byte
    before the padded walk does, and plays everything after it; the padded walk reads the same
    bytes as a chunk it skips, up to an empty data chunk at the end."""
    samples = SIXTY_SECONDS
    body = (
        b"WAVE" + fmt_chunk()
        + b"junk" + struct.pack("<I", 1) + b"x"  # odd: the padded walk skips one byte more
        + b"data" + b"\x00"  # the unpadded walk: a data chunk of 0x1D4C0000 bytes...
        + struct.pack("<I", len(samples))  # ...the padded walk: chunk "ata\0" of this size
        + samples
        + b"data" + struct.pack("<I", 0)  # where the padded walk finds its data chunk
    )  # fmt: skip
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    assert wav_duration_ms(data) >= 60_000  # type: ignore[operator]
