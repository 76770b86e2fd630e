"""A client that asks for a stream and then stops reading: a raw socket with a tiny receive
buffer, so that the gateway's writes to it block once a few megabytes are in flight. (Also
used by ``bench/abandoned_streams.py``.)"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson


@dataclass
class StalledClient:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    headers: dict[str, str]

    @property
    def request_id(self) -> str:
        return self.headers["x-request-id"]

    def close(self) -> None:
        """Hang up without reading what is waiting (the kernel answers with a reset)."""
        self.writer.transport.abort()


async def open_stalled(url: str, key: str, body: dict[str, object]) -> StalledClient:
    """POST ``body`` to ``url`` and read the answer's headers, then nothing more."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    transport = writer.transport
    assert isinstance(transport, asyncio.Transport)
    transport.pause_reading()  # nothing past the headers is read
    payload = orjson.dumps(body)
    writer.write(
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
    )
    await writer.drain()
    transport.resume_reading()
    head = await reader.readuntil(b"\r\n\r\n")
    transport.pause_reading()
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines if line)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    return StalledClient(reader, writer, int(status_line.split()[1]), headers)
