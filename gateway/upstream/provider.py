"""What the proxy needs from a provider: send one request, get a status, headers and bytes.

Providers differ in URL layout and authentication; the proxy never sees those details.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    path: str  # the client's path below /v1, e.g. "/chat/completions"
    headers: Mapping[str, str]  # client headers worth forwarding (no auth, no hop-by-hop)
    body: bytes


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        ...

    async def read(self) -> bytes: ...

    def close(self) -> None: ...


class Provider(Protocol):
    name: str
    kind: str

    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...
