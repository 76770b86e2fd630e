"""Tollgate's gateway: one sub-package per concern.

- ``edge``: HTTP in (proxy, admin API, auth);
- ``billing``: accounts, wallet, holds, settling, the Lua scripts (no aiohttp);
- ``store``: Redis clients, key names, embedded server;
- ``apis``: per-endpoint request reading and usage parsing, OpenAI and Anthropic side by side;
- ``upstream``: the HTTP client, providers, routing, the mock provider;
- ``codecs``: SSE, multipart, audio files (pure);
- ``observability``: metrics and logs;
- ``prices``: the price table in force and its live reload;
- ``cli``: the ``tollgate`` command.

``app.create_app`` wires them together; ``settings`` reads the config file; ``errors`` holds the
typed errors every layer raises and the edge renders.
"""
