"""What model names globs can match, compared between globs (pure).

Model globs (``gpt-4o*``, ``claude-?-*``) are read as ``fnmatch.fnmatchcase`` reads them: ``*``
is any run of characters, ``?`` any one, everything else itself. Whether some name matches one
set of globs and none of another is decided exactly, by walking the globs together one
character at a time (each glob is a small automaton; sets of positions are its states). Only
characters that appear in some glob can behave differently from each other, so the walk tries
those and one stand-in for every other character.

A glob with a ``[...]`` class is not analysed: the answer is then "unknown" (``None``), and
each public function below says which way it leans on unknown, always the way that reports
nothing it cannot prove.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

__all__ = ["covered", "is_glob", "may_overlap", "some_name"]

_MAX_STATES = 20_000  # far above any real set of globs; past it, give up ("unknown")
_Steps = tuple[str, ...]


def is_glob(name: str) -> bool:
    """Whether a pricing key or model entry is a pattern (``*`` or ``?``) and not a name."""
    return "*" in name or "?" in name


def covered(pattern: str, by: Sequence[str]) -> bool:
    """Whether every name ``pattern`` matches is matched by one of ``by`` (proven; unknown is
    False). A plain name is covered when one of ``by`` matches it."""
    if not is_glob(pattern) and "[" not in pattern:
        return any(fnmatchcase(pattern, glob) for glob in by)
    provable = [glob for glob in by if "[" not in glob]  # dropping one never proves too much
    return some_name([pattern], provable) is False


def may_overlap(a: str, b: str, *, unless: Sequence[str] = ()) -> bool:
    """Whether some name matches both ``a`` and ``b`` and none of ``unless`` (unknown: True)."""
    return some_name([a, b], unless) is not False


def some_name(all_of: Sequence[str], none_of: Sequence[str]) -> bool | None:
    """Whether some name matches every glob of ``all_of`` and no glob of ``none_of``; None
    when a glob has a ``[...]`` class, or the walk grows past any real case."""
    if not all_of or any("[" in glob for glob in (*all_of, *none_of)):
        return None
    wanted = [tuple(glob) for glob in all_of]  # steps: "*", "?" or one literal character
    unwanted = [tuple(glob) for glob in none_of]
    alphabet = sorted({s for steps in (*wanted, *unwanted) for s in steps} - {"*", "?"})
    alphabet.append(_stand_in(alphabet))
    start = (
        tuple(_close(steps, {0}) for steps in wanted),
        tuple(_close(steps, {0}) for steps in unwanted),
    )
    seen = {start}
    todo = [start]
    while todo:
        want, avoid = todo.pop()
        if all(len(w) in on for w, on in zip(wanted, want, strict=True)) and not any(
            len(u) in on for u, on in zip(unwanted, avoid, strict=True)
        ):
            return True
        for char in alphabet:
            nxt_want = tuple(_step(w, on, char) for w, on in zip(wanted, want, strict=True))
            if not all(nxt_want):
                continue  # some wanted glob can no longer match
            nxt_avoid = tuple(_step(u, on, char) for u, on in zip(unwanted, avoid, strict=True))
            nxt = (nxt_want, nxt_avoid)
            if nxt not in seen:
                if len(seen) >= _MAX_STATES:
                    return None
                seen.add(nxt)
                todo.append(nxt)
    return False


def _stand_in(alphabet: Sequence[str]) -> str:
    """A character that appears in no glob: it stands for all of them."""
    code = 0x2400
    while chr(code) in alphabet:
        code += 1
    return chr(code)


def _close(steps: _Steps, positions: set[int]) -> frozenset[int]:
    """``positions`` plus every position reached by letting a ``*`` match nothing."""
    todo, done = list(positions), set(positions)
    while todo:
        at = todo.pop()
        if at < len(steps) and steps[at] == "*" and at + 1 not in done:
            done.add(at + 1)
            todo.append(at + 1)
    return frozenset(done)


def _step(steps: _Steps, positions: frozenset[int], char: str) -> frozenset[int]:
    moved: set[int] = set()
    for at in positions:
        if at == len(steps):
            continue
        step = steps[at]
        if step == "*":
            moved.add(at)
        elif step == "?" or step == char:
            moved.add(at + 1)
    return _close(steps, moved)
