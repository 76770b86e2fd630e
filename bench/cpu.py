"""How much CPU the machine spent outside the bench while a figure was measured.

The bench owns a handful of processes; anything else busy on the box (another user's test
run, a build) steals cycles from them and skews the figures. ``Meter`` compares the kernel's
busy time (``/proc/stat``) with the CPU time of the bench's own processes (``/proc/<pid>/stat``,
the runner counted with its waited-for children such as wrk and py-spy).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def system_busy() -> float:
    """Seconds of CPU busy (all cores) since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def process_cpu(pid: int, *, with_children: bool = False) -> float:
    """Seconds of CPU used by ``pid`` (and its waited-for children); 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + ((cutime + cstime) if with_children else 0)) / TICK


@dataclass(frozen=True, slots=True)
class Usage:
    seconds: float
    busy_cores: float  # whole machine, averaged over the interval
    bench_cores: float  # the bench's own processes
    other_cores: float  # everything else

    def as_dict(self) -> dict[str, float]:
        return {
            "seconds": round(self.seconds, 2),
            "busy_cores": round(self.busy_cores, 3),
            "bench_cores": round(self.bench_cores, 3),
            "other_cores": round(self.other_cores, 3),
        }


class Meter:
    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self._pids = pids
        self._start: tuple[float, float, dict[int, float]] | None = None

    def _ours(self) -> dict[int, float]:
        me = os.getpid()
        out = {me: process_cpu(me, with_children=True)}
        for pid in self._pids():
            out[pid] = process_cpu(pid)
        return out

    def start(self) -> None:
        self._start = (time.monotonic(), system_busy(), self._ours())

    def stop(self) -> Usage:
        assert self._start is not None
        t0, busy0, ours0 = self._start
        seconds = time.monotonic() - t0
        busy = system_busy() - busy0
        # A process started during the interval counts from 0; one that ended is lost, so
        # the bench's own processes must outlive the interval (wrk and py-spy are waited for).
        ours = sum(cpu - ours0.get(pid, 0.0) for pid, cpu in self._ours().items())
        seconds = max(seconds, 1e-9)
        return Usage(seconds, busy / seconds, ours / seconds, max(0.0, busy - ours) / seconds)


def wait_for_quiet(limit_cores: float, timeout: float, log: Callable[[str], None]) -> float:
    """Wait (up to ``timeout`` s) until the machine is below ``limit_cores`` busy for 3 s.

    Returns the busy cores of the last 3-second sample.
    """
    deadline = time.monotonic() + timeout
    warned = False
    while True:
        b0, t0 = system_busy(), time.monotonic()
        time.sleep(3.0)
        busy = (system_busy() - b0) / (time.monotonic() - t0)
        if busy < limit_cores or time.monotonic() > deadline:
            return busy
        if not warned:
            log(f"the machine is busy ({busy:.2f} cores used by others); waiting for it to calm")
            warned = True


def _spin(cpu: int, seconds: float, out: Any) -> None:
    os.sched_setaffinity(0, {cpu})
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10_000):
            n += 1
    out.put(n / seconds)


def _spin_on(cpus: list[int], seconds: float) -> float:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_spin, args=(c, seconds, out)) for c in cpus]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return float(sum(out.get() for _ in procs))


def parallel_scaling(rounds: int = 3, seconds: float = 1.0) -> float:
    """Work done by two CPU-bound processes on cores 0 and 1 at once, over one alone (median
    of ``rounds``): 2.0 means two independent cores; less means they share a physical core or
    the host is busy. It bounds what a second worker can add on this box."""
    ratios = []
    for _ in range(rounds):
        alone = (_spin_on([0], seconds) + _spin_on([1], seconds)) / 2
        ratios.append(_spin_on([0, 1], seconds) / alone)
    return sorted(ratios)[len(ratios) // 2]
