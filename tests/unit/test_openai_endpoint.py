from __future__ import annotations

import orjson

from gateway.apis.base import ParsedRequest
from gateway.apis.openai import ChatCompletions
from gateway.apis.tracking import EventKind


def test_stream_always_asks_for_usage_and_remembers_the_clients_choice() -> None:
    chat = ChatCompletions()
    body = b'{"model":"m","stream":true,"stream_options":{"other":1}}'
    req = chat.parse(body, "application/json")
    sent, wanted = chat.upstream_body(req)
    assert not wanted
    assert orjson.loads(sent)["stream_options"] == {"other": 1, "include_usage": True}
    own = chat.parse(b'{"model":"m","stream":true,"stream_options":{"include_usage":true}}', "")
    assert chat.upstream_body(own) == (own.body, True)
    plain = ParsedRequest(model="m", stream=False, payload={}, body=b"{}")
    assert chat.upstream_body(plain) == (b"{}", True)


def test_forced_usage_null_is_removed_from_ordinary_chunks_only() -> None:
    chat = ChatCompletions()
    raw = b'data: {"id":"x","choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
    assert chat.rewrite_event(raw, EventKind.CHUNK, True) == (
        b'data: {"id":"x","choices":[{"delta":{"content":"hi"}}]}\n\n'
    )
    assert chat.rewrite_event(raw, EventKind.CHUNK, False) == raw
    assert chat.rewrite_event(raw, EventKind.OTHER, True) == raw
    other = b'data: {"id":"x","choices":[]}\n\n'
    assert chat.rewrite_event(other, EventKind.CHUNK, True) == other
