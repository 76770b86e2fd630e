"""Prices edited in YAML take effect without a restart, in every worker.

Each worker polls the file (and reloads at once on SIGHUP). A file that fails validation is
not applied: the old table stays, the one-line error (naming the model and field) is logged,
and ``tollgate_pricing_last_reload_ok`` drops to 0. Requests already admitted keep the price
they were admitted with.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from gateway.observability.metrics import Metrics
from gateway.prices.holder import PricingHolder
from gateway.prices.loading import load_pricing
from pricing import PriceTable, PricingError

log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class PricingReloader:
    def __init__(
        self, path: Path, holder: PricingHolder, metrics: Metrics,
        on_load: Callable[[PriceTable], None] | None = None,
    ) -> None:  # fmt: skip
        self.path = path
        self.holder = holder
        self.metrics = metrics
        self._on_load = on_load  # told of each table put in force
        self._stamp = _stamp(path)
        self.wake = asyncio.Event()

    def reload(self) -> bool:
        """Load the file now; True if a new table is in force."""
        self._stamp = _stamp(self.path)
        try:
            table = load_pricing(self.path)
        except PricingError as exc:
            log.error("pricing reload failed, keeping version %s: %s",
                      self.holder.table.version, exc)  # fmt: skip
            self.metrics.pricing_reloads.labels("error").inc()
            self.metrics.pricing_reload_ok.set(0)
            return False
        changed = table.version != self.holder.table.version
        self.holder.replace(table)
        self.metrics.pricing_reloads.labels("ok").inc()
        self.metrics.pricing_reload_ok.set(1)
        self.metrics.set_pricing_version(table.version)
        if self._on_load is not None:
            self._on_load(table)
        if changed:
            log.warning("pricing reloaded: version %s, %d models", table.version,
                        len(table.models))  # fmt: skip
        return changed

    async def watch(self, interval: float) -> None:
        """Reload when the file changes (polled every ``interval`` s) or ``wake`` is set."""
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=interval)
                self.wake.clear()
                self.reload()
            except TimeoutError:
                if _stamp(self.path) != self._stamp:
                    self.reload()
