"""How long an uploaded audio file plays, from its bytes alone (pure; no decoding libraries).

An uploaded file's header is a claim by the client, who pays by the minute, so a duration is
never read from a size field. An uncompressed WAV (PCM, float, A-law, mu-law) is timed by its
bytes: every byte from its data chunk to the end of the file, at the rate its ``fmt `` chunk's
sample rate, channel count and sample width give. That is the larger of what its header says
(the data chunk's size, which a truncated upload cannot fill) and what the bytes hold, and it is
what ffmpeg plays when the data size is 0 (as streaming writers leave it) or when more data
chunks follow. Any other file, a compressed WAV included (its byte rate is only another
claim), is not parsed: ``bound_ms`` gives an upper bound from its size, assuming 16 kbit/s,
below what speech codecs use in practice (a long hold, never a short one). MP3, FLAC, Ogg or
M4A headers are never read, so no header of theirs can shorten a bill.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

FLOOR_BYTES_PER_SECOND = 2_000  # 16 kbit/s: what a duration-less answer is billed at
HOLD_BYTES_PER_SECOND = 500  # 4 kbit/s, below AMR-NB and Opus's floor: what is held
MAX_MS = 7 * 24 * 3600 * 1000  # a reported duration above a week is nonsense, not a bill
# 192 kHz stereo 32-bit (or 48 kHz 7.1 float): above any recording made for speech. A faster
# fmt chunk is timed at this rate, so no sample rate makes a large upload nearly free.
MAX_WAV_BYTES_PER_SECOND = 1_536_000
# Format tags whose byte rate follows from sample rate, channels and sample width alone:
# PCM, IEEE float, A-law, mu-law. 0xFFFE (extensible) names one of them in its sub-format.
UNCOMPRESSED_WAV_TAGS = frozenset({1, 3, 6, 7})
EXTENSIBLE_TAG = 0xFFFE
# Real files have a handful (fmt, fact, LIST, bext, JUNK...); millions of empty chunks would
# be a slow walk on the event loop. More than this: bounded by the size, like any other file.
MAX_CHUNKS_BEFORE_DATA = 64


def wav_duration_ms(data: bytes) -> int | None:
    """Milliseconds of audio in an uncompressed WAV file (rounded up), or None when ``data`` is
    not one whose rate can be read (the caller then bounds it by its size).

    The RIFF and data chunk sizes are not read: the bytes from the first data chunk on are
    timed, so a size field of 0 or 1 s over 60 s of samples is 60 s, and a header claiming more
    than was uploaded is what arrived. Neither are the byte rate and block align fields, which
    decoders recompute for PCM: a 0 there changes nothing. Bytes that follow the samples (a
    trailing metadata chunk) are counted as audio: a few milliseconds over, never under.
    """
    rate = _wav_rate(data)
    if rate is None:
        return None
    # The first "data" anywhere: a decoder that walks the chunks differently (not skipping an
    # odd chunk's pad byte, say) must not find samples before the ones timed here.
    audio = len(data) - (data.find(b"data", 12) + 8)
    return -(-audio * 1000 // min(rate, MAX_WAV_BYTES_PER_SECOND))


def _wav_rate(data: bytes) -> int | None:
    """Bytes per second of a RIFF WAVE file whose ``fmt `` chunks before its first data chunk
    all describe uncompressed samples; else None. Of several, the slowest: ffmpeg reads the
    first, Python's ``wave`` the last, and neither may find audio longer than timed here."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, rate = 12, None
    for _ in range(MAX_CHUNKS_BEFORE_DATA):
        if pos + 8 > len(data):
            return None
        tag, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if tag == b"data":
            return rate
        if tag == b"fmt ":
            this = _fmt_rate(data[pos + 8 : pos + 8 + size])
            if this is None:
                return None
            rate = this if rate is None else min(rate, this)
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return None


def _fmt_rate(fmt: bytes) -> int | None:
    """Bytes per second from a fmt chunk's sample rate, channels and bits per sample."""
    if len(fmt) < 16:
        return None
    tag = int.from_bytes(fmt[0:2], "little")
    if tag == EXTENSIBLE_TAG and len(fmt) >= 26:
        tag = int.from_bytes(fmt[24:26], "little")  # the sub-format GUID's first two bytes
    if tag not in UNCOMPRESSED_WAV_TAGS:
        return None
    channels = int.from_bytes(fmt[2:4], "little")
    sample_rate = int.from_bytes(fmt[4:8], "little")
    sample_bytes = -(-int.from_bytes(fmt[14:16], "little") // 8)
    return sample_rate * channels * sample_bytes or None


def bound_ms(size: int, bytes_per_second: int = FLOOR_BYTES_PER_SECOND) -> int:
    """An upper bound of the duration of ``size`` bytes of compressed audio."""
    return -(-size * 1000 // bytes_per_second)


def seconds_to_ms(value: object) -> int | None:
    """A JSON duration in seconds (int or float) as whole milliseconds, rounded up.

    A float is read through its shortest decimal form, so ``8.47`` is 8470 ms, not 8471.
    Returns None for anything that is not a finite number from 0 to ``MAX_MS``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        exact = Decimal(repr(value)) * 1000
    except InvalidOperation:
        return None
    if not 0 <= exact <= MAX_MS:
        return None
    return int(exact.to_integral_value(rounding="ROUND_CEILING"))
