"""One /metrics for several workers, without prometheus-client's multiprocess mode.

That mode writes every update through an mmap'ed file under a lock: two to three times the
cost of a plain in-process update, on the request path. Here each worker counts in ordinary
in-process metrics and publishes a snapshot of its samples to a shared directory
(``worker-<pid>.json``, written and renamed, so a reader never sees half a file): every
``interval`` seconds, right when it answers /metrics, and once more when it stops. A worker
answering /metrics merges its live registry with the other workers' latest snapshots, as the
multiprocess mode would:

* counters and histograms are summed over every worker that ever published, exited ones
  included, so they never go backwards;
* a gauge is merged per its ``multiprocess_mode`` (``livesum``, ``livemin``, ``liveall`` with a
  ``pid`` label, ...) over live workers. A worker is live until it publishes its last snapshot
  at shutdown, its process is gone, or it has not published for ``stale_after`` seconds.

A peer's figures lag by at most one interval. Scrapes stay monotonic whichever worker answers:
what a worker shows of itself is what it has just published for the others to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

Row = tuple[str, dict[str, str], float]  # sample name, labels, value
_COMBINE: dict[str, Callable[[float, float], float] | None] = {
    "sum": lambda a, b: a + b,
    "min": min,
    "max": max,
    "all": None,  # one series per worker, told apart by a pid label
}


@dataclass(frozen=True)
class Snapshot:
    """One worker's samples (``_created`` left out), by family name."""

    pid: int
    live: bool
    families: Mapping[str, Sequence[Row]]


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rows(families: Iterable[Metric]) -> dict[str, list[Row]]:
    """The samples worth sharing: ``_created`` means nothing summed over workers."""
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples if s.name != f.name + "_created"]
        for f in families
    }


def merge(
    families: Sequence[Metric], snapshots: Sequence[Snapshot], gauge_modes: Mapping[str, str]
) -> list[Metric]:
    """``families`` (names, types and help, as this worker's registry describes them) with the
    samples of all ``snapshots`` (this worker's included) merged per metric type."""
    merged = []
    for family in families:
        mode = gauge_modes.get(family.name, "all") if family.type == "gauge" else "sum"
        live_only = mode.startswith("live")
        combine = _COMBINE[mode.removeprefix("live")]
        values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for snapshot in snapshots:
            if live_only and not snapshot.live:
                continue
            for name, labels, value in snapshot.families.get(family.name, ()):
                if combine is None:
                    labels = {**labels, "pid": str(snapshot.pid)}
                key = (name, tuple(sorted(labels.items())))
                seen = values.get(key)
                values[key] = value if seen is None or combine is None else combine(seen, value)
        out = Metric(family.name, family.documentation, family.type, family.unit)
        for (name, label_items), value in values.items():
            out.add_sample(name, dict(label_items), value)
        merged.append(out)
    return merged


class _Families:
    """What ``generate_latest`` reads: already collected families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


class SharedMetrics:
    """This worker's side of the shared directory: publish its snapshot, read the others'."""

    def __init__(
        self,
        registry: CollectorRegistry,
        directory: Path,
        gauge_modes: Mapping[str, str],
        *,
        interval: float = 1.0,
        stale_after: float = 10.0,
        pid: int | None = None,
        alive: Callable[[int], bool] = pid_exists,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for mode in gauge_modes.values():
            if mode.removeprefix("live") not in _COMBINE:
                raise ValueError(f"multiprocess_mode {mode!r} cannot be shared between workers")
        self._registry = registry
        self._dir = directory
        self._gauge_modes = gauge_modes
        self.interval = interval
        self._stale_after = stale_after
        self._pid = os.getpid() if pid is None else pid
        self._alive = alive
        self._clock = clock
        self._path = directory / f"worker-{self._pid}.json"
        self._tmp = directory / f".worker-{self._pid}.json.tmp"

    def publish(self, *, final: bool = False) -> tuple[list[Metric], Snapshot]:
        """Write this worker's snapshot (``final``: it is exiting, its gauges stop counting);
        returns the families collected and the snapshot made of them."""
        families = list(self._registry.collect())
        own = Snapshot(self._pid, not final, rows(families))
        doc = {"pid": self._pid, "time": self._clock(), "final": final, "families": own.families}
        try:
            self._tmp.write_bytes(orjson.dumps(doc))
            os.replace(self._tmp, self._path)
        except OSError as exc:  # a full disk must not stop the worker; retry next time
            log.warning("could not publish metrics to %s: %s", self._dir, exc)
        return families, own

    def peers(self) -> list[Snapshot]:
        """The other workers' latest snapshots, each marked live or not."""
        found = []
        now = self._clock()
        for path in self._dir.glob("worker-*.json"):
            if path == self._path:
                continue
            try:
                doc: dict[str, Any] = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:  # gone with its directory
                log.warning("skipping metrics snapshot %s: %s", path, exc)
                continue
            pid = int(doc["pid"])
            live = (not doc["final"] and now - doc["time"] < self._stale_after
                    and self._alive(pid))  # fmt: skip
            found.append(Snapshot(pid, live, doc["families"]))
        return found

    def exposition(self) -> bytes:
        """The whole server's /metrics text, as of now for this worker."""
        families, own = self.publish()
        return generate_latest(_Families(merge(families, [own, *self.peers()],
                                               self._gauge_modes)))  # fmt: skip

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Publish every ``interval`` seconds while inside, and a final snapshot on the way out."""
        task = asyncio.create_task(self._publish_forever())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.publish(final=True)

    async def _publish_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.publish()
