"""Hypothesis strategies for hostile request bodies: odd text and JSON, valid request shapes
of every endpoint with fields mutated, deep nesting, and multipart forms with broken parts.
Used by tests/unit/test_readers_properties.py and tests/integration/test_refusal_properties.py.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from hypothesis import strategies as st

ALIASES = {
    "alias-chat": "gpt-4o-mini",
    "alias-claude": "claude-x",
    "alias-image": "dall-e-3",
    "alias-ears": "whisper-1",
}

# -- strategies: text and JSON ---------------------------------------------------------------

CONTROL = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.characters(
    min_codepoint=0x7F, max_codepoint=0x9F
)
SURROGATE = st.sampled_from(["\ud800", "\udbff\udbff", "\udfff"])
WEIRD_TEXT = st.one_of(
    st.text(max_size=20),
    st.text(CONTROL, min_size=1, max_size=5),
    st.lists(st.text(max_size=4) | CONTROL | SURROGATE, max_size=5).map("".join),
    st.sampled_from(["", " ", "\u202e", "\ufeff", "null", "1e999", "😀" * 3, "ﷺ" * 50]),
)
MODELS = st.one_of(
    st.sampled_from([*ALIASES, "gpt-4o-mini", "claude-x", "dall-e-3", "whisper-1", "m"]),
    WEIRD_TEXT,
)
HUGE = st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 2**70, 10**30])
NUMBERS = st.one_of(
    st.integers(-5, 20),
    HUGE,
    HUGE.map(lambda v: -v),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.5, 1.0, -0.0, 1e308]),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, WEIRD_TEXT)
KNOWN_KEYS = st.sampled_from([
    "model", "messages", "content", "role", "prompt", "input", "max_tokens",
    "max_completion_tokens", "max_output_tokens", "n", "best_of", "stream", "stream_options",
    "include_usage", "tools", "functions", "response_format", "system", "instructions", "size",
    "quality", "background", "cache_control", "type", "text", "image_url", "url", "name",
    "tool_calls", "function_call", "arguments", "output", "data",
])  # fmt: skip
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(KNOWN_KEYS | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def dumps(value: Any, ascii_only: bool = True) -> bytes:
    """JSON text with what orjson would refuse to write: huge ints, NaN, lone surrogates."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def with_raw_field(payload: dict[str, Any], key: str, raw: str) -> bytes:
    """``payload`` as JSON, with ``key`` set to the JSON text ``raw`` instead."""
    rest = dumps({k: v for k, v in payload.items() if k != key})[1:]
    head = "{" + json.dumps(key) + ":" + raw
    return head.encode() + (b"," + rest if rest != b"}" else rest)


def nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"content":' * depth + '"x"' + "}" * depth
    return '[{"type":"text","text":' * depth + '"x"' + "}]" * depth


DEEP = st.builds(
    nested,
    st.sampled_from([63, 64, 65, 128, 200, 254, 255, 256, 500, 900, 1000, 1022, 1023, 1024]),
    st.sampled_from(["list", "object", "blocks"]),
)


# -- strategies: valid request shapes, then mutated --------------------------------------------

TEXT = st.text(max_size=40)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system"]), "content": TEXT}
)
BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
    st.fixed_dictionaries(
        {
            "type": st.just("text"),
            "text": TEXT,
            "cache_control": st.just({"type": "ephemeral", "ttl": "1h"}),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.just({"url": "data:image/png;base64,AA"})}
    ),
)
OK_MODELS = st.sampled_from(["gpt-4o-mini", "gpt-uncapped", "alias-chat", "m-1"])
MAX_TOKENS = st.integers(1, 100_000)
VALID: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "/chat/completions": st.fixed_dictionaries(
        {"model": OK_MODELS, "messages": st.lists(MESSAGE, min_size=1, max_size=3)},
        optional={
            "max_tokens": MAX_TOKENS,
            "max_completion_tokens": MAX_TOKENS,
            "n": st.integers(1, 4),
            "stream": st.booleans(),
            "stream_options": st.just({"include_usage": True}),
            "tools": st.just([{"type": "function", "function": {"name": "f"}}]),
        },
    ),
    "/completions": st.fixed_dictionaries(
        {
            "model": OK_MODELS,
            "prompt": TEXT
            | st.lists(TEXT, min_size=1, max_size=3)
            | st.lists(st.integers(0, 100_000), max_size=5),
        },
        optional={
            "max_tokens": MAX_TOKENS,
            "n": st.integers(1, 4),
            "best_of": st.integers(1, 5),
            "stream": st.booleans(),
        },
    ),
    "/embeddings": st.fixed_dictionaries(
        {"model": st.just("text-embedding-3-small"), "input": TEXT | st.lists(TEXT, max_size=3)}
    ),
    "/responses": st.fixed_dictionaries(
        {"model": OK_MODELS, "input": TEXT | st.lists(MESSAGE, min_size=1, max_size=3)},
        optional={"max_output_tokens": MAX_TOKENS, "instructions": TEXT, "stream": st.booleans()},
    ),
    "/messages": st.fixed_dictionaries(
        {
            "model": st.sampled_from(["claude-x", "alias-claude"]),
            "max_tokens": MAX_TOKENS,
            "messages": st.lists(
                st.fixed_dictionaries(
                    {
                        "role": st.just("user"),
                        "content": TEXT | st.lists(BLOCK, min_size=1, max_size=3),
                    }
                ),
                min_size=1,
                max_size=3,
            ),
        },
        optional={"system": TEXT | st.lists(BLOCK, max_size=2), "stream": st.booleans()},
    ),
    "/images/generations": st.fixed_dictionaries(
        {"prompt": TEXT},
        optional={
            "model": st.sampled_from(["dall-e-3", "alias-image"]),
            "n": st.integers(1, 10),
            "size": st.just("1024x1024"),
            "quality": st.sampled_from(["standard", "hd"]),
        },
    ),
}
JUNK = st.one_of(LEAVES, JSON_VALUES, NUMBERS, MODELS)


@st.composite
def near_valid_bodies(draw: st.DrawFn, path: str) -> bytes:
    payload = dict(draw(VALID[path]))
    for key in draw(st.lists(KNOWN_KEYS | st.sampled_from(sorted(payload)), max_size=3)):
        if draw(st.booleans()):
            payload[key] = draw(JUNK)
        else:
            payload.pop(key, None)
    if draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(["tools", "messages", "prompt", "input", "system", "metadata",
                                    "response_format", "stream_options", "n"]))  # fmt: skip
        return with_raw_field(payload, key, draw(DEEP))
    return dumps(payload, ascii_only=draw(st.booleans()))


# -- strategies: multipart forms ---------------------------------------------------------------

BOUNDARY = "tollgate-prop-boundary"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def wav_bytes(
    samples: int,
    *,
    rate: int = 8_000,
    channels: int = 1,
    bits: int = 8,
    tag: int = 1,
    data_size: int | None = None,
    byte_rate: int | None = None,
) -> bytes:
    align = channels * bits // 8
    byte_rate = rate * align if byte_rate is None else byte_rate
    fmt = struct.pack("<HHIIHH", tag, channels, rate, byte_rate, align & 0xFFFF, bits)
    pcm = bytes(samples * align)
    size = len(pcm) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size)
    return b"RIFF" + struct.pack("<I", len(body) + len(pcm)) + body + pcm


UPLOADS = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([
        b"",
        wav_bytes(0),
        wav_bytes(8_000),
        wav_bytes(8_000, data_size=0),
        wav_bytes(8_000, data_size=0xFFFF_FFFF),
        wav_bytes(8_000, byte_rate=0, data_size=0),
        wav_bytes(8_000, rate=0),
        wav_bytes(1_000, channels=0),
        wav_bytes(1_000, tag=0x55, byte_rate=10**9),
        wav_bytes(0, rate=0xFFFF_FFFF, channels=0xFFFF, bits=64, byte_rate=0) + bytes(4_000),
        wav_bytes(8_000)[:50],
        b"ID3\x04" + bytes(3_000),
    ]),
    st.builds(lambda head, tail: head + tail, st.just(wav_bytes(400)[:44]), st.binary(max_size=64)),
)  # fmt: skip
CHARSETS = st.sampled_from(["utf-8", "us-ascii", "idna", "utf-16", "rot13", "base64", "hex",
                            "punycode", "bogus", ""])  # fmt: skip


@st.composite
def disposition(draw: st.DrawFn, name: str, filename: str | None) -> str:
    if draw(st.integers(0, 5)) == 0:
        charset = draw(CHARSETS)
        header = f"Content-Disposition: form-data; name*={charset}''{name}"
    else:
        header = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        if draw(st.integers(0, 5)) == 0:
            header += f"; filename*={draw(CHARSETS)}''{filename}"
        else:
            header += f'; filename="{filename}"'
    return header


@st.composite
def forms(draw: st.DrawFn) -> tuple[bytes, str]:
    """A transcription form, most of the time nearly well formed, and its Content-Type."""
    fields: list[tuple[str, bytes, str | None]] = []
    if draw(st.integers(0, 9)):
        fields.append(("model", draw(MODELS).encode("utf-8", "surrogatepass"), None))
    if draw(st.integers(0, 9)):
        fields.append(("file", draw(UPLOADS), draw(st.sampled_from(["a.wav", "", "ü.mp3"]))))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["model", "file", "stream", "response_format", "language"])
                    | st.text(max_size=6))  # fmt: skip
        value = draw(
            st.binary(max_size=12) | WEIRD_TEXT.map(lambda t: t.encode("utf-8", "replace"))
        )
        fields.append((name, value, draw(st.none() | st.just("x.wav"))))
    fields = draw(st.permutations(fields))
    body = b""
    for name, value, filename in fields:
        header = draw(disposition(name, filename))
        if draw(st.integers(0, 7)) == 0:
            header += draw(st.sampled_from(["\r\nContent-Type: audio/wav", "\r\nno colon",
                                            "\r\n: empty name", "\r\nX-\udcff: raw"]))  # fmt: skip
        body += f"--{BOUNDARY}\r\n".encode()
        body += header.encode("utf-8", "surrogateescape") + b"\r\n\r\n" + value + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    body = draw(form_mutations(body))
    if draw(st.integers(0, 2)):
        return body, FORM_TYPE
    content_type = draw(
        st.sampled_from([
            f'multipart/form-data; boundary="{BOUNDARY}"', "multipart/form-data",
            "multipart/form-data; boundary=other", "multipart/form-data; boundary=" + "b" * 71,
            "multipart/form-data; boundary=ü", "application/json", "", "text/plain; boundary=x",
            "multipart/form-data; boundary=", "multipart/form-data; boundary*=utf-8''"
            + BOUNDARY, f"multipart/mixed; boundary={BOUNDARY}",
        ])
        | CHARSETS.map(lambda c: f"multipart/form-data; boundary*={c}''{BOUNDARY}")
    )  # fmt: skip
    return body, content_type


@st.composite
def form_mutations(draw: st.DrawFn, body: bytes) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return body[: draw(st.integers(0, len(body)))]
    if kind == 1:
        return body.replace(b"\r\n", b"\n", draw(st.integers(1, 5)))
    if kind == 2:
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
    if kind == 3:
        return body.replace(f"--{BOUNDARY}--".encode(), b"")
    if kind == 4:
        return b"preamble\r\n" + body + b"epilogue"
    return body
