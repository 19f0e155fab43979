"""The Lab's load benches and capacity sweeps (bench.py, capacity.py do the work)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .base import LabBase
from .bench import BenchRun, BenchSpec, ParamsArg
from .bench_result import BenchResult, LatencySplitter
from .capacity import CapacityResult, CapacitySweep

__all__ = ["BenchMixin"]


class BenchMixin(LabBase):
    """Load benches and capacity sweeps, with their record (``benches()``)."""

    # Faces of their own: a run is an object (progress, stop, widget), and Ctrl-C in the
    # blocking face stops it and returns what it measured rather than raising.

    def _new_bench(self, target: str, params: ParamsArg, options: dict[str, Any]) -> BenchRun:
        connection = self.connection(options.pop("alias", None))
        spec = BenchSpec.make(target, params, default_timeout=self.timeout, **options)
        return BenchRun(spec, connection.api, self._runner, self.describe_timeout, self._benches)

    def bench(self, target: str, params: ParamsArg = None, **options: Any) -> BenchResult:
        """Put ``target`` ("service.method") under load and measure it; options: see
        :meth:`BenchSpec.make` (n or duration, concurrency or rate, warmup, timeout, encrypt,
        kind, label, context, check) and ``alias``. Ctrl-C stops it, keeping the result."""
        return self._new_bench(target, params, options).wait()

    async def abench(self, target: str, params: ParamsArg = None, **options: Any) -> BenchResult:
        """The async twin of :meth:`bench`."""
        return await self._runner.run_async(self._new_bench(target, params, options).execute())

    def start_bench(self, target: str, params: ParamsArg = None, **options: Any) -> BenchRun:
        """Start a bench and return at once: ``.progress``, ``.widget()`` (with a Stop button),
        ``.stop()``, ``.wait()``, ``.result``."""
        return self._new_bench(target, params, options).start()

    def benches(self) -> pd.DataFrame:
        """Every bench run of this session, side by side (one summary row each)."""
        return self._benches.frame()

    @property
    def bench_splitters(self) -> list[LatencySplitter]:
        """Taps that split a bench's latency into queued and in-service (bench_result.py)."""
        return self._benches.splitters

    def _new_sweep(self, target: str, params: ParamsArg, options: dict[str, Any]) -> CapacitySweep:
        api = self.connection(options.pop("alias", None)).api
        options.setdefault("timeout", self.timeout)
        runner, book = self._runner, self._benches
        return CapacitySweep.make(
            target, params, api, runner, self.describe_timeout, book, **options
        )

    def capacity(self, target: str, params: ParamsArg = None, **options: Any) -> CapacityResult:
        """A bench at each of ``concurrency=[1, 2, 4, ...]`` (the default) or ``rate=[...]``:
        the throughput-latency curve and its knee (``.df``, ``.knee``, ``.plot()``). Each step
        lasts ``duration`` (default 2 s) or ``n`` calls. Ctrl-C keeps the steps measured."""
        return self._new_sweep(target, params, options).wait()

    async def acapacity(
        self, target: str, params: ParamsArg = None, **options: Any
    ) -> CapacityResult:
        """The async twin of :meth:`capacity`."""
        return await self._runner.run_async(self._new_sweep(target, params, options).execute())
