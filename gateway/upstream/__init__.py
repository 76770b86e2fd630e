"""Upstream providers: the HTTP/1.1 client the forward uses (``http1/``), the OpenAI-compatible
and Anthropic providers on top of it, model routing, and the built-in mock provider.
"""
