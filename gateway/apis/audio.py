"""OpenAI's audio transcription (``POST /v1/audio/transcriptions``), billed per audio minute.

The request is a multipart form (``model``, ``file``, ...) forwarded byte for byte, boundary
and all. The duration billed is, in order of preference:

* the upstream's: ``usage.seconds`` (``{"type": "duration", "seconds": N}``) or the
  ``duration`` of a ``verbose_json`` answer; recorded as ``usage_source`` "upstream";
* the uploaded file's, when it is an uncompressed WAV: timed by its bytes, not by its header's
  size fields (``codecs.audiofile``); recorded as "file";
* else an upper bound from the file's size (16 kbit/s); recorded as "estimated".

The hold is the file's duration, or an upper bound from its size (4 kbit/s), in whole seconds
and at least one.
"""

from __future__ import annotations

from gateway import errors
from gateway.apis.base import Endpoint, ParsedRequest, check_model_name
from gateway.apis.tokens import TokenCounter
from gateway.apis.tracking import body_json
from gateway.codecs.audiofile import (
    HOLD_BYTES_PER_SECOND,
    bound_ms,
    seconds_to_ms,
    wav_duration_ms,
)
from gateway.codecs.multipart import FormError, FormPart, boundary_of, parse_form, replace_part
from pricing import ModelPrice, Usage

SINGLE_FIELDS = ("model", "file", "stream", "response_format")


def upstream_duration_ms(data: bytes) -> int | None:
    """The audio duration an upstream answer reports, if any."""
    doc = body_json(data)
    if doc is None:
        return None
    usage = doc.get("usage")
    if isinstance(usage, dict) and usage.get("type", "duration") == "duration":
        ms = seconds_to_ms(usage.get("seconds"))
        if ms is not None:
            return ms
    return seconds_to_ms(doc.get("duration"))


class Transcriptions(Endpoint):
    path = "/audio/transcriptions"
    streams = False

    def read(self, body: bytes, content_type: str) -> ParsedRequest:
        try:
            parts = parse_form(body, boundary_of(content_type))
        except FormError as exc:
            raise errors.InvalidRequest(str(exc)) from None
        seen: dict[str, FormPart] = {}
        fields: dict[str, str] = {}
        for part in parts:
            if part.name in SINGLE_FIELDS and part.name in seen:
                # Which one would the upstream read? Billing must not have to guess.
                raise errors.InvalidRequest(f"The form has more than one {part.name!r} field.",
                                            param=part.name)  # fmt: skip
            seen.setdefault(part.name, part)
            if part.filename is None:
                try:
                    fields.setdefault(part.name, part.value(body).decode("utf-8"))
                except UnicodeDecodeError:
                    raise errors.InvalidRequest(
                        f"The form field {part.name!r} is not UTF-8 text.", param=part.name
                    ) from None
        model = fields.get("model")
        if not model or "model" not in seen or seen["model"].filename is not None:
            raise errors.InvalidRequest(
                "You must provide a model parameter (a form field).", param="model"
            )
        check_model_name(model)
        upload = seen.get("file")
        if upload is None or upload.filename is None:
            raise errors.InvalidRequest("You must provide a file (a form file field).",
                                        param="file")  # fmt: skip
        if fields.get("stream", "false").strip().lower() not in ("false", "0", ""):
            raise errors.InvalidRequest("This endpoint does not stream.", param="stream")
        audio = upload.value(body)
        file_ms = wav_duration_ms(audio)
        return ParsedRequest(
            model=model,
            stream=False,
            payload=dict(fields),
            body=body,
            extra={
                "file_ms": file_ms,
                "audio_bytes": len(audio),
                "bound_ms": file_ms if file_ms is not None else bound_ms(len(audio)),
                "model_part": seen["model"],
                "content_type": content_type,
            },
        )

    def with_model(self, req: ParsedRequest, model: str) -> ParsedRequest:
        """Only the model field's bytes change; the upload is forwarded as it came."""
        body = replace_part(req.body, req.extra["model_part"], model.encode())
        return self.read(body, req.extra["content_type"])

    def can_bill(self, price: ModelPrice) -> bool:
        return price.per_audio_minute is not None

    def worst_case(
        self, req: ParsedRequest, price: ModelPrice, counter: TokenCounter, default_output: int
    ) -> Usage:
        """Providers bill whole seconds, rounded up: hold that, and at least one (a file read
        here as holding no samples is still a request an upstream may read otherwise and bill).
        Without a WAV header, hold at a bitrate below any speech codec's."""
        ms = req.extra["file_ms"]
        if ms is None:
            ms = bound_ms(req.extra["audio_bytes"], HOLD_BYTES_PER_SECOND)
        return Usage(audio_ms=max(1, -(-ms // 1000)) * 1000)

    def usage_from_body(self, req: ParsedRequest, data: bytes) -> Usage | None:
        ms = upstream_duration_ms(data)
        return Usage(audio_ms=ms) if ms is not None else None

    def estimate(self, req: ParsedRequest, text: str, counter: TokenCounter) -> Usage:
        return Usage(audio_ms=req.extra["bound_ms"])

    def estimate_source(self, req: ParsedRequest) -> str:
        return "file" if req.extra["file_ms"] is not None else "estimated"
