"""The mock's image generation and audio transcription answers.

Images: ``data`` holds ``n`` items, each a ``url`` or, with ``response_format: b64_json``, a
tiny PNG. Transcriptions: the duration is read from the uploaded WAV (or bounded from the byte
size, like the gateway does); ``json`` answers ``{"text", "usage": {"type": "duration",
"seconds"}}``, ``verbose_json`` adds ``duration`` and a segment, ``text``/``srt``/``vtt`` are
plain text.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from gateway.codecs.audiofile import bound_ms, wav_duration_ms
from gateway.codecs.multipart import FormError, boundary_of, parse_form
from gateway.upstream.mock_common import MockAnswer, error_answer, json_answer

# A valid 1x1 transparent PNG.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
TEXT_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}


def images_answer(payload: dict[str, Any], created: int) -> MockAnswer:
    n = payload.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
        return error_answer(400, "'n' must be an integer from 1 to 10.", "invalid_value")
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return error_answer(400, "You must provide a prompt.", "missing_prompt")
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:16]
    as_b64 = payload.get("response_format") == "b64_json"
    data: list[dict[str, Any]] = []
    for i in range(n):
        image: dict[str, Any] = (
            {"b64_json": base64.b64encode(PIXEL_PNG).decode()}
            if as_b64
            else {"url": f"https://mock.invalid/images/{digest}-{i}.png"}
        )
        image["revised_prompt"] = prompt
        data.append(image)
    return json_answer({"created": created, "data": data})


def _timestamp(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def transcription_answer(
    body: bytes, content_type: str, override: Mapping[str, Any] | None
) -> MockAnswer:
    try:
        parts = parse_form(body, boundary_of(content_type))
    except FormError as exc:
        return error_answer(400, str(exc), "invalid_multipart")
    fields = {p.name: p for p in parts}
    model = fields["model"].value(body).decode("utf-8", "replace") if "model" in fields else ""
    upload = fields.get("file")
    if not model:
        return error_answer(400, "you must provide a model parameter", "missing_model")
    if upload is None or upload.filename is None:
        return error_answer(400, "you must provide a file", "missing_file")
    if "error" in model:
        return error_answer(500, "The mock model failed, as its name asked.", "server_error")
    audio = upload.value(body)
    ms = wav_duration_ms(audio)
    ms = bound_ms(len(audio)) if ms is None else ms
    text = f"This is {model}, a mock transcription of {upload.filename}."
    fmt_field = fields.get("response_format")
    fmt = fmt_field.value(body).decode("utf-8", "replace") if fmt_field else "json"
    usage: dict[str, Any] = {"type": "duration", "seconds": -(-ms // 1000)}
    usage.update(override or {})
    if fmt == "json":
        return json_answer({"text": text, "usage": usage})
    if fmt == "verbose_json":
        seconds = ms / 1000  # a float, as OpenAI sends it
        segment = {"id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": text, "tokens": [],
                   "temperature": 0.0, "avg_logprob": -0.2, "compression_ratio": 1.0,
                   "no_speech_prob": 0.0}  # fmt: skip
        return json_answer({"task": "transcribe", "language": "english", "duration": seconds,
                            "text": text, "segments": [segment], "usage": usage})  # fmt: skip
    if fmt == "text":
        return MockAnswer(200, dict(TEXT_HEADERS), [text.encode() + b"\n"])
    if fmt in ("srt", "vtt"):
        sep = "," if fmt == "srt" else "."
        cue = f"{_timestamp(0, sep)} --> {_timestamp(ms, sep)}\n{text}\n"
        out = f"1\n{cue}" if fmt == "srt" else f"WEBVTT\n\n{cue}"
        return MockAnswer(200, dict(TEXT_HEADERS), [out.encode()])
    return error_answer(400, f"Unsupported response_format {fmt!r}.", "invalid_value")
