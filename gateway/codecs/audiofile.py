"""How long an uploaded audio file plays, from its bytes alone (pure; no decoding libraries).

WAV is read exactly with the standard library's ``wave`` module. Other formats (mp3, m4a,
ogg, webm, flac, ...) are not parsed: for them ``bound_ms`` gives an upper bound from the byte
size, assuming 16 kbit/s, below what speech codecs use in practice (a long hold, never a short
one).
"""

from __future__ import annotations

import io
import math
import wave
from decimal import Decimal, InvalidOperation

FLOOR_BYTES_PER_SECOND = 2_000  # 16 kbit/s: what a duration-less answer is billed at
HOLD_BYTES_PER_SECOND = 500  # 4 kbit/s, below AMR-NB and Opus's floor: what is held
MAX_MS = 7 * 24 * 3600 * 1000  # a reported duration above a week is nonsense, not a bill


def wav_duration_ms(data: bytes) -> int | None:
    """Milliseconds of audio in a WAV file (rounded up), or None if it is not a readable WAV.

    Counts the frames the file really holds, so a header that claims more than was uploaded
    does not inflate the duration.
    """
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            rate = wav.getframerate()
            frame_size = wav.getsampwidth() * wav.getnchannels()
            frames = len(wav.readframes(wav.getnframes())) // frame_size if frame_size else 0
    except Exception:  # on hostile bytes wave raises Error, EOFError, struct.error, RuntimeError...
        return None
    if rate <= 0:
        return None
    return -(-frames * 1000 // rate)


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
