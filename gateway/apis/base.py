"""What every endpoint provides to the proxy, with defaults for JSON APIs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from gateway import errors
from gateway.apis.tokens import TokenCounter
from gateway.apis.tracking import EventKind, KeptBudget
from gateway.codecs.json_object import parse_object
from gateway.codecs.sse import SSEEvent
from pricing import ModelPrice, Usage


@dataclass(slots=True)
class ParsedRequest:
    model: str
    stream: bool
    payload: dict[str, Any]  # the JSON body (for multipart, its plain fields)
    body: bytes  # exactly as the client sent it
    n: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # endpoint-specific facts


class StreamTracker(Protocol):
    """Follows one streamed answer: classifies events, keeps usage and the generated text."""

    usage: Usage | None
    unreadable_usage: object  # the last usage report that could not be read (None: none)

    @property
    def text(self) -> str: ...

    def feed(self, event: SSEEvent) -> EventKind: ...

    def feed_plain(self, run: bytes, inners: list[bytes]) -> int: ...

    def mark(self) -> Any: ...

    def truncate(self, mark: Any) -> None: ...

    def release(self) -> None: ...


def positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


MAX_MODEL_NAME = 256


def check_model_name(model: str) -> None:
    """Refuse (400) a model name no provider has: control characters (CR, LF, NUL, ...), other
    unprintable characters, or one too long. Such a name is never priced, routed, logged or
    forwarded, and nothing is held for it."""
    if len(model) > MAX_MODEL_NAME or not model.isprintable():
        shown = model[:64].encode("unicode_escape").decode("ascii")
        raise errors.InvalidRequest(
            f"The model name {shown!r} is not valid: it must be at most {MAX_MODEL_NAME} "
            "printable characters.",
            param="model",
        )


class Endpoint:
    """Defaults fit a JSON API billed on tokens; subclasses override what differs.

    ``aliases`` (from the gateway config) rename a requested model before anything else looks
    at it: the price, the route, the allow-list and the upstream all see the real model.
    """

    path = ""
    max_tokens_fields: tuple[str, ...] = ("max_completion_tokens", "max_tokens")
    streams = True
    # The stream is mostly single-line "data: {...}" events: worth trying the relay's fast
    # path (SSEDecoder.feed_plain, StreamTracker.feed_plain, rewrite_plain) on each read.
    plain_runs = False

    def __init__(self, aliases: Mapping[str, str] | None = None) -> None:
        self.aliases: Mapping[str, str] = dict(aliases or {})

    def parse(self, body: bytes, content_type: str) -> ParsedRequest:
        """Read the request (``content_type`` is the whole header, parameters included) and
        resolve a model alias."""
        req = self.read(body, content_type)
        target = self.aliases.get(req.model)
        return self.with_model(req, target) if target and target != req.model else req

    def with_model(self, req: ParsedRequest, model: str) -> ParsedRequest:
        """``req`` asking for ``model`` instead: the body sent upstream names it too."""
        payload = {**req.payload, "model": model}
        return replace(req, model=model, payload=payload, body=orjson.dumps(payload))

    def read(self, body: bytes, content_type: str) -> ParsedRequest:
        """Parse a JSON request body; raises ``InvalidRequest`` on anything malformed."""
        return self.from_payload(parse_object(body), body)

    def from_payload(self, payload: dict[str, Any], body: bytes) -> ParsedRequest:
        """Check the fields every endpoint reads (``model``, ``stream``, ``n``)."""
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise errors.InvalidRequest(
                "You must provide a model parameter (a string).", param="model"
            )
        check_model_name(model)
        stream = payload.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            raise errors.InvalidRequest("'stream' must be a boolean.", param="stream")
        if stream and not self.streams:
            raise errors.InvalidRequest("This endpoint does not stream.", param="stream")
        n = positive_int(payload.get("n")) or 1
        return ParsedRequest(model=model, stream=bool(stream), payload=payload, body=body, n=n)

    def can_bill(self, price: ModelPrice) -> bool:
        """Whether ``price`` has a unit this endpoint's usage can be billed in."""
        return price.is_token_priced or price.per_request is not None

    def requested_output(self, req: ParsedRequest) -> int | None:
        for name in self.max_tokens_fields:
            value = positive_int(req.payload.get(name))
            if value is not None:
                return value
        return None

    def worst_case(
        self, req: ParsedRequest, price: ModelPrice, counter: TokenCounter, default_output: int
    ) -> Usage:
        """The most this request can be billed for: the hold is its cost."""
        prompt = counter.estimate_prompt(req.payload, req.model)
        # A client's explicit limit is held as asked (a provider that allows more than our
        # table says would otherwise bill past the hold); without one, the model's ceiling.
        out = self.requested_output(req) or price.max_output_tokens or default_output
        return Usage(input_tokens=prompt, output_tokens=out * self.completions(req))

    def completions(self, req: ParsedRequest) -> int:
        """How many completions the request can be billed for."""
        return req.n

    def upstream_body(self, req: ParsedRequest) -> tuple[bytes, bool]:
        """(body to send, whether the client itself asked for streamed usage)."""
        return req.body, True

    def usage_from_body(self, req: ParsedRequest, data: bytes) -> Usage | None:
        raise NotImplementedError

    def text_from_body(self, data: bytes) -> str:
        """The generated text of an answer that came without usage (for an estimate)."""
        return ""

    def estimate(self, req: ParsedRequest, text: str, counter: TokenCounter) -> Usage:
        """Usage when the upstream reported none: the prompt plus the text relayed."""
        return Usage(
            input_tokens=counter.estimate_prompt(req.payload, req.model, safety=False),
            output_tokens=counter.count(text, req.model),
        )

    def estimate_source(self, req: ParsedRequest) -> str:
        """The ``usage_source`` recorded when ``estimate`` stood in for the upstream's usage."""
        return "estimated"

    def new_tracker(self, budget: KeptBudget | None = None) -> StreamTracker:
        """A tracker for one stream; ``budget``: the process's, for what trackers keep."""
        raise NotImplementedError

    def rewrite_event(self, raw: bytes, kind: EventKind, strip_usage: bool) -> bytes:
        """A chance to undo what the gateway added to the request (e.g. forced usage)."""
        return raw

    def rewrite_plain(self, run: bytes, strip_usage: bool) -> bytes:
        """``rewrite_event`` over a run of ordinary chunks (``SSEDecoder.feed_plain``) that
        the tracker took with ``feed_plain``, all at once."""
        return run
