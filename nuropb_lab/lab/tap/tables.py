"""What a tap's tables say: statistics per edge and method, timings, traces.

:class:`TapData` works on the two frames alone (``df``: one row per message, ``calls``: one
row per request or command), so a live tap and one loaded from a file answer alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import OptionError
from ..markup import frame, output, tag
from .calls import CALL_COLUMNS
from .capture import COLUMNS
from .store import save

if TYPE_CHECKING:
    from ..picture import Picture

__all__ = ["TapData", "Trace", "calls_frame", "messages_frame", "trace_spans"]

QUANTILES = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
TRACE_COLUMNS = [
    "start_ms",
    "depth",
    "kind",
    "caller",
    "service",
    "method",
    "topic",
    "latency_ms",
    "queued_ms",
    "ok",
    "error",
    "correlation_id",
    "parent",
    "time",
]


def messages_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows of :data:`COLUMNS` as ``tap.df`` (times as UTC datetimes)."""
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    for column in ("payload", "context", "routed_to"):
        frame[column] = frame[column].astype(object)
    return frame


def calls_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows of :data:`CALL_COLUMNS` as ``tap.calls``."""
    frame = pd.DataFrame.from_records(rows, columns=list(CALL_COLUMNS))
    frame["started"] = pd.to_datetime(frame["started"], unit="s", utc=True)
    for column in ("latency_ms", "queued_ms", "in_service_ms"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["ok"] = pd.array(
        [None if v is None or v is pd.NA else bool(v) for v in frame["ok"]], dtype="boolean"
    )
    return frame


class Trace:
    """One trace: its spans as a table (``.df``) and as a waterfall (``.picture``)."""

    def __init__(self, trace_id: str, df: pd.DataFrame, picture: Picture) -> None:
        self.trace_id = trace_id
        self.df = df
        self.picture = picture

    def __repr__(self) -> str:
        return f"<Trace {self.trace_id!r}: {len(self.df)} span(s)>"

    def _repr_html_(self) -> str:
        table = frame(self.df.drop(columns=["time"]), index=False, na_rep="", border=0)
        # the picture is draw()'s SVG (Markup: matplotlib escaped its text)
        return output(tag("div", tag("code", repr(self))), self.picture.svg, table)


class TapData:
    """Statistics, traces, graph and saving over ``df`` and ``calls``."""

    @property
    def df(self) -> pd.DataFrame:
        raise NotImplementedError

    @property
    def calls(self) -> pd.DataFrame:
        raise NotImplementedError

    def _clock(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(when the capture began, now) for rates: a live tap's clock, a file's last row."""
        raise NotImplementedError

    def _subscribers(self) -> dict[str, list[str]]:
        """Who subscribes to which topic patterns (for a tap without the firehose)."""
        return {}

    # --- statistics ---------------------------------------------------------------------------

    def stats(self, by: str = "edge", window: float | None = 60.0) -> pd.DataFrame:
        """Per caller->service edge (``by="edge"``), per service method (``"method"``) or per
        caller and method (``"call"``), over the last ``window`` seconds (None: everything
        kept): calls, calls per second, errors and error % (of the calls whose outcome was
        seen), latency p50/p95/p99 and the median time queued (ms; the firehose only)."""
        keys = {"edge": ["caller", "service"], "method": ["service", "method"]}.get(
            by, ["caller", "service", "method"]
        )
        if by not in ("edge", "method", "call"):
            raise OptionError(f"by is one of 'edge', 'method', 'call', not {by!r}")
        calls, span = self._window(self.calls, window)
        unseen = calls["encrypted"].map({True: "(encrypted)", False: "(unknown)"})
        calls = calls.assign(method=calls["method"].fillna(unseen))
        return edge_stats(calls, keys, span)

    def _window(self, calls: pd.DataFrame, window: float | None) -> tuple[pd.DataFrame, float]:
        began, now = self._clock()
        if window is not None:
            began = max(began, now - pd.Timedelta(seconds=window))
            calls = calls[calls["started"] >= began]
        span = max((now - began).total_seconds(), 1.0)
        return calls, span

    def timings(self, correlation_ids: list[str] | pd.Series | pd.Index) -> pd.DataFrame:
        """Per correlation id (in the order given): service, method, time queued, time in
        the service and latency (ms), ok. NaN where the tap did not see it (or, without the
        firehose, for every time)."""
        calls = self.calls.drop_duplicates("correlation_id", keep="last")
        columns = ["service", "method", "queued_ms", "in_service_ms", "latency_ms", "ok"]
        frame = calls.set_index("correlation_id")[columns].reindex(list(correlation_ids))
        frame.index.name = "correlation_id"
        return frame

    def latency_split(
        self, correlation_ids: Sequence[str]
    ) -> dict[str, tuple[float | None, float | None]]:
        """(queued_ms, in_service_ms) of the calls this tap saw, for a bench's summary (the
        bench's LatencySplitter); times the tap could not tell are None."""
        frame = self.timings(list(correlation_ids)).dropna(subset=["service"])

        def ms(value: Any) -> float | None:
            return None if pd.isna(value) else float(value)

        return {
            str(cid): (ms(row.queued_ms), ms(row.in_service_ms)) for cid, row in frame.iterrows()
        }

    # --- traces -------------------------------------------------------------------------------

    def traces(self) -> pd.DataFrame:
        """Trace ids seen, newest first: spans (calls and events), errors, services, when it
        began and its total time (ms, first start to last end)."""
        spans = self._spans()
        columns = ["trace_id", "spans", "calls", "events", "errors", "services", "started"]
        if spans.empty:
            return pd.DataFrame(columns=[*columns, "total_ms"])
        spans["end"] = spans["time"] + pd.to_timedelta(spans["latency_ms"].fillna(0), unit="ms")
        grouped = spans.groupby("trace_id", sort=False)
        frame = pd.DataFrame(
            {
                "spans": grouped.size(),
                "calls": grouped["kind"].agg(lambda k: int((k != "event").sum())),
                "events": grouped["kind"].agg(lambda k: int((k == "event").sum())),
                "errors": grouped["ok"].agg(lambda ok: int((ok == False).sum())),  # noqa: E712
                "services": grouped["service"].agg(
                    lambda s: ", ".join(sorted({str(v) for v in s.dropna()}))
                ),
                "started": grouped["time"].min(),
                "total_ms": (grouped["end"].max() - grouped["time"].min()).dt.total_seconds()
                * 1000,
            }
        )
        frame = frame.reset_index().sort_values("started", ascending=False, ignore_index=True)
        return frame

    def _spans(self, trace_id: str | None = None) -> pd.DataFrame:
        """Calls and events with a trace id (of ``trace_id`` if given), in time order."""
        calls = self.calls
        calls = calls[calls["trace_id"].notna()]
        df = self.df
        events = df[(df["kind"] == "event") & df["trace_id"].notna()]
        if trace_id is not None:
            calls = calls[calls["trace_id"] == trace_id]
            events = events[events["trace_id"] == trace_id]
        parts = [
            pd.DataFrame(
                {
                    "time": calls["started"],
                    "trace_id": calls["trace_id"],
                    "kind": calls["kind"],
                    "caller": calls["caller"],
                    "service": calls["service"],
                    "method": calls["method"],
                    "topic": None,
                    "latency_ms": calls["latency_ms"],
                    "queued_ms": calls["queued_ms"],
                    "ok": calls["ok"],
                    "error": calls["error"],
                    "correlation_id": calls["correlation_id"],
                }
            ),
            pd.DataFrame(
                {
                    "time": events["time"],
                    "trace_id": events["trace_id"],
                    "kind": "event",
                    "caller": events["caller"],
                    "service": None,
                    "method": None,
                    "topic": events["topic"],
                    "latency_ms": float("nan"),
                    "queued_ms": float("nan"),
                    "ok": pd.array([pd.NA] * len(events), dtype="boolean"),
                    "error": None,
                    "correlation_id": events["correlation_id"],
                }
            ),
        ]
        parts = [p for p in parts if not p.empty]
        if not parts:
            return pd.DataFrame(columns=list(parts_columns()))
        spans = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        return spans.sort_values("time", kind="stable", ignore_index=True)

    def trace(self, trace_id: str) -> Trace:
        """The calls, commands and events of one trace, in time order, nested caller ->
        callee: a table and a waterfall picture."""
        from .pictures import draw_waterfall

        spans = trace_spans(self._spans(trace_id))
        return Trace(trace_id, spans, draw_waterfall(trace_id, spans))

    # --- the service graph ------------------------------------------------------------------

    def graph(self, window: float | None = 60.0, max_topics: int = 8) -> Picture:
        """The service graph over the last ``window`` seconds: services and callers as nodes,
        calls as edges (calls/s, error %, p50), events as a second kind of edge (publisher ->
        topic -> subscribers); at most ``max_topics`` topic nodes (topics grouped by their
        leading words beyond that). A :class:`Picture`: SVG, with ``.data`` (nodes, edges)."""
        from .pictures import draw_graph, graph_data

        calls, span = self._window(self.calls, window)
        df = self.df
        events = df[df["kind"] == "event"]
        if window is not None:
            began, now = self._clock()
            events = events[events["time"] >= max(began, now - pd.Timedelta(seconds=window))]
        data = graph_data(calls, events, span, self._subscribers(), max_topics)
        return draw_graph(data)

    # --- saving -------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the tap to ``path`` as JSON lines (``pandas.read_json(path, lines=True)``
        reads it: one line per message, a request's line with its call's times and outcome);
        ``nuropb_lab.load_tap(path)`` gives it back as a tap."""
        return save(self.df, self.calls, path)


def parts_columns() -> list[str]:
    return [
        "time",
        "trace_id",
        "kind",
        "caller",
        "service",
        "method",
        "topic",
        "latency_ms",
        "queued_ms",
        "ok",
        "error",
        "correlation_id",
    ]


def edge_stats(calls: pd.DataFrame, keys: list[str], span: float) -> pd.DataFrame:
    """Calls grouped by ``keys`` (a group with a missing key kept): counts, rate, errors,
    latency quantiles."""
    columns = [*keys, "calls", "per_s", "errors", "error_pct", "answered"]
    columns += [*QUANTILES, "queued_p50_ms"]
    if calls.empty:
        return pd.DataFrame(columns=columns)
    grouped = calls.groupby(keys, dropna=False, sort=True)
    frame = pd.DataFrame({"calls": grouped.size()})
    frame["per_s"] = frame["calls"] / span
    failed = calls["ok"] == False  # noqa: E712 (nullable: NA stays NA)
    known = calls["ok"].notna()
    frame["errors"] = failed.fillna(False).groupby([calls[k] for k in keys], dropna=False).sum()
    outcomes = known.groupby([calls[k] for k in keys], dropna=False).sum()
    frame["error_pct"] = (frame["errors"] / outcomes.where(outcomes > 0)) * 100
    frame["answered"] = grouped["answered"].sum()
    for name, q in QUANTILES.items():
        frame[name] = grouped["latency_ms"].quantile(q)
    frame["queued_p50_ms"] = grouped["queued_ms"].median()
    frame = frame.reset_index()
    frame["errors"] = frame["errors"].astype(int)
    frame["answered"] = frame["answered"].astype(int)
    return frame[columns]


#: ms of slack in nesting: times are when the tap read a record, and records read together
#: share a time (or, from a loaded machine, come a little apart from what happened)
NESTING_SLACK_MS = 2.0


def trace_spans(spans: pd.DataFrame) -> pd.DataFrame:
    """Spans of one trace with their nesting, in tree order (each span after its parent,
    siblings by time). A span's parent is the call to the service that made it, begun by
    then and still running (an unanswered call: running on), the latest such; an event's,
    the latest call to the service that published it (outcome events go out just after the
    response)."""
    if spans.empty:
        return pd.DataFrame(columns=TRACE_COLUMNS)
    origin = spans["time"].min()
    starts = ((spans["time"] - origin).dt.total_seconds() * 1000).tolist()
    latencies = spans["latency_ms"].tolist()
    open_ended = [not isinstance(v, float) or math.isnan(v) for v in latencies]
    ends = [s if o else s + v for s, v, o in zip(starts, latencies, open_ended, strict=True)]
    kinds = spans["kind"].tolist()
    callers = spans["caller"].tolist()
    services = spans["service"].tolist()
    ids = spans["correlation_id"].tolist()
    slack = NESTING_SLACK_MS
    parents: list[int | None] = []
    for i, caller in enumerate(callers):
        found: int | None = None
        for j, service in enumerate(services):
            if j == i or kinds[j] == "event" or service != caller or caller is None:
                continue
            if starts[j] > starts[i] + slack:
                continue  # began after this one
            if kinds[i] != "event" and not open_ended[j] and ends[j] < starts[i] - slack:
                continue  # over before this one began
            if found is None or starts[j] > starts[found]:
                found = j
        parents.append(found)
    # a cycle (two calls to each other within the slack) is cut where it closes
    for i in range(len(parents)):
        seen = {i}
        up = parents[i]
        while up is not None:
            if up in seen:
                parents[i] = None
                break
            seen.add(up)
            up = parents[up]
    children: dict[int | None, list[int]] = {}
    for i, p in enumerate(parents):
        children.setdefault(p, []).append(i)
    order: list[int] = []
    depth = [0] * len(parents)

    def visit(node: int, level: int) -> None:
        depth[node] = level
        order.append(node)
        for child in sorted(children.get(node, []), key=lambda c: (starts[c], c)):
            visit(child, level + 1)

    for root in sorted(children.get(None, []), key=lambda c: (starts[c], c)):
        visit(root, 0)
    parent_ids = [None if p is None else ids[p] for p in parents]
    frame = spans.assign(
        start_ms=starts,
        depth=depth,
        parent=pd.Series(parent_ids, index=spans.index, dtype=object),
    )
    return frame.iloc[order][TRACE_COLUMNS].reset_index(drop=True)
