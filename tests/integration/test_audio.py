"""Audio transcription (multipart), billed per audio minute, with the official openai SDK."""

from __future__ import annotations

import io
import struct
import wave

import openai
import pytest

from pricing import parse_usd
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

# whisper-1 in the test price table: 0.006 USD per minute = 6_000_000 nanodollars per 60_000 ms.
PER_MINUTE = 6_000_000


def cost_of(ms: int) -> int:
    return -(-ms * PER_MINUTE // 60_000)


def wav(seconds: float, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * int(rate * seconds))
    return out.getvalue()


def form(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> bytes:
    boundary = b"tollgate-test-boundary"
    out = b""
    for name, value in fields:
        out += b"--" + boundary + b"\r\n"
        out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for name, filename, data in files:
        out += b"--" + boundary + b"\r\n"
        out += f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode()
        out += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


FORM_TYPE = "multipart/form-data; boundary=tollgate-test-boundary"


async def post_form(
    gateway: Gateway, key: str, body: bytes, content_type: str = FORM_TYPE
) -> tuple[int, dict[str, str], bytes]:
    async with gateway.http.post(
        gateway.url + "/v1/audio/transcriptions",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": content_type},
    ) as r:
        return r.status, dict(r.headers), await r.read()


async def test_json_answer_is_billed_from_the_upstreams_seconds(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    raw = await gateway.openai(key).audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("speech.wav", wav(2.5), "audio/wav")
    )
    transcription = raw.parse()
    assert transcription.text.startswith("This is whisper-1")
    # The upstream reports usage {"type": "duration", "seconds": 3}:
    # 3000 ms x 0.006 USD / 60000 ms = 0.0003 USD
    assert raw.headers["x-usage-cost"] == "0.0003"
    assert parse_usd("0.0003") == cost_of(3000)
    record = await gateway.record(key, raw.headers["x-request-id"])
    assert record["usage_source"] == "upstream" and record["endpoint"] == "/audio/transcriptions"
    assert record["usage"]["audio_ms"] == 3000
    assert record["held"] == "0.0003"  # the file's 2500 ms, held as 3 whole seconds
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) == parse_usd("10.00") - cost_of(3000)
    assert upstream.requests[-1]["file"] == "speech.wav"


async def test_verbose_json_is_billed_from_its_duration(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await gateway.account()
    upstream.usage_override = {"seconds": None}  # only `duration` (2.5, a float) is left
    raw = await gateway.openai(key).audio.transcriptions.with_raw_response.create(
        model="whisper-1",
        file=("speech.wav", wav(2.5), "audio/wav"),
        response_format="verbose_json",
    )
    assert raw.parse().duration == 2.5
    # 2500 ms x 0.006 / 60000 = 0.00025 USD
    assert raw.headers["x-usage-cost"] == "0.00025"
    record = await gateway.record(key, raw.headers["x-request-id"])
    assert record["usage_source"] == "upstream"


@pytest.mark.parametrize("response_format", ["text", "srt", "vtt"])
async def test_answers_without_a_duration_are_billed_from_the_wav(
    gateway: Gateway, upstream: FakeUpstream, response_format: str
) -> None:
    account, key = await gateway.account()
    raw = await gateway.openai(key).audio.transcriptions.with_raw_response.create(
        model="whisper-1",
        file=("speech.wav", wav(2.5), "audio/wav"),
        response_format=response_format,  # type: ignore[arg-type]
    )
    assert "mock transcription" in raw.text
    # The file holds 40000 frames at 16 kHz = 2500 ms: 2500 x 0.006 / 60000 = 0.00025 USD
    assert raw.headers["x-usage-cost"] == "0.00025"
    record = await gateway.record(key, raw.headers["x-request-id"])
    assert record["usage_source"] == "file" and record["usage"]["audio_ms"] == 2500
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) == parse_usd("10.00") - cost_of(2500)


async def test_json_without_usage_falls_back_to_the_wav(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await gateway.account()
    upstream.omit_usage = True
    raw = await gateway.openai(key).audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("speech.wav", wav(1.25, rate=8000), "audio/wav")
    )
    # 10000 frames at 8 kHz = 1250 ms: 1250 x 0.006 / 60000 = 0.000125 USD
    assert raw.headers["x-usage-cost"] == "0.000125"
    assert (await gateway.record(key, raw.headers["x-request-id"]))["usage_source"] == "file"


async def test_unknown_format_without_a_duration_is_bounded_by_its_size(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await gateway.account()
    mp3ish = b"ID3\x04" + bytes(9_996)
    raw = await gateway.openai(key).audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("speech.mp3", mp3ish, "audio/mpeg"), response_format="text"
    )
    # 10000 bytes at no less than 16 kbit/s (2000 bytes/s) play at most 5000 ms:
    # 5000 x 0.006 / 60000 = 0.0005 USD
    assert raw.headers["x-usage-cost"] == "0.0005"
    assert (await gateway.record(key, raw.headers["x-request-id"]))["usage_source"] == "estimated"


async def test_the_form_is_forwarded_byte_for_byte(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await gateway.account()
    body = form(
        [("model", "whisper-1"), ("language", "en"), ("timestamp_granularities[]", "word"),
         ("timestamp_granularities[]", "segment")],
        [("file", "speech.wav", wav(0.5))],
    )  # fmt: skip
    status, headers, _ = await post_form(gateway, key, body)
    assert status == 200
    assert upstream.bodies[-1] == body
    assert upstream.headers[-1]["Content-Type"] == FORM_TYPE
    # 0.5 s reports as 1 whole second: 1000 x 0.006 / 60000 = 0.0001 USD
    assert headers["X-Usage-Cost"] == "0.0001"


async def test_the_hold_is_the_files_duration(gateway: Gateway, upstream: FakeUpstream) -> None:
    # 2.5 s, billed in whole seconds, may cost 0.0003 USD; the wallet has 0.0002.
    _, key = await gateway.account(topup="0.0002")
    with pytest.raises(openai.PermissionDeniedError) as info:
        await gateway.openai(key).audio.transcriptions.create(
            model="whisper-1", file=("speech.wav", wav(2.5), "audio/wav")
        )
    assert "0.0003" in info.value.message
    assert upstream.requests == []


def lying_wav(seconds: int, rate: int = 8_000) -> bytes:
    """A WAV whose RIFF and data chunk sizes say 0: ``seconds`` of samples follow anyway.
    (8 kHz: a minute of it stays below the fake upstream's 1 MiB body limit.)"""
    real = wav(seconds, rate)
    data_at = real.index(b"data")
    return b"RIFF" + bytes(4) + real[8 : data_at + 4] + bytes(4) + real[data_at + 8 :]


@pytest.mark.parametrize("response_format", ["text", "json"])
async def test_a_wav_whose_header_says_0_s_is_held_and_billed_for_its_samples(
    gateway: Gateway, upstream: FakeUpstream, response_format: str
) -> None:
    account, key = await gateway.account()
    lying = lying_wav(60)
    assert struct.unpack_from("<I", lying, lying.index(b"data") + 4) == (0,)
    raw = await gateway.openai(key).audio.transcriptions.with_raw_response.create(
        model="whisper-1",
        file=("speech.wav", lying, "audio/wav"),
        response_format=response_format,  # type: ignore[arg-type]
    )
    # 60 s of 8 kHz samples: 60000 ms x 0.006 USD / 60000 ms = 0.006 USD, held and charged
    # (it was 0 and 0: the data chunk's size field was believed).
    assert raw.headers["x-usage-cost"] == "0.006"
    record = await gateway.record(key, raw.headers["x-request-id"])
    assert record["held"] == "0.006"
    assert record["usage"]["audio_ms"] == 60_000
    assert record["usage_source"] == ("file" if response_format == "text" else "upstream")
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) == parse_usd("10.00") - cost_of(60_000)


async def test_a_wav_whose_header_says_0_s_needs_the_money_for_its_samples(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await gateway.account(topup="0.005")
    with pytest.raises(openai.PermissionDeniedError) as info:
        await gateway.openai(key).audio.transcriptions.create(
            model="whisper-1", file=("speech.wav", lying_wav(60), "audio/wav")
        )
    assert "0.006" in info.value.message
    assert upstream.requests == []


async def test_mock_provider_transcribes(gateway: Gateway) -> None:
    _, key = await gateway.account()
    raw = await gateway.openai(key).audio.transcriptions.with_raw_response.create(
        model="mock-whisper", file=("speech.wav", wav(61), "audio/wav")
    )
    assert raw.parse().text.startswith("This is mock-whisper")
    # 61 s: 61000 x 0.006 / 60000 = 0.0061 USD
    assert raw.headers["x-usage-cost"] == "0.0061"


BAD_FORMS = [
    pytest.param(b'{"model": "whisper-1"}', "application/json", id="json-body"),
    pytest.param(form([("model", "whisper-1")], [("file", "a.wav", b"x")]),
                 "multipart/form-data", id="no-boundary"),
    pytest.param(form([("model", "whisper-1")], [("file", "a.wav", b"x")])[:-30], FORM_TYPE,
                 id="truncated"),
    pytest.param(b"", FORM_TYPE, id="empty"),
    pytest.param(b"garbage without boundaries", FORM_TYPE, id="garbage"),
    pytest.param(form([], [("file", "a.wav", b"x")]), FORM_TYPE, id="no-model"),
    pytest.param(form([("model", "whisper-1")], []), FORM_TYPE, id="no-file"),
    pytest.param(form([("model", "whisper-1"), ("file", "not-a-file")], []), FORM_TYPE,
                 id="file-as-text"),
    pytest.param(form([("model", "whisper-1"), ("model", "whisper-2")],
                      [("file", "a.wav", b"x")]), FORM_TYPE, id="two-models"),
    pytest.param(form([("model", "whisper-1"), ("stream", "true")], [("file", "a.wav", b"x")]),
                 FORM_TYPE, id="stream"),
    pytest.param(form([("model", "whisper-1")], [("file", "a.wav", b"x")])
                 .replace(b"whisper-1", b"whisper-\xff"), FORM_TYPE, id="not-utf8"),
    pytest.param(form([("model", "whisper-1")], [("file", "a.wav", b"x")])
                 .replace(b"Content-Disposition", b"X-Nothing"), FORM_TYPE, id="no-disposition"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "content_type"), BAD_FORMS)
async def test_bad_forms_are_400_and_change_nothing(
    gateway: Gateway, upstream: FakeUpstream, body: bytes, content_type: str
) -> None:
    account, key = await gateway.account()
    status, _, answer = await post_form(gateway, key, body, content_type)
    assert status == 400, answer
    assert b'"invalid_request"' in answer
    assert upstream.requests == []
    assert (await gateway.wallet(account))["balance"] == "10.00"


async def test_form_larger_than_the_body_limit_is_413(
    make_gateway: object, upstream: FakeUpstream
) -> None:
    gateway = await make_gateway(max_body_bytes=4096)  # type: ignore[operator]
    _, key = await gateway.account()
    status, _, _ = await post_form(
        gateway, key, form([("model", "whisper-1")], [("file", "a.wav", wav(1))])
    )
    assert status == 413
    assert upstream.requests == []
