"""Pieces every mock answer builder shares: the answer type, headers, and the reply text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.apis.tokens import TokenCounter

JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


@dataclass(slots=True)
class MockAnswer:
    status: int
    headers: dict[str, str]
    chunks: list[bytes] = field(default_factory=list)  # one element unless streaming


def json_answer(body: object, status: int = 200) -> MockAnswer:
    return MockAnswer(status, dict(JSON_HEADERS), [orjson.dumps(body)])


def error_answer(status: int, message: str, code: str) -> MockAnswer:
    """An OpenAI-shaped error."""
    return json_answer(
        {"error": {"message": message, "type": "invalid_request_error", "code": code,
                   "param": None}},
        status,
    )  # fmt: skip


def named_event(name: str, payload: dict[str, Any]) -> bytes:
    """An SSE event with an ``event:`` line, as Anthropic and the Responses API send them."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def text_of(content: object) -> str:
    """The text of a message content: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def last_user_text(messages: object) -> str:
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role", "user") == "user":
                return text_of(message.get("content"))
    return ""


def reply_pieces(
    echo: str, model: str, limit: object, counter: TokenCounter
) -> tuple[list[str], bool]:
    """The mock's reply, one piece per word: (pieces, whether ``limit`` tokens cut it short)."""
    echo = " ".join(echo.split()[:64])
    words = f"This is {model}, a mock model. You said: {echo}".split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        kept: list[str] = []
        used = 0
        for piece in pieces:
            n = counter.count(piece, model)
            if used + n > limit:
                return kept, True
            kept.append(piece)
            used += n
    return pieces, False
