"""Capacity sweeps: a bench at each of a list of loads, the throughput-latency curve, its knee.

``lab.capacity("svc.m", concurrency=[1, 2, 4, 8])`` (closed model) or ``rate=[...]`` (open
model) runs one bench per load (each recorded in ``lab.benches()``) and returns a
:class:`CapacityResult`. The knee is the step with the most throughput per unit of p99
latency (Kleinrock's "power"): below it more load buys throughput at little latency cost,
past it throughput stops growing while p99 turns up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from ..mesh.api import RMQAPI
from .bench import BenchError, Benches, BenchRun, BenchSpec, ParamsArg
from .bench_result import BenchResult
from .markup import frame, output, tag
from .picture import Picture, draw
from .runner import LoopRunner

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_CONCURRENCY_STEPS", "CapacityResult", "CapacitySweep", "find_knee"]

DEFAULT_CONCURRENCY_STEPS: Final = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_STEP_S: Final = 2.0
MAX_STEPS: Final = 50
ERRORS_TO_STOP: Final = 0.5  # a step with more errors than this ends the sweep
COLUMNS = ["load", "achieved_rate", "ok_rate", "p50_ms", "p90_ms", "p99_ms", "max_ms"]


def find_knee(ok_rates: Sequence[float], p99s: Sequence[float | None]) -> int | None:
    """The index of the step with the most throughput per millisecond of p99 (the first of
    equals), or None with fewer than two steps that measured anything."""
    best, best_power = None, 0.0
    measured = 0
    for index, (rate, p99) in enumerate(zip(ok_rates, p99s, strict=True)):
        if not rate or p99 is None or p99 <= 0:
            continue
        measured += 1
        power = rate / p99
        if power > best_power * 1.000001:
            best, best_power = index, power
    return best if measured >= 2 else None


class CapacityResult:
    """The steps of a sweep: ``.df`` (one row per load), ``.knee``, ``.plot()``."""

    def __init__(
        self, by: str, steps: list[BenchResult], state: str, label: str, target: str
    ) -> None:
        self.by = by  # "concurrency" or "rate"
        self.steps = steps
        self.state = state
        self.label = label
        self.target = target
        self.notes: list[str] = []

    @property
    def df(self) -> pd.DataFrame:
        """load, achieved_rate, ok_rate (calls/s), p50/p90/p99/max (ms), errors, count,
        state, and whether the step is the knee."""
        rows = []
        for step in self.steps:
            s = step.summary()
            load = step.info.concurrency if self.by == "concurrency" else step.info.rate
            ok_rate = s["ok"] / step.elapsed_s if s["count"] else 0.0
            latency = [s["p50_ms"], s["p90_ms"], s["p99_ms"], s["max_ms"]]
            rows.append(
                [load, s["achieved_rate"], ok_rate, *latency, s["errors"], s["count"], step.state]
            )
        frame = pd.DataFrame(rows, columns=[*COLUMNS, "errors", "count", "state"])
        knee = find_knee(list(frame["ok_rate"]), list(frame["p99_ms"]))
        frame["knee"] = [i == knee for i in range(len(frame))]
        frame.attrs.update(by=self.by, target=self.target, label=self.label)
        return frame

    @property
    def knee(self) -> pd.Series | None:
        """The knee's row of ``df`` (None when it cannot be told)."""
        frame = self.df
        rows = frame[frame["knee"]]
        return None if rows.empty else rows.iloc[0]

    def explain(self) -> str:
        frame = self.df
        knee = self.knee
        if knee is None:
            return "no knee: fewer than two steps measured"
        name = "concurrency" if self.by == "concurrency" else "rate"
        text = (
            f"knee at {name} {knee['load']:g}: {knee['ok_rate']:,.0f}/s,"
            f" p99 {knee['p99_ms']:.3g} ms"
        )
        at = int(knee.name)  # type: ignore[call-overload]
        if at + 1 < len(frame):
            after = frame.iloc[-1]
            growth = after["ok_rate"] / knee["ok_rate"] if knee["ok_rate"] else 0.0
            rise = after["p99_ms"] / knee["p99_ms"] if knee["p99_ms"] else 0.0
            text += f"; up to {name} {after['load']:g} throughput x{growth:.2f}, p99 x{rise:.2f}"
        return text

    def __repr__(self) -> str:
        return (
            f"<CapacityResult {self.label} by {self.by}, {len(self.steps)} steps: {self.explain()}>"
        )

    def _repr_html_(self) -> str:
        notes = (tag("div", tag("i", n)) for n in self.notes)
        table = frame(self.df, index=False, border=0, na_rep="", float_format="{:,.3g}".format)
        head = tag("div", tag("b", self.label), ": ", self.explain())
        return output(head, *notes, table)

    def plot(self) -> Picture:
        """Throughput against load, and the throughput-latency curve (p50, p99) with the knee
        marked; ``.data`` holds the steps and the knee."""
        frame = self.df
        knee = self.knee
        data = {
            "steps": frame.drop(columns=["state"]).to_dict("records"),
            "knee": None if knee is None else knee.to_dict(),
            "by": self.by,
        }

        def paint(figure: Figure) -> None:
            load_ax, curve = figure.subplots(1, 2)
            load_ax.plot(frame["load"], frame["ok_rate"], marker="o", color="#55a868")
            from matplotlib.ticker import ScalarFormatter

            load_ax.set_xscale("log", base=2 if self.by == "concurrency" else 10)
            load_ax.xaxis.set_major_formatter(ScalarFormatter())  # 16, not 2^4
            load_ax.set_xlabel(self.by + (" (in flight)" if self.by == "concurrency" else " asked"))
            load_ax.set_ylabel("calls/s (ok)")
            curve.plot(frame["ok_rate"], frame["p99_ms"], marker="o", label="p99", color="#c44e52")
            curve.plot(frame["ok_rate"], frame["p50_ms"], marker=".", label="p50", color="#4c72b0")
            for _, row in frame.iterrows():
                curve.annotate(f"{row['load']:g}", (row["ok_rate"], row["p99_ms"]), fontsize=7)
            if knee is not None:
                for ax, x, y in (
                    (load_ax, knee["load"], knee["ok_rate"]),
                    (curve, knee["ok_rate"], knee["p99_ms"]),
                ):
                    ax.scatter([x], [y], s=160, facecolors="none", edgecolors="black", zorder=3)
                curve.annotate(
                    "knee",
                    (knee["ok_rate"], knee["p99_ms"]),
                    xytext=(8, 8),
                    textcoords="offset points",
                )
            curve.set_yscale("log")
            curve.set_xlabel("calls/s (ok)")
            curve.set_ylabel("latency (ms, log)")
            curve.legend(loc="upper left")

        return draw(paint, data=data, title=f"{self.label}: {self.explain()}", width=10.0)


class CapacitySweep:
    """A sweep in progress: ``start()``, ``wait()``, ``stop()``, ``current`` (the step's
    run, with its progress and widget); ``result`` once over."""

    def __init__(
        self,
        specs: list[BenchSpec],
        by: str,
        label: str,
        api: RMQAPI,
        runner: LoopRunner,
        describe_timeout: float,
        book: Benches | None,
    ) -> None:
        self.specs = specs
        self.by = by
        self.api = api
        self.runner = runner
        self.describe_timeout = describe_timeout
        self.book = book
        self.label = label
        self.current: BenchRun | None = None
        self.steps: list[BenchResult] = []
        self.result: CapacityResult | None = None
        self.future: concurrent.futures.Future[CapacityResult] | None = None
        self._stopped: str | None = None
        self._lock = threading.Lock()
        self._notes: list[str] = []

    @classmethod
    def make(
        cls,
        target: str,
        params: ParamsArg,
        api: RMQAPI,
        runner: LoopRunner,
        describe_timeout: float,
        book: Benches | None,
        *,
        concurrency: Sequence[int] | None = None,
        rate: Sequence[float] | None = None,
        label: str | None = None,
        **options: Any,
    ) -> CapacitySweep:
        """Every step checked before any load (BenchError in one line)."""
        if concurrency is not None and rate is not None:
            raise BenchError("sweep concurrency or rate, not both")
        by = "rate" if rate is not None else "concurrency"
        loads = list(rate if rate is not None else concurrency or DEFAULT_CONCURRENCY_STEPS)
        if not loads or len(loads) > MAX_STEPS:
            raise BenchError(f"a sweep takes from 1 to {MAX_STEPS} loads, got {len(loads)}")
        if "n" not in options and "duration" not in options:
            options["duration"] = DEFAULT_STEP_S
        label = label or target
        specs = []
        for load in sorted(set(loads)):
            name = f"{label} c={load}" if by == "concurrency" else f"{label} r={load:g}"
            step: dict[str, Any] = {by: load}
            specs.append(BenchSpec.make(target, params, label=name, **step, **options))
        return cls(specs, by, label, api, runner, describe_timeout, book)

    def start(self) -> CapacitySweep:
        with self._lock:
            if self.future is None:
                self.future = self.runner.submit(self.execute())
        return self

    def stop(self, reason: str = "stopped") -> None:
        """Stop the step running now and run no more (from any thread)."""
        self._stopped = self._stopped or reason
        current = self.current
        if current is not None:
            current.stop(reason)

    def wait(self) -> CapacityResult:
        """Start and wait; Ctrl-C stops the sweep and returns the steps measured."""
        future = self.start().future
        assert future is not None
        try:
            while not future.done():
                concurrent.futures.wait([future], timeout=0.1)
        except KeyboardInterrupt:
            self.stop("interrupted")
        timeout = max(s.timeout for s in self.specs) + 10.0
        return future.result(timeout=timeout)

    def partial(self) -> CapacityResult:
        steps = list(self.steps)
        current = self.current
        if current is not None and current.result is None:
            steps.append(current.partial())
        return self._make_result(steps, "running")

    def _make_result(self, steps: list[BenchResult], state: str) -> CapacityResult:
        result = CapacityResult(self.by, steps, state, self.label, self.specs[0].target)
        result.notes = list(self._notes)
        return result

    async def execute(self) -> CapacityResult:
        """Run the steps in order of load; a step that was stopped, or failed more than half
        of its calls, ends the sweep."""
        try:
            for spec in self.specs:
                run = BenchRun(spec, self.api, self.runner, self.describe_timeout, self.book)
                self.current = run  # before the check: a stop() after it stops this run
                if self._stopped:
                    break
                step = await run.execute()
                self.steps.append(step)
                if step.state != "done":
                    break
                summary = step.summary()
                if summary["count"] and summary["errors"] > ERRORS_TO_STOP * summary["count"]:
                    self._notes.append(
                        f"stopped after {spec.label}: {summary['errors']:,} of"
                        f" {summary['count']:,} calls failed"
                    )
                    break
        except asyncio.CancelledError:
            current = self.current
            if current is not None and current.result is not None:
                if current.result not in self.steps:
                    self.steps.append(current.result)
            self.result = self._make_result(self.steps, "interrupted")
            raise
        self.current = None
        self.result = self._make_result(self.steps, self._stopped or "done")
        return self.result
