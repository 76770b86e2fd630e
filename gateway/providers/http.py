"""Providers reached over HTTP: any OpenAI-compatible base URL (Anthropic's: ``anthropic.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp

from gateway import errors
from gateway.providers.base import UpstreamRequest
from gateway.settings import ProviderConfig


class HttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise errors.UpstreamTimeout(
                "the upstream stopped sending before the answer ended"
            ) from exc
        except aiohttp.ClientError as exc:
            raise errors.UpstreamError(
                f"the upstream connection broke: {type(exc).__name__}"
            ) from exc

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except TimeoutError as exc:
            raise errors.UpstreamTimeout("the upstream did not finish its answer in time") from exc
        except aiohttp.ClientError as exc:
            raise errors.UpstreamError(
                f"the upstream connection broke: {type(exc).__name__}"
            ) from exc

    def close(self) -> None:
        self._response.close()


class OpenAICompatibleProvider:
    kind = "openai"

    def __init__(
        self,
        config: ProviderConfig,
        session: aiohttp.ClientSession,
        *,
        connect_timeout: float,
        read_timeout: float,
        first_byte_timeout: float | None = None,
        total_timeout: float | None = None,
    ) -> None:
        self.name = config.name
        self._base = config.base_url
        self._api_key = config.api_key
        self._session = session
        # connect: to open the connection; sock_read: the longest silence; total: the whole
        # answer, streams included; first byte: until the answer's headers arrive.
        self._timeout = aiohttp.ClientTimeout(
            total=total_timeout, connect=connect_timeout, sock_read=read_timeout
        )
        # aiohttp's sock_read already bounds the wait for the headers: a second timer only
        # when the first-byte limit is the tighter one (it costs a timer per request).
        tighter = first_byte_timeout is not None and first_byte_timeout < read_timeout
        self._first_byte = first_byte_timeout if tighter else None

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def upstream_headers(self, client_headers: Mapping[str, str]) -> dict[str, str]:
        """The headers sent upstream: the client's (already filtered) plus our credentials."""
        return {**client_headers, **self.auth_headers(), "Accept-Encoding": "identity"}

    async def send(self, request: UpstreamRequest) -> HttpResponse:
        headers = self.upstream_headers(request.headers)
        try:
            post = self._session.post(
                self._base + request.path,
                data=request.body,
                headers=headers,
                timeout=self._timeout,
                auto_decompress=False,
            )
            if self._first_byte is None:
                response = await post
            else:
                async with asyncio.timeout(self._first_byte):
                    response = await post
        except TimeoutError as exc:
            raise errors.UpstreamTimeout(f"provider {self.name} did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise errors.UpstreamError(
                f"provider {self.name} could not be reached: {type(exc).__name__}"
            ) from exc
        return HttpResponse(response)
