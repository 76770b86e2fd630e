"""Anthropic's API over HTTP: the same transport, Anthropic's way of authenticating.

The provider key goes in ``x-api-key``. The client's ``anthropic-version`` and
``anthropic-beta`` headers pass through (the proxy forwards them); a request without a version
gets ``DEFAULT_VERSION``, which Anthropic requires.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.upstream.openai_compatible import OpenAICompatibleProvider

DEFAULT_VERSION = "2023-06-01"


class AnthropicProvider(OpenAICompatibleProvider):
    kind = "anthropic"

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key} if self._api_key else {}

    def upstream_headers(self, client_headers: Mapping[str, str]) -> dict[str, str]:
        headers = super().upstream_headers(client_headers)
        if not any(name.lower() == "anthropic-version" for name in headers):
            headers["anthropic-version"] = DEFAULT_VERSION
        return headers
