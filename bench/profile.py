"""Record the gateway with py-spy under load and summarise where its time goes.

``py-spy record --format raw`` writes folded stacks (``frame;frame;... count``, root first).
From them: self time by leaf frame, and inclusive time by function for the frames of interest
(Tollgate's own code and the libraries on its hot path), as shares of all samples.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*)\)$")
SITE = ("site-packages/", "dist-packages/", "lib/python3.11/", "/work/main/")


@dataclass(frozen=True, slots=True)
class Hot:
    frame: str
    share: float  # of all samples, 0..1


@dataclass(frozen=True, slots=True)
class Summary:
    samples: int
    self_top: list[Hot]
    inclusive_top: list[Hot]
    by_area: list[Hot]


def py_spy() -> str | None:
    return shutil.which("py-spy")


def record(pid: int, out: Path, *, seconds: int, fmt: str, cpus: str | None) -> None:
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    argv = [exe, "record", "--pid", str(pid), "--duration", str(seconds), "-o", str(out)]
    argv += ["--format", fmt, "--nolineno", "--rate", "200"]
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=seconds + 60)


def short(frame: str) -> str:
    """``func (path)`` with the path cut to its package-relative part."""
    m = FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in SITE:
        at = path.find(marker)
        if at >= 0:
            path = path[at + len(marker) :]
            break
    return f"{m['func']} ({path})"


LOOP_FRAMES = ("run_app (aiohttp/web.py)", "run_forever", "run_until_complete")
WRAPPERS = (
    "<module> ",
    "main (gateway/cli/main.py)",
    "serve (gateway/cli/main.py)",
    "_run_worker (",
)


def area(frame: str) -> str:
    """A coarse owner for a leaf frame: which package or part of Tollgate spends the time."""
    path = short(frame)
    if path.startswith(LOOP_FRAMES):
        return "event loop (uvloop's C code: socket I/O, callbacks)"
    inner = path[path.rfind("(") + 1 : -1] if path.endswith(")") else path
    if inner.startswith(("gateway/", "pricing/")):
        return inner.rsplit(".", 1)[0].replace("/", ".")
    top = inner.split("/", 1)[0]
    top = top.removesuffix(".py")
    return top or "?"


def summarise(folded: Path, top: int = 20) -> Summary:
    """Shares of the main thread's samples (the event loop thread; helper threads that only
    wait in a queue, such as the default executor's, are left out)."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        raw = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not raw or "threading.py" in raw[0]:
            continue
        n = int(count)
        frames = [short(f) for f in raw]
        total += n
        self_time[frames[-1]] += n
        areas[area(raw[-1])] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        return Summary(0, [], [], [])

    def hot(c: Counter[str], k: int) -> list[Hot]:
        return [Hot(f, n / total) for f, n in c.most_common(k)]

    libs = ("(redis/", "(aiohttp/", "(prometheus_client/", "(tiktoken/", "(gateway/", "(pricing/")
    interesting = Counter(
        {
            f: n
            for f, n in inclusive.items()
            if any(m in f for m in libs) and not f.startswith(WRAPPERS) and n < 0.98 * total
        }
    )
    return Summary(
        samples=total,
        self_top=hot(self_time, top),
        inclusive_top=hot(interesting, top),
        by_area=hot(areas, 15),
    )
