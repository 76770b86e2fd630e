"""A strict, pure reader of ``multipart/form-data`` bodies (RFC 7578) that keeps byte offsets.

The gateway forwards a form upload byte for byte, so it only needs to *find* the fields: each
``FormPart`` says where its content sits in the body. That also lets a field be replaced
without touching the rest (``replace_part``). Anything malformed raises ``FormError`` with a
message fit for a client; nothing here raises anything else on hostile input.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value

__all__ = ["FormError", "FormPart", "boundary_of", "parse_form", "replace_part"]

MAX_PARTS = 100
MAX_HEADER_BYTES = 8192
_CRLF = b"\r\n"


class FormError(ValueError):
    """The body is not a well-formed multipart/form-data body."""


@dataclass(frozen=True, slots=True)
class FormPart:
    name: str
    filename: str | None  # set for file fields (even when empty)
    content_type: str | None
    start: int  # the content is body[start:end]
    end: int

    def value(self, body: bytes) -> bytes:
        return body[self.start : self.end]


def _header_params(name: str, value: str) -> Message:
    message = Message()
    message[name] = value
    return message


def _param(message: Message, header: str, name: str) -> str | None:
    value = message.get_param(name, header=header)
    if value is None or isinstance(value, str):
        return value
    try:
        return str(collapse_rfc2231_value(value))
    except UnicodeError:  # an RFC 2231 charset whose codec refuses errors="replace" (idna)
        raise FormError(f"The {header} parameter {name!r} is in an unreadable charset.") from None


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data; boundary=...`` Content-Type header."""
    message = _header_params("Content-Type", content_type or "")
    if message.get_content_type() != "multipart/form-data":
        raise FormError("The request must be multipart/form-data.")
    boundary = _param(message, "content-type", "boundary")
    if not boundary or len(boundary) > 70 or not boundary.isascii():
        raise FormError("The multipart/form-data Content-Type has no valid boundary.")
    return boundary.encode("ascii")


def parse_form(body: bytes, boundary: bytes) -> list[FormPart]:
    """Every part of ``body``, in order; raises ``FormError`` unless the body is well formed."""
    delimiter = b"--" + boundary
    if body.startswith(delimiter):
        pos = len(delimiter)
    else:  # a preamble is allowed; the first delimiter then follows a line break
        found = body.find(_CRLF + delimiter)
        if found < 0:
            raise FormError("The multipart body has no part with the declared boundary.")
        pos = found + 2 + len(delimiter)
    separator = _CRLF + delimiter
    parts: list[FormPart] = []
    while True:
        if body.startswith(b"--", pos):
            return parts  # the close delimiter; an epilogue after it is ignored
        pos = _skip_transport_padding(body, pos)
        if not body.startswith(_CRLF, pos):
            raise FormError("The multipart body is malformed after a boundary.")
        pos += 2
        if len(parts) == MAX_PARTS:
            raise FormError(f"The form has more than {MAX_PARTS} fields.")
        header_end = body.find(_CRLF + _CRLF, pos, pos + MAX_HEADER_BYTES)
        if body.startswith(_CRLF, pos):  # a part with no header lines at all
            header_end = pos - 2
        if header_end < 0:
            raise FormError("A multipart part has no end to its headers (or they are too long).")
        headers = _read_headers(body[pos:header_end])
        start = header_end + 4
        end = body.find(separator, start)
        if end < 0:
            raise FormError("The multipart body ends before its closing boundary.")
        parts.append(_part(headers, start, end))
        pos = end + len(separator)


def _skip_transport_padding(body: bytes, pos: int) -> int:
    while pos < len(body) and body[pos] in b" \t":
        pos += 1
    return pos


def _read_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not block:
        return headers
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("A multipart part header is not valid UTF-8.") from None
    for line in text.split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise FormError("A multipart part has a malformed header line.")
        headers[name.strip().lower()] = value.strip()
    return headers


def _part(headers: dict[str, str], start: int, end: int) -> FormPart:
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise FormError("A multipart part has no Content-Disposition header.")
    message = _header_params("Content-Disposition", disposition)
    if message.get_content_disposition() != "form-data":
        raise FormError("A multipart part is not form-data.")
    name = _param(message, "content-disposition", "name")
    if not name:
        raise FormError("A multipart part has no field name.")
    filename = _param(message, "content-disposition", "filename")
    return FormPart(
        name=name,
        filename=filename,
        content_type=headers.get("content-type"),
        start=start,
        end=end,
    )


def replace_part(body: bytes, part: FormPart, value: bytes) -> bytes:
    """``body`` with ``part``'s content replaced by ``value``; every other byte unchanged."""
    return body[: part.start] + value + body[part.end :]
