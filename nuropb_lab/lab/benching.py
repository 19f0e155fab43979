"""The Lab's load benches and capacity sweeps (bench.py, capacity.py do the work)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from .bench import Benches, BenchRun, BenchSpec, ParamsArg
from .bench_result import BenchResult, LatencySplitter
from .capacity import CapacityResult, CapacitySweep
from .connections import Connections
from .runner import LoopRunner
from .settings import Settings

__all__ = ["Benching"]


class Benching:
    """Load benches and capacity sweeps, with their record (``benches()``).

    A run is a handle (progress, stop, widget), and Ctrl-C in the blocking faces stops it and
    returns what it measured rather than raising: so ``bench`` and ``capacity`` block in the
    run's own ``wait()``, and ``start_*`` return the run at once."""

    def __init__(
        self,
        connections: Connections,
        settings: Settings,
        runner: LoopRunner,
        running_taps: Callable[[], Sequence[LatencySplitter]],
    ) -> None:
        self._connections = connections
        self._settings = settings
        self._runner = runner
        # a running wire tap splits a bench's latency into queued and in-service
        self._book = Benches(running_taps)

    def _new_bench(self, target: str, params: ParamsArg, options: dict[str, Any]) -> BenchRun:
        connection = self._connections.connection(options.pop("alias", None))
        self._connections.may_send(connection, "a bench")
        settings = self._settings
        spec = BenchSpec.make(target, params, default_timeout=settings.timeout, **options)
        run = BenchRun(spec, connection.api, self._runner, settings.describe_timeout, self._book)
        run.settings = settings
        return run

    def bench(self, /, target: str, params: ParamsArg = None, **options: Any) -> BenchResult:
        """Put ``target`` ("service.method") under load and measure it; options: see
        :meth:`BenchSpec.make` (n or duration, concurrency or rate, warmup, timeout, encrypt,
        kind, label, context, check) and ``alias``. Ctrl-C stops it, keeping the result."""
        return self._new_bench(target, params, options).wait()

    async def abench(self, /, target: str, params: ParamsArg = None, **options: Any) -> BenchResult:
        """The async twin of :meth:`bench`."""
        return await self._new_bench(target, params, options).execute()

    def start_bench(self, /, target: str, params: ParamsArg = None, **options: Any) -> BenchRun:
        """Start a bench and return at once: ``.progress``, ``.widget()`` (with a Stop button),
        ``.stop()``, ``.wait()``, ``.result``."""
        return self._new_bench(target, params, options).start()

    def benches(self) -> pd.DataFrame:
        """Every bench run of this session, side by side (one summary row each)."""
        return self._book.frame()

    @property
    def splitters(self) -> list[LatencySplitter]:
        """Latency splitters added by hand, besides the running taps (bench_result.py)."""
        return self._book.splitters

    def _new_sweep(self, target: str, params: ParamsArg, options: dict[str, Any]) -> CapacitySweep:
        connection = self._connections.connection(options.pop("alias", None))
        self._connections.may_send(connection, "a capacity sweep")
        api = connection.api
        options.setdefault("timeout", self._settings.timeout)
        describe_timeout = self._settings.describe_timeout
        return CapacitySweep.make(
            target, params, api, self._runner, describe_timeout, self._book, **options
        )

    def capacity(self, /, target: str, params: ParamsArg = None, **options: Any) -> CapacityResult:
        """A bench at each of ``concurrency=[1, 2, 4, ...]`` (the default) or ``rate=[...]``:
        the throughput-latency curve and its knee (``.df``, ``.knee``, ``.plot()``). Each step
        lasts ``duration`` (default 2 s) or ``n`` calls. Ctrl-C keeps the steps measured."""
        return self._new_sweep(target, params, options).wait()

    async def acapacity(
        self, /, target: str, params: ParamsArg = None, **options: Any
    ) -> CapacityResult:
        """The async twin of :meth:`capacity`."""
        return await self._new_sweep(target, params, options).execute()

    def start_capacity(
        self, /, target: str, params: ParamsArg = None, **options: Any
    ) -> CapacitySweep:
        """Start a sweep and return at once: ``.current`` (the step's run), ``.stop()``,
        ``.wait()``, ``.result``."""
        return self._new_sweep(target, params, options).start()
