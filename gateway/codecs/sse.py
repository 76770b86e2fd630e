"""Incremental splitter for Server-Sent Event streams that keeps every byte.

The gateway relays an upstream stream event by event, drops some events and inserts a comment
before the last one, so it needs each event block's exact bytes, not just its parsed fields.
``SSEDecoder.feed`` cuts the stream into blocks at blank lines and parses ``event`` and ``data``;
the ``raw`` of all blocks returned by ``feed`` and ``flush``, concatenated, is the input again
(except a tail of nothing but whitespace at the end of the stream, which ``flush`` drops).

Line ends may be ``\\n``, ``\\r\\n`` or ``\\r``, mixed freely. Blank lines that come before a
block's first field line (extra blank lines between events) belong to that block's ``raw``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PLAIN_FRAME", "SSEBufferOverflow", "SSEDecoder", "SSEEvent", "comment", "plain_events"]

_LF = 10
_CR = 13
_LINE_ENDS = (_LF, _CR)
# Two line ends in a row end a block. Every such pair of line ends contains one of these, and
# a single line end (\n, \r, \r\n) contains none of them. SSEDecoder._split relies on this.
_PAIRS = (b"\n\n", b"\r\r", b"\n\r")
_NOT_SEARCHED = -1  # below any position, so the first lookup always searches
# A plain run: blocks that are each one "data: {...}" line and a blank line, nothing else.
_PLAIN_START = b"data: {"
_PLAIN_END = b"}\n\n"
PLAIN_FRAME = len(_PLAIN_START) + len(_PLAIN_END)  # what a plain block adds to its inner part
_PLAIN_JOIN = _PLAIN_END + _PLAIN_START  # where two plain blocks meet
_CLOSE = ord("}")


class SSEBufferOverflow(ValueError):
    """The upstream sent more than ``max_buffer`` bytes without ending an event."""


@dataclass(slots=True)  # not frozen: a frozen init is slower, and this runs once per event
class SSEEvent:
    """One event block: its exact bytes and the two fields the gateway looks at."""

    raw: bytes
    event: str | None
    data: str | None


def comment(text: str) -> bytes:
    """An SSE comment block (``: text`` and a blank line), which clients ignore."""
    if "\n" in text or "\r" in text:
        raise ValueError("an SSE comment must be a single line")
    return b": " + text.encode() + b"\n\n"


class SSEDecoder:
    """Splits a byte stream into ``SSEEvent`` blocks; feed chunks as they arrive."""

    __slots__ = ("_max_buffer", "_parts", "_pending", "_scan", "_suffix")

    def __init__(self, max_buffer: int = 1 << 20) -> None:
        self._max_buffer = max_buffer
        # The unfinished tail, kept as the chunks it came in so that a long event arriving in
        # many small chunks is joined once, when it completes, not once per chunk.
        self._parts: list[bytes] = []
        self._pending = 0
        # Offset in the tail where the search for a block end resumes: nothing before it can
        # start one. It is always within the last 2 bytes of the tail, which ``_suffix`` holds.
        self._scan = 0
        self._suffix = b""

    @property
    def pending(self) -> int:
        """Bytes buffered: received but not yet returned in an event."""
        return self._pending

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Return the blocks that ``chunk`` completes; buffer the unfinished tail.

        Raises ``SSEBufferOverflow`` when the unfinished tail grows past ``max_buffer``; the
        decoder is then empty, and blocks completed by that same chunk are not returned.
        """
        if not chunk:
            return []
        if self._parts:
            # Only a pair starting at or after _scan can end a block; if neither the tail's end
            # joined to the chunk's start nor the chunk holds one, just keep the chunk.
            unsearched = self._pending - self._scan
            window = (self._suffix[-unsearched:] if unsearched else b"") + chunk[:1]
            if not any(pair in window or pair in chunk for pair in _PAIRS):
                self._parts.append(chunk)
                self._pending += len(chunk)
                self._scan = self._pending - 1
                self._suffix = (self._suffix + chunk[-2:])[-2:]
                self._check_size()
                return []
            buf = b"".join(self._parts) + chunk
        else:
            buf = chunk
        return self._split(buf, self._scan)

    def feed_plain(self, chunk: bytes) -> tuple[bytes, list[bytes], bytes] | None:
        """Split off the plain run at the start of what ``chunk`` completes: the blocks that
        are each a single ``data: {...}`` line and its blank line (how OpenAI writes every
        event but ``[DONE]``). Returns (the run's bytes, each block's inner part, the rest),
        where a block's inner part is its data without the outer braces (the run is
        ``b"".join(b"data: {" + inner + b"}\\n\\n" for inner in inners)``), and the rest
        must go to ``feed`` next. The run's bytes are exactly the raws ``feed`` would have
        returned for those blocks. None (nothing taken) when no plain block comes first, or
        when ``chunk`` is exactly one block (no faster this way).

        A relay can then handle a run of ordinary chunks with one split and a few C-level
        checks instead of building an ``SSEEvent`` per block.
        """
        end = chunk.rfind(b"\n\n") + 2
        if end < 2 or (end == len(chunk) and chunk.find(b"\n\n") == end - 2 and not self._parts):
            return None
        if self._parts:
            buf = b"".join(self._parts) + chunk
            end += len(buf) - len(chunk)
        else:
            buf = chunk
        inners, end = _plain_inners(buf, end)
        if not inners:
            return None
        run = buf[:end] if end < len(buf) else buf
        self._reset()
        rest = buf[end:]
        if rest and _CR not in rest and b"\n\n" not in rest:  # the usual tail: keep it here
            self._keep(rest, len(rest) - 1)
            rest = b""
        return run, inners, rest

    def flush(self) -> list[SSEEvent]:
        """At the end of the stream, return the unfinished tail as a last block, if any."""
        tail = b"".join(self._parts)
        self._reset()
        if not tail.strip():
            return []
        body = tail[_skip_blank_lines(tail, 0) :].rstrip(b"\r\n")
        return [_parse(tail, body)]

    def _split(self, buf: bytes, scan: int) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        size = len(buf)
        find = buf.find
        start = 0
        # Next position of each pair at or after the search point (``size``: none left in buf),
        # kept across blocks so that a pair absent from buf is searched for once per feed.
        lf_lf = cr_cr = lf_cr = _NOT_SEARCHED
        if _CR not in buf:  # the usual case (OpenAI sends only "\n"): one pattern to look for
            cr_cr = lf_cr = size
        while start < size:
            fields_start = start
            if buf[start] in _LINE_ENDS:
                fields_start = _skip_blank_lines(buf, start)
                if fields_start == size:
                    scan = size
                    break
            search_from = fields_start if fields_start > scan else scan
            if lf_lf < search_from:
                lf_lf = find(b"\n\n", search_from) % (size + 1)  # -1 becomes size
            if cr_cr < search_from:
                cr_cr = find(b"\r\r", search_from) % (size + 1)
            if lf_cr < search_from:
                lf_cr = find(b"\n\r", search_from) % (size + 1)
            end_of_line = min(lf_lf, cr_cr, lf_cr)
            if end_of_line == size:
                scan = max(search_from, size - 1)
                break
            # The first byte of the pair is a whole line end (a "\r" followed by "\r" or a
            # "\n"); the blank line's own line end starts right after it.
            blank = end_of_line + 1
            if buf[blank] == _CR:
                if blank + 1 == size:
                    scan = end_of_line  # "\r" or "\r\n"? Decide when the next byte comes.
                    break
                end = blank + 2 if buf[blank + 1] == _LF else blank + 1
            else:
                end = blank + 1
            events.append(_parse(buf[start:end], buf[fields_start:end_of_line]))
            start = end
        self._keep(buf[start:], scan - start)
        return events

    def _keep(self, tail: bytes, scan: int) -> None:
        if not tail:
            if self._parts:
                self._reset()
            return
        self._parts = [tail]
        self._pending = len(tail)
        self._scan = scan
        self._suffix = tail[-2:]
        self._check_size()

    def _check_size(self) -> None:
        if self._pending > self._max_buffer:
            pending = self._pending
            self._reset()
            raise SSEBufferOverflow(
                f"{pending} bytes without an event end (limit {self._max_buffer})"
            )

    def _reset(self) -> None:
        self._parts = []
        self._pending = 0
        self._scan = 0
        self._suffix = b""


def _plain_inners(buf: bytes, end: int) -> tuple[list[bytes], int]:
    """The inner parts of the plain blocks at the start of ``buf[:end]`` (which ends with a
    blank line), and where the last of them ends. Split where two blocks meet as plain blocks
    do (``}\\n\\ndata: {``), the pieces joined must hold no line end: then the line ends
    are exactly the joins' and the last two, so every block is one ``data: {...}`` line.

    Checked with scans in C (``x in bytes`` with a bytes ``x`` first tries it as an int and
    clears the error: slower than a scan, per piece, so the pieces are checked joined)."""
    if not buf.startswith(_PLAIN_START):
        return [], 0
    if buf[end - 3] != _CLOSE:
        # The last block is something else: a stream's [DONE] (often after a long run, when
        # the upstream outpaces the reader), a comment... Try up to the last block that ends
        # like a plain one.
        end = buf.rfind(_PLAIN_END, 0, end) + len(_PLAIN_END)
    if end > len(_PLAIN_END):
        inners = buf[7 : end - 3].split(_PLAIN_JOIN)
        joined = b"".join(inners)
        if _LF not in joined and _CR not in joined:
            return inners, end
    # A block that is not plain, before the end: the plain ones are the blocks before it,
    # split as blocks, each a single "{...}" line (rare, so a loop in Python).
    inners = []
    for data in buf[6 : end - 2].split(b"\n\ndata: "):
        if not (data[:1] == b"{" and data[-1:] == b"}" and _LF not in data and _CR not in data):
            break
        inners.append(data[1:-1])
    return inners, sum(map(len, inners)) + PLAIN_FRAME * len(inners)


def plain_events(inners: list[bytes]) -> list[SSEEvent]:
    """The events of plain blocks given their inner parts (as ``feed_plain`` returns them):
    what ``feed`` makes of such blocks, without scanning them again."""
    events = []
    for inner in inners:
        data = b"{" + inner + b"}"
        events.append(SSEEvent(b"data: " + data + b"\n\n", None, data.decode("utf-8", "replace")))
    return events


def _skip_blank_lines(buf: bytes, pos: int) -> int:
    # Blank lines between blocks are rare and short, so a byte loop is fine here.
    size = len(buf)
    while pos < size and buf[pos] in _LINE_ENDS:
        pos += 1
    return pos


def _parse(raw: bytes, body: bytes) -> SSEEvent:
    """Build the event from ``body``: the block's field lines without the final line ends."""
    # Nearly every OpenAI event is one "data: " line. (An int membership test is a memchr; a
    # one-byte bytes pattern goes through the general substring search and is several times slower.)
    if body.startswith(b"data: ") and _LF not in body and _CR not in body:
        return SSEEvent(raw, None, body[6:].decode("utf-8", "replace"))
    text = body.decode("utf-8", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    event: str | None = None
    data: list[str] = []
    for line in text.split("\n"):
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        # An empty name is a comment line; other fields (id, retry, ...) stay only in raw.
    return SSEEvent(raw, event, "\n".join(data) if data else None)
