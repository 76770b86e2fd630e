"""The RESP2 codec of the lean Redis client (gateway.store.resp), against hand-written bytes."""

from __future__ import annotations

import pytest

from gateway.store.resp import ProtocolError, ReplyError, ReplyParser, encode_command


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert encode_command("EVALSHA", "ab", 2, -7, b"\x00\xff", "é") == (
        b"*6\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n$2\r\n-7\r\n"
        b"$2\r\n\x00\xff\r\n$2\r\n\xc3\xa9\r\n"
    )


@pytest.mark.parametrize("value", [1.5, 2.0, True, None, [1]])
def test_anything_but_str_bytes_and_int_is_refused(value: object) -> None:
    with pytest.raises(TypeError):
        encode_command("SET", "k", value)


REPLIES = (
    b"+OK\r\n:42\r\n:-3\r\n$5\r\nhe\r\nl\r\n$-1\r\n$0\r\n\r\n"
    b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n$3\r\nb\xffc\r\n*-1\r\n*0\r\n"
    b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
)


def check(replies: list[object]) -> None:
    *values, error = replies
    assert values == ["OK", 42, -3, "he\r\nl", None, "", [1, ["a", None], "b\ufffdc"], None, []]
    assert isinstance(error, ReplyError)
    assert error.code == "NOSCRIPT"
    assert str(error) == "NOSCRIPT No matching script. Please use EVAL."


def test_replies_come_out_whole_however_the_bytes_are_cut() -> None:
    check(ReplyParser().feed(REPLIES))
    for size in (1, 2, 3, 7):
        parser = ReplyParser()
        got: list[object] = []
        for i in range(0, len(REPLIES), size):
            got += parser.feed(REPLIES[i : i + size])
        check(got)


def test_an_incomplete_reply_waits_for_the_rest() -> None:
    parser = ReplyParser()
    assert parser.feed(b"*2\r\n:1\r\n$3\r\nab") == []
    assert parser.feed(b"c\r\n") == [[1, "abc"]]


def test_bytes_that_are_not_resp_raise() -> None:
    with pytest.raises(ProtocolError):
        ReplyParser().feed(b"?what\r\n")
