"""The multipart/form-data reader: offsets into the original bytes, and only FormError."""

from __future__ import annotations

import contextlib
import random

import pytest

from gateway.codecs.multipart import FormError, boundary_of, parse_form, replace_part

BOUNDARY = b"b0undary"
BODY = (
    b"--b0undary\r\n"
    b'Content-Disposition: form-data; name="model"\r\n'
    b"\r\n"
    b"whisper-1\r\n"
    b"--b0undary\r\n"
    b'Content-Disposition: form-data; name="file"; filename="a b.wav"\r\n'
    b"Content-Type: audio/wav\r\n"
    b"\r\n"
    b"RIFF\r\n--b0und\r\n\r\nary-ish bytes\r\n"
    b"--b0undary--\r\n"
)


def test_fields_and_offsets() -> None:
    model, upload = parse_form(BODY, BOUNDARY)
    assert (model.name, model.filename, model.value(BODY)) == ("model", None, b"whisper-1")
    assert upload.name == "file" and upload.filename == "a b.wav"
    assert upload.content_type == "audio/wav"
    assert upload.value(BODY) == b"RIFF\r\n--b0und\r\n\r\nary-ish bytes"


def test_replace_part_changes_only_that_field() -> None:
    model, _ = parse_form(BODY, BOUNDARY)
    changed = replace_part(BODY, model, b"gpt-4o-transcribe")
    assert changed == BODY.replace(b"whisper-1", b"gpt-4o-transcribe")
    assert parse_form(changed, BOUNDARY)[0].value(changed) == b"gpt-4o-transcribe"


def test_preamble_epilogue_and_empty_values() -> None:
    body = (b"ignored preamble\r\n--b0undary\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
            b"\r\n--b0undary--\r\nepilogue")  # fmt: skip
    (part,) = parse_form(body, BOUNDARY)
    assert part.name == "a" and part.value(body) == b""


def test_rfc2231_and_quoted_names() -> None:
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"f\"; "
            b"filename*=UTF-8''%C3%A9t%C3%A9.wav\r\n\r\nx\r\n--b0undary--")  # fmt: skip
    assert parse_form(body, BOUNDARY)[0].filename == "été.wav"


@pytest.mark.parametrize(
    ("header", "boundary"),
    [
        ("multipart/form-data; boundary=abc", b"abc"),
        ('multipart/form-data; boundary="a b:c"', b"a b:c"),
        ("Multipart/Form-Data; charset=utf-8; boundary=xyz", b"xyz"),
    ],
)
def test_boundary_of(header: str, boundary: bytes) -> None:
    assert boundary_of(header) == boundary


@pytest.mark.parametrize(
    "header",
    ["", "application/json", "multipart/form-data", "multipart/form-data; boundary=",
     "multipart/mixed; boundary=abc", "multipart/form-data; boundary=" + "x" * 71,
     "multipart/form-data; boundary=é"],
)  # fmt: skip
def test_bad_content_types(header: str) -> None:
    with pytest.raises(FormError):
        boundary_of(header)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"--b0undary",
        b"--b0undary\r\n",
        b"no delimiter at all",
        b'--b0undary\r\nContent-Disposition: form-data; name="a"\r\n\r\nno end',
        b"--b0undary\r\nno colon here\r\n\r\nx\r\n--b0undary--",
        b"--b0undary\r\nContent-Type: text/plain\r\n\r\nx\r\n--b0undary--",
        b'--b0undary\r\nContent-Disposition: attachment; name="a"\r\n\r\nx\r\n--b0undary--',
        b"--b0undary\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b0undary--",
        b"--b0undary\r\n\r\nx\r\n--b0undary--",
        b"--b0undaryX\r\n",
        b'--b0undary\r\nContent-Disposition: form-data; name="\xff"\r\n\r\nx\r\n--b0undary--',
        b'--b0undary\r\nContent-Disposition: form-data; name="a"\r\n' + b"X: y\r\n" * 3000,
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(FormError):
        parse_form(body, BOUNDARY)


def test_too_many_parts() -> None:
    part = b'--b0undary\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n'
    with pytest.raises(FormError, match="more than 100"):
        parse_form(part * 101 + b"--b0undary--", BOUNDARY)


def test_hostile_bytes_raise_only_form_error() -> None:
    rng = random.Random(11)
    alphabet = [
        b"--",
        b"b0undary",
        b"\r\n",
        b"\r",
        b"\n",
        b":",
        b";",
        b'"',
        b"=",
        b"name",
        b"form-data",
        b"Content-Disposition",
        b"filename",
        b"x",
        b"\xff",
        b" ",
    ]
    for _ in range(5000):
        body = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        with contextlib.suppress(FormError):
            parse_form(body, BOUNDARY)
    for _ in range(2000):
        mutated = bytearray(BODY)
        for _ in range(rng.randrange(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            parts = parse_form(bytes(mutated), BOUNDARY)
        except FormError:
            continue
        for part in parts:
            assert 0 <= part.start <= part.end <= len(mutated)
