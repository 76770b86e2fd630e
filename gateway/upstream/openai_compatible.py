"""Providers reached over HTTP: any OpenAI-compatible base URL (Anthropic: ``anthropic_provider``).

The transport is :mod:`gateway.upstream.http1`; this module maps its failures to the
gateway's errors (a timeout is a 504, a broken connection a 502) and adds the credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from gateway import errors
from gateway.provider_settings import ProviderConfig
from gateway.upstream.http1 import ClientTimeout, ConnectionBroken, Origin, Pool, Timeouts
from gateway.upstream.http1 import Response as Http1Response
from gateway.upstream.provider import UpstreamRequest


class HttpResponse:
    def __init__(self, response: Http1Response) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.iter_chunks():
                yield chunk
        except ClientTimeout as exc:
            raise errors.UpstreamTimeout(
                "the upstream stopped sending before the answer ended"
            ) from exc
        except ConnectionBroken as exc:
            raise errors.UpstreamError(f"the upstream connection broke: {exc}") from exc

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except ClientTimeout as exc:
            raise errors.UpstreamTimeout("the upstream did not finish its answer in time") from exc
        except ConnectionBroken as exc:
            raise errors.UpstreamError(f"the upstream connection broke: {exc}") from exc

    def close(self) -> None:
        self._response.close()


class OpenAICompatibleProvider:
    kind = "openai"

    def __init__(
        self,
        config: ProviderConfig,
        pool: Pool,
        *,
        connect_timeout: float,
        read_timeout: float,
        first_byte_timeout: float | None = None,
        total_timeout: float | None = None,
    ) -> None:
        self.name = config.name
        self._origin = Origin.parse(config.base_url)
        self._api_key = config.api_key
        self._pool = pool
        # connect: a pool slot and the connection; read: the longest silence; first byte:
        # until the answer's headers arrive; total: the whole answer, streams included.
        self._timeouts = Timeouts(
            connect=connect_timeout, read=read_timeout, first_byte=first_byte_timeout,
            total=total_timeout,
        )  # fmt: skip
        self._fixed = {**self.auth_headers(), "Accept-Encoding": "identity"}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def upstream_headers(self, client_headers: Mapping[str, str]) -> dict[str, str]:
        """The headers sent upstream: the client's (already filtered) plus our credentials."""
        return {**client_headers, **self._fixed}

    async def send(self, request: UpstreamRequest) -> HttpResponse:
        headers = self.upstream_headers(request.headers)
        try:
            response = await self._pool.request(
                self._origin, request.path, headers, request.body, self._timeouts
            )
        except ClientTimeout as exc:
            raise errors.UpstreamTimeout(f"provider {self.name} did not answer in time") from exc
        except (ConnectionBroken, ValueError) as exc:
            raise errors.UpstreamError(f"provider {self.name} could not be reached: {exc}") from exc
        return HttpResponse(response)
