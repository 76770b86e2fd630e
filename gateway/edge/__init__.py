"""The HTTP edge: what clients and operators call.

The metered proxy (auth, admission, forward, relay), the admin API, API-key lookup, request
body reading, rate-limit headers and a key's model allow-list. The HTTP handlers speak aiohttp;
the money itself is moved by ``gateway.billing``.
"""
