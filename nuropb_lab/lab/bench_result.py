"""What a bench run measured: one row per call, its summary, its plot.

Latencies count from each call's *intended* send time. In the closed model that is the time
it was sent; in the open model (a fixed rate) it is the time the schedule gave it, so a call
the generator could only send late, because the service stalled everything before it, shows
the stall in its latency (wrk2's answer to coordinated omission).

A wire tap that can tell, per correlation id, how long a request waited in the service's
queue and how long the service took, splits the summary's latency in two: see
:class:`LatencySplitter`.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .markup import frame, output, tag
from .picture import Picture, draw

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["BenchInfo", "BenchResult", "Calls", "LatencySplitter", "percentile"]

CANCELLED = "Cancelled"  # the error class of a call the run stopped while it was in flight
QUANTILES = (("p50_ms", 0.50), ("p90_ms", 0.90), ("p99_ms", 0.99), ("p99_9_ms", 0.999))
LATE_S = 0.010  # an open-model call sent this much after its intended time counts as late
SCATTER = 5_000  # points at most in the latency-over-time panel


@runtime_checkable
class LatencySplitter(Protocol):
    """The hook a running wire tap offers the bench (the tap is a feature of its own).

    ``latency_split(ids)`` answers, for the correlation ids it saw, ``(queued_ms,
    service_ms)``: the time the request waited in the service's queue and the time from its
    delivery to the service until the response; either may be None. Register one with
    ``lab.bench_splitters.append(tap)`` (and remove it when the tap stops); every summary
    then asks it, and shows the split when it knew some of the calls.
    """

    def latency_split(
        self, correlation_ids: Sequence[str]
    ) -> Mapping[str, tuple[float | None, float | None]]: ...


def percentile(sorted_values: np.ndarray[Any, Any], q: float) -> float | None:
    """Nearest-rank percentile of ascending values (a value that was measured, never an
    interpolation between two)."""
    n = len(sorted_values)
    if not n:
        return None
    return float(sorted_values[min(n - 1, max(0, math.ceil(q * n) - 1))])


@dataclasses.dataclass(frozen=True)
class BenchInfo:
    """What was asked of a run."""

    label: str
    target: str
    kind: str  # "call" or "command"
    model: str  # "closed" (concurrency in flight) or "open" (a rate)
    concurrency: int  # in flight (closed), or the cap on in flight (open)
    rate: float | None
    n: int | None
    duration: float | None
    warmup: int
    timeout: float
    encrypted: bool
    checked: bool  # whether the params were checked against a description


@dataclasses.dataclass(frozen=True)
class Calls:
    """The calls of a run, in the order they ended (perf_counter seconds)."""

    number: np.ndarray[Any, Any]
    intended: np.ndarray[Any, Any]
    sent: np.ndarray[Any, Any]
    ended: np.ndarray[Any, Any]
    error: list[str | None]
    correlation_id: list[str | None]

    @classmethod
    def of(
        cls,
        number: Sequence[int],
        intended: Sequence[float],
        sent: Sequence[float],
        ended: Sequence[float],
        error: Sequence[str | None],
        correlation_id: Sequence[str | None],
    ) -> Calls:
        # lists appended to by another thread: copy each once, then cut to the shortest
        numbers = list(number)
        times = [list(intended), list(sent), list(ended)]
        errors, ids = list(error), list(correlation_id)
        k = min(len(numbers), *(len(t) for t in times), len(errors), len(ids))
        return cls(
            np.asarray(numbers[:k], dtype=np.int64),
            np.asarray(times[0][:k], dtype=float),
            np.asarray(times[1][:k], dtype=float),
            np.asarray(times[2][:k], dtype=float),
            errors[:k],
            ids[:k],
        )

    def __len__(self) -> int:
        return len(self.number)


class BenchResult:
    """One bench run: ``.df`` (a row per call), ``.summary()``, ``.plot()``."""

    def __init__(
        self,
        info: BenchInfo,
        calls: Calls,
        state: str,
        started_at: datetime.datetime,
        origin: float,
        finished: float,
        notes: Sequence[str] = (),
        late: int = 0,
        unsent: int = 0,
        cap_waits: int = 0,
        splitters: Callable[[], Sequence[LatencySplitter]] | None = None,
    ) -> None:
        self.info = info
        self.calls = calls
        self.state = state  # done, stopped, interrupted, overran, disconnected, running
        self.started_at = started_at  # wall clock of ``origin``
        self.origin = origin  # perf_counter at the first intended send
        self.finished = finished
        self.notes = list(notes)
        self.late = late
        self.unsent = unsent
        self.cap_waits = cap_waits
        self._splitters = splitters
        self._df: pd.DataFrame | None = None

    @property
    def label(self) -> str:
        return self.info.label

    # --- the numbers ------------------------------------------------------------------------

    def _completed(self) -> np.ndarray[Any, Any]:
        return np.fromiter((e != CANCELLED for e in self.calls.error), bool, len(self.calls))

    def latencies_ms(self) -> np.ndarray[Any, Any]:
        """Latencies of the calls that ended (not cancelled), from the intended send, in ms."""
        c = self.calls
        latencies: np.ndarray[Any, Any] = ((c.ended - c.intended) * 1000.0)[self._completed()]
        return latencies

    @property
    def df(self) -> pd.DataFrame:
        """One row per call, in call order: call, intended, sent (UTC times), latency_ms (from
        the intended time), ok, error (the nuropb error class, or None), correlation_id."""
        if self._df is None:
            c = self.calls
            order = np.argsort(c.number, kind="stable")
            wall = self.started_at.timestamp()
            frame = pd.DataFrame(
                {
                    "call": c.number[order],
                    "intended": pd.to_datetime(wall + (c.intended[order] - self.origin), unit="s"),
                    "sent": pd.to_datetime(wall + (c.sent[order] - self.origin), unit="s"),
                    "latency_ms": ((c.ended - c.intended) * 1000.0)[order],
                    "ok": np.fromiter((c.error[i] is None for i in order), bool, len(order)),
                    "error": pd.Series([c.error[i] for i in order], dtype=object),
                    "correlation_id": pd.Series([c.correlation_id[i] for i in order], dtype=object),
                }
            )
            frame["intended"] = frame["intended"].dt.tz_localize("UTC")
            frame["sent"] = frame["sent"].dt.tz_localize("UTC")
            frame.attrs.update(label=self.label, target=self.info.target)
            self._df = frame
        return self._df

    @property
    def elapsed_s(self) -> float:
        """From the first intended send to the last call's end."""
        c = self.calls
        end = float(c.ended.max()) if len(c) else self.finished
        return max(end - self.origin, 1e-9)

    def summary(self, split: LatencySplitter | None = None) -> pd.Series:
        """count (calls that ended), ok, errors and errors by class, cancelled, achieved rate,
        latency percentiles (p50/p90/p99/p99.9/max, from the intended send) and, in the open
        model, how far behind its schedule the generator sent. With a tap that can split
        latency (``split``, or one registered with the Lab), queued and in-service too."""
        info, c = self.info, self.calls
        completed = self._completed()
        errors: dict[str, int] = {}
        for error in c.error:
            if error is not None and error != CANCELLED:
                errors[error] = errors.get(error, 0) + 1
        latencies = np.sort(self.latencies_ms())
        count = int(completed.sum())
        row: dict[str, Any] = {
            "label": info.label,
            "target": info.target,
            "kind": info.kind,
            "model": info.model,
            "concurrency": info.concurrency,
            "rate": info.rate,
            "state": self.state,
            "count": count,
            "ok": count - sum(errors.values()),
            "errors": sum(errors.values()),
            "errors_by_class": dict(sorted(errors.items())),
            "cancelled": len(c) - count,
            "elapsed_s": round(self.elapsed_s, 3),
            "achieved_rate": count / self.elapsed_s if count else 0.0,
        }
        for name, q in QUANTILES:
            row[name] = percentile(latencies, q)
        row["max_ms"] = float(latencies[-1]) if count else None
        row["mean_ms"] = float(latencies.mean()) if count else None
        lag = np.sort((c.sent - c.intended) * 1000.0)
        row["lag_p99_ms"] = percentile(lag, 0.99) if info.model == "open" else None
        row["late_sends"] = self.late if info.model == "open" else None
        row["unsent"] = self.unsent if info.model == "open" else None
        row.update(self._split(split))
        row["notes"] = "; ".join(self.notes)
        return pd.Series(row, name=info.label, dtype=object)

    def _split(self, split: LatencySplitter | None) -> dict[str, Any]:
        candidates = (
            [split] if split is not None else list(self._splitters() if self._splitters else [])
        )
        ids = [i for i in self.calls.correlation_id if i]
        for splitter in candidates:
            if not ids:
                break
            known = splitter.latency_split(ids)
            queued = np.sort([q for q, _ in known.values() if q is not None])
            service = np.sort([s for _, s in known.values() if s is not None])
            if len(queued) or len(service):
                return {
                    "split_calls": len(known),
                    "queued_p50_ms": percentile(queued, 0.5),
                    "queued_p99_ms": percentile(queued, 0.99),
                    "service_p50_ms": percentile(service, 0.5),
                    "service_p99_ms": percentile(service, 0.99),
                }
        return {}

    # --- showing it ---------------------------------------------------------------------------

    def headline(self) -> str:
        s = self.summary()
        info = self.info
        load = f"c={info.concurrency}" if info.model == "closed" else f"rate={info.rate:g}/s"
        p50, p99 = s["p50_ms"], s["p99_ms"]
        latency = f", p50 {p50:.3g} ms, p99 {p99:.3g} ms" if p50 is not None else ""
        errors = f", {s['errors']:,} errors" if s["errors"] else ""
        return (
            f"{info.label} ({info.target}, {info.model} {load}): {s['count']:,} calls"
            f"{errors}, {s['achieved_rate']:,.0f}/s{latency} [{self.state}]"
        )

    def __repr__(self) -> str:
        return f"<BenchResult {self.headline()}>"

    def _repr_html_(self) -> str:
        notes = (tag("div", tag("i", n)) for n in self.notes)
        table = frame(self.summary().to_frame(), border=0, na_rep="")
        return output(tag("div", tag("b", self.headline())), *notes, table)

    def plot(self, bins: int = 40) -> Picture:
        """Latency histogram (log axis), latency and throughput over time, as a Picture;
        ``.data`` holds what each panel was drawn from."""
        c = self.calls
        completed = self._completed()
        latency = ((c.ended - c.intended) * 1000.0)[completed]
        at = (c.ended - self.origin)[completed]  # when each call ended (throughput)
        due = (c.intended - self.origin)[completed]  # when it was meant to go (latency)
        ok = np.fromiter((e is None for e in c.error), bool, len(c))[completed]
        # a bounded picture: at most SCATTER points, evenly picked (the stride is kept)
        stride = max(1, math.ceil(len(latency) / SCATTER))
        positive = latency[latency > 0]
        low = float(positive.min()) if len(positive) else 0.1
        high = float(latency.max()) if len(latency) else 1.0
        edges = np.geomspace(low, max(high, low * 1.01), bins + 1)
        counts, _ = np.histogram(np.clip(latency, low, None), bins=edges)
        span = max(float(at.max()) if len(at) else 0.0, 1e-3)
        width = max(span / 50, 0.05)
        slots = np.arange(0.0, span + width, width)
        per_bin, _ = np.histogram(at, bins=slots)
        percentiles = {name: percentile(np.sort(latency), q) for name, q in QUANTILES}
        data: dict[str, Any] = {
            "histogram": {"edges_ms": edges.tolist(), "counts": counts.tolist()},
            "latency": {
                "intended_s": due[::stride].tolist(),
                "ms": latency[::stride].tolist(),
                "ok": ok[::stride].tolist(),
                "every": stride,
            },
            "throughput": {"at_s": slots[:-1].tolist(), "per_s": (per_bin / width).tolist()},
            "percentiles": percentiles,
            "rate": self.info.rate,
        }

        def paint(figure: Figure) -> None:
            hist, over_time, throughput = figure.subplots(3, 1)
            hist.hist(edges[:-1], bins=edges, weights=counts, color="#4c72b0")
            hist.set_xscale("log")
            hist.set_xlabel("latency (ms, log)")
            hist.set_ylabel("calls")
            for name, value in percentiles.items():
                if value is not None and name in ("p50_ms", "p99_ms"):
                    hist.axvline(value, color="#c44e52", linestyle="--", linewidth=1)
                    hist.annotate(name[:-3], (value, 0.9), xycoords=("data", "axes fraction"))
            x, y, good = due[::stride], latency[::stride], ok[::stride]
            over_time.scatter(x[good], y[good], s=2, color="#4c72b0", label="ok", rasterized=True)
            if (~good).any():
                over_time.scatter(
                    x[~good], y[~good], s=4, color="#c44e52", label="error", rasterized=True
                )
                over_time.legend(loc="upper right")
            if len(positive):
                over_time.set_yscale("log")
            over_time.set_ylabel("latency (ms)")
            over_time.set_xlabel("intended send (s since the first)")
            throughput.plot(slots[:-1], per_bin / width, color="#55a868")
            if self.info.rate:
                throughput.axhline(self.info.rate, color="grey", linestyle=":", label="asked")
                throughput.legend(loc="lower right")
            throughput.set_ylabel("calls/s")
            throughput.set_xlabel("seconds since the first send")

        return draw(paint, data=data, title=self.headline(), width=8.0, height=8.0)
