"""Audio durations: WAV read exactly, anything else bounded, upstream seconds read exactly."""

from __future__ import annotations

import io
import random
import wave

import pytest

from gateway.codecs.audiofile import MAX_MS, bound_ms, seconds_to_ms, wav_duration_ms


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


def test_mangled_wavs_never_raise() -> None:
    rng = random.Random(5)
    base = wav(400)
    for _ in range(5000):
        data = bytearray(base)
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(60)] = rng.randrange(256)
        result = wav_duration_ms(bytes(data[: rng.randrange(len(data) + 1)]))
        assert result is None or result >= 0


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
