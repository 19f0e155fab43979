"""The service graph and the trace waterfall, as pictures (see ../picture.py).

The graph is laid out here, without a graph library: nodes in columns by call depth (those
nobody calls on the left, each service right of its callers), topics in a column after the
services, subscribers that are no service after those. Good enough for the handful to few
dozen nodes of a mesh, and no new dependency.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..picture import Picture, draw

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["draw_graph", "draw_waterfall", "graph_data", "place_label", "topic_matches"]

UNKNOWN = "(unknown)"
COLORS = {
    "client": "#dbe9f6",
    "service": "#d9f2d9",
    "topic": "#fdf0c8",
    "subscriber": "#eeeeee",
}
CALL_EDGE = "#2b6cb0"
ERROR_EDGE = "#c53030"
EVENT_EDGE = "#b7791f"
# where on its arc an edge's label may go, in order of preference (0 its source, 1 its target)
CALL_SPOTS = (0.4, 0.3, 0.5, 0.22, 0.6, 0.68)
EVENT_SPOTS = (0.6, 0.7, 0.5, 0.78, 0.4)
# text sizes in inches: a label's character (7 pt) and line, a node name's (9 pt, padded)
LABEL_CHAR, LABEL_HEIGHT = 0.056, 0.2  # a little apart, so a label is read as its edge's
NODE_CHAR, NODE_HEIGHT = 0.075, 0.32


@functools.lru_cache(maxsize=4096)
def topic_matches(pattern: str, topic: str) -> bool:
    """AMQP topic matching: words split on dots, ``*`` one word, ``#`` zero or more."""
    return _match(tuple(pattern.split(".")), tuple(topic.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


def _group_topics(topics: list[str], max_topics: int) -> dict[str, str]:
    """topic -> its node: itself, or its first words + ``.*`` when there are too many."""
    distinct = sorted(set(topics))
    for depth in (None, 2, 1):
        if depth is None:
            mapping = {t: t for t in distinct}
        else:
            mapping = {
                t: ".".join(t.split(".")[:depth]) + (".*" if t.count(".") >= depth else "")
                for t in distinct
            }
        if len(set(mapping.values())) <= max_topics:
            return mapping
    return {t: "(topics)" for t in distinct}


def graph_data(
    calls: pd.DataFrame,
    events: pd.DataFrame,
    span: float,
    subscribers: dict[str, list[str]],
    max_topics: int = 8,
) -> dict[str, Any]:
    """Nodes and edges from the calls and events of a window of ``span`` seconds.

    ``subscribers`` (label -> topic patterns, from the broker's bindings) names the
    subscribers of events the tap saw without the firehose's routing.
    """
    edges: list[dict[str, Any]] = []
    if not calls.empty:
        keyed = calls.assign(
            caller=calls["caller"].fillna(UNKNOWN), service=calls["service"].fillna(UNKNOWN)
        )
        for (caller, service), group in keyed.groupby(["caller", "service"], sort=True):
            known = group["ok"].notna().sum()
            errors = int((group["ok"] == False).fillna(False).sum())  # noqa: E712
            p50 = group["latency_ms"].median()
            edges.append(
                {
                    "source": str(caller),
                    "target": str(service),
                    "kind": "call",
                    "count": len(group),
                    "per_s": float(len(group) / span),
                    "errors": errors,
                    "error_pct": float(errors / known * 100) if known else None,
                    "p50_ms": None if pd.isna(p50) else float(p50),
                }
            )
    topic_nodes: set[str] = set()
    if not events.empty:
        mapping = _group_topics([t for t in events["topic"] if isinstance(t, str)], max_topics)
        published: dict[tuple[str, str], int] = {}
        delivered: dict[tuple[str, str], int] = {}
        for publisher, topic, routed in zip(
            events["caller"].tolist(),
            events["topic"].tolist(),
            events["routed_to"].tolist(),
            strict=True,
        ):
            if not isinstance(topic, str):
                continue
            node = mapping[topic]
            topic_nodes.add(node)
            key = (publisher if isinstance(publisher, str) else UNKNOWN, node)
            published[key] = published.get(key, 0) + 1
            if isinstance(routed, (tuple, list)):
                targets = [r for r in routed if r != "lab tap"]
            else:
                targets = [
                    label
                    for label, patterns in subscribers.items()
                    if any(topic_matches(p, topic) for p in patterns)
                ]
            for target in sorted(set(targets)):
                delivered[(node, target)] = delivered.get((node, target), 0) + 1
        for (source, target), count in sorted(published.items()):
            edges.append(_event_edge(source, target, "publish", count, span))
        for (source, target), count in sorted(delivered.items()):
            edges.append(_event_edge(source, target, "deliver", count, span))
    nodes = _layout(edges, topic_nodes)
    return {"nodes": nodes, "edges": edges, "window_s": span}


def _event_edge(source: str, target: str, kind: str, count: int, span: float) -> dict[str, Any]:
    return {"source": source, "target": target, "kind": kind, "count": count, "per_s": count / span}


def _layout(edges: list[dict[str, Any]], topics: set[str]) -> list[dict[str, Any]]:
    """Each node's kind, column and row."""
    called = {e["target"] for e in edges if e["kind"] == "call"}
    names: list[str] = []
    for edge in edges:
        for name in (edge["source"], edge["target"]):
            if name not in names:
                names.append(name)
    level = {name: 0 for name in names if name not in topics}
    callers: dict[str, set[str]] = {}
    for edge in edges:
        if edge["kind"] == "call" and edge["source"] != edge["target"]:
            callers.setdefault(edge["target"], set()).add(edge["source"])
    for _ in range(len(level)):  # longest path, bounded (a cycle stops growing here)
        changed = False
        for name, sources in callers.items():
            deepest = 1 + max(level.get(s, 0) for s in sources)
            if deepest > level.get(name, 0) and deepest < len(level) + 1:
                level[name] = deepest
                changed = True
        if not changed:
            break
    kinds: dict[str, str] = {}
    for name in names:
        if name in topics:
            kinds[name] = "topic"
        elif name in called:
            kinds[name] = "service"
        elif any(e["source"] == name for e in edges if e["kind"] in ("call", "publish")):
            kinds[name] = "client"
        else:
            kinds[name] = "subscriber"
    services_end = max([level[n] for n in names if kinds[n] != "topic"] or [0])
    column = {}
    for name in names:
        if kinds[name] == "topic":
            column[name] = services_end + 1
        elif kinds[name] == "subscriber" and not any(
            e["source"] == name for e in edges
        ):  # only receives events: after the topics
            column[name] = services_end + 2
        else:
            column[name] = level[name]
    nodes = []
    for col in sorted(set(column.values())):
        members = sorted(n for n in names if column[n] == col)
        for row, name in enumerate(members):
            nodes.append({"name": name, "kind": kinds[name], "column": col, "row": row})
    return nodes


def _edge_label(edge: dict[str, Any]) -> str:
    rate = f"{edge['per_s']:.1f}/s" if edge["per_s"] >= 0.1 else f"{edge['count']}"
    if edge["kind"] != "call":
        return rate
    parts = [rate]
    if edge.get("error_pct") is not None:
        parts.append(f"{edge['error_pct']:.0f}% err")
    if edge.get("p50_ms") is not None:
        parts.append(f"p50 {edge['p50_ms']:.1f} ms")
    return " · ".join(parts)


def draw_graph(data: dict[str, Any]) -> Picture:
    """The graph of :func:`graph_data` as a picture."""
    nodes, edges = data["nodes"], data["edges"]
    columns = max([n["column"] for n in nodes] or [0]) + 1
    tallest = max([n["row"] for n in nodes] or [0]) + 1
    # at most 10 inches (960 px): a notebook shows an SVG output at its own size
    width = min(10.0, max(5.0, 2.4 * columns + 0.6))
    height = max(2.2, 0.85 * tallest + 1.0)
    spots: dict[str, tuple[float, float]] = {}
    by_column: dict[int, int] = {}
    for node in nodes:
        by_column[node["column"]] = by_column.get(node["column"], 0) + 1
    for node in nodes:
        count = by_column[node["column"]]
        y = (tallest - 1) / 2 - (node["row"] - (count - 1) / 2)
        spots[node["name"]] = (float(node["column"]), y)

    def paint(figure: Figure) -> None:
        ax = figure.add_subplot()
        ax.set_axis_off()
        ax.set_xlim(-0.6, columns - 0.4)
        ax.set_ylim(-0.7, tallest - 0.3)
        if not nodes:
            ax.text(0.5, 0.5, "no traffic seen yet", ha="center", va="center",
                    transform=ax.transAxes, color="#666666")  # fmt: skip
            return
        # the labels go where they cover no node and no label drawn before them
        inch = (columns / width, (tallest + 0.4) / height)  # data units an inch, x and y
        taken = [
            _box(x, y, len(name) * NODE_CHAR + 0.3, NODE_HEIGHT, inch)
            for name, (x, y) in spots.items()
        ]
        for edge in edges:
            _draw_edge(ax, edge, spots[edge["source"]], spots[edge["target"]], inch, taken)
        for node in nodes:
            x, y = spots[node["name"]]
            ax.text(
                x,
                y,
                node["name"],
                ha="center",
                va="center",
                fontsize=9,
                zorder=3,
                bbox={
                    "boxstyle": "round,pad=0.45",
                    "fc": COLORS[node["kind"]],
                    "ec": "#555555",
                    "lw": 0.8,
                },
            )

    return draw(paint, data=data, title="service graph", width=width, height=height)


def _draw_edge(
    ax: Axes,
    edge: dict[str, Any],
    source: tuple[float, float],
    target: tuple[float, float],
    inch: tuple[float, float],
    taken: list[Box],
) -> None:
    call = edge["kind"] == "call"
    color = CALL_EDGE if call else EVENT_EDGE
    if call and edge.get("errors"):
        color = ERROR_EDGE
    width = 0.8 + min(3.0, math.log10(1 + edge["per_s"] * 10))
    backwards = target[0] <= source[0]
    # bent further when it goes back, or past a column, so it passes the nodes between
    rad = 0.35 if backwards else (0.08 if target[0] - source[0] <= 1 else 0.22)
    if source == target:  # a service calling itself
        target = (target[0] + 0.001, target[1] + 0.001)
        rad = 2.5
    ax.annotate(
        "",
        xy=target,
        xytext=source,
        zorder=1,
        arrowprops={
            "arrowstyle": "-|>",
            "color": color,
            "lw": width,
            "linestyle": "-" if call else "--",
            "shrinkA": 24,
            "shrinkB": 24,
            "connectionstyle": f"arc3,rad={rad}",
        },
    )
    # the label on the arc (a quadratic Bezier whose control point is off the middle by rad
    # times the length), a call's nearer its caller and an event's nearer its topic, moved
    # along the arc, or off it, where that spot is taken
    dx, dy = target[0] - source[0], target[1] - source[1]
    control = ((source[0] + target[0]) / 2 + rad * dy, (source[1] + target[1]) / 2 - rad * dx)

    def on_arc(t: float) -> tuple[float, float]:
        return (
            (1 - t) ** 2 * source[0] + 2 * t * (1 - t) * control[0] + t**2 * target[0],
            (1 - t) ** 2 * source[1] + 2 * t * (1 - t) * control[1] + t**2 * target[1],
        )

    label = _edge_label(edge)
    on = [on_arc(t) for t in (CALL_SPOTS if call else EVENT_SPOTS)]
    # then a line or two above or below the arc, where edges that share a node run close
    step = LABEL_HEIGHT * inch[1]
    spots = on + [(x, y + side * step) for side in (1, -1, 2, -2) for x, y in on]
    box = place_label(spots, len(label) * LABEL_CHAR, LABEL_HEIGHT, inch, taken)
    taken.append(box)
    ax.text(
        (box[0] + box[2]) / 2,
        (box[1] + box[3]) / 2,
        label,
        ha="center",
        va="center",
        fontsize=7,
        color=color,
        zorder=2,
        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
    )


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in data units


def _box(x: float, y: float, width_in: float, height_in: float, inch: tuple[float, float]) -> Box:
    """The box of a text ``width_in`` x ``height_in`` inches centred on (x, y)."""
    w, h = width_in * inch[0] / 2, height_in * inch[1] / 2
    return (x - w, y - h, x + w, y + h)


def _overlap(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def place_label(
    spots: list[tuple[float, float]],
    width_in: float,
    height_in: float,
    inch: tuple[float, float],
    taken: list[Box],
) -> Box:
    """The box of a label at the first of ``spots`` (in order of preference) where it
    overlaps none of ``taken``; where every spot does, the one that overlaps least."""
    best: tuple[float, Box] | None = None
    for x, y in spots:
        box = _box(x, y, width_in, height_in, inch)
        covered = sum(_overlap(box, other) for other in taken)
        if covered == 0:
            return box
        if best is None or covered < best[0]:
            best = (covered, box)
    assert best is not None, "no spot to place a label"
    return best[1]


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def draw_waterfall(trace_id: str, spans: pd.DataFrame) -> Picture:
    """One trace's spans as bars on a time axis (ms from its first span), nested by depth:
    a light part queued, a dark part in the service; an event or command as a mark."""
    rows: list[dict[str, Any]] = []
    for span in spans.to_dict("records"):
        kind = str(span["kind"])
        what = span["topic"] if kind == "event" else f"{span['service']}.{span['method']}"
        rows.append(
            {
                "label": f"{span['caller'] or UNKNOWN} → {what}",
                "kind": kind,
                "depth": int(span["depth"]),
                "start_ms": float(span["start_ms"]),
                "latency_ms": _number(span["latency_ms"]),
                "queued_ms": _number(span["queued_ms"]),
                "ok": None if span["ok"] is None or span["ok"] is pd.NA else bool(span["ok"]),
            }
        )
    total = max([r["start_ms"] + (r["latency_ms"] or 0.0) for r in rows] or [0.0])
    data = {"trace_id": trace_id, "spans": rows, "total_ms": total}

    def paint(figure: Figure) -> None:
        names, ax = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1, 2.4]})
        figure.suptitle(f"trace {trace_id}: {len(rows)} span(s), {total:.1f} ms", fontsize=10)
        names.set_axis_off()
        names.set_xlim(0, 1)
        if not rows:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no spans with this trace id", ha="center", va="center",
                    transform=ax.transAxes, color="#666666")  # fmt: skip
            return
        extent = max(total, 1.0)  # ms: a trace quicker than the tap can tell apart
        for y, row in enumerate(rows):
            # the name column: indented by nesting depth, as a tree
            prefix = "└ " if row["depth"] else ""
            names.text(0.02 + 0.07 * row["depth"], y, prefix + row["label"],
                       ha="left", va="center", fontsize=8, clip_on=True)  # fmt: skip
            color = "#718096" if row["ok"] is None else ("#38a169" if row["ok"] else ERROR_EDGE)
            if row["kind"] == "event":
                ax.plot([row["start_ms"]], [y], marker="D", color=EVENT_EDGE, markersize=6)
            elif row["latency_ms"] is None:
                ax.plot([row["start_ms"]], [y], marker=">", color=color, markersize=7)
            else:
                queued = min(row["queued_ms"] or 0.0, row["latency_ms"])
                ax.barh(y, queued, left=row["start_ms"], height=0.55, color=color, alpha=0.35)
                ax.barh(
                    y,
                    max(row["latency_ms"] - queued, extent / 300),
                    left=row["start_ms"] + queued,
                    height=0.55,
                    color=color,
                )
                ax.text(
                    row["start_ms"] + row["latency_ms"] + extent / 100,
                    y,
                    f"{row['latency_ms']:.1f} ms",
                    va="center",
                    fontsize=7,
                )
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.tick_params(axis="y", left=False, labelleft=False)
        ax.set_xlim(0, extent * 1.18)
        ax.set_xlabel("ms from the trace's first span")
        ax.grid(axis="x", alpha=0.3)

    return draw(
        paint,
        data=data,
        title=f"trace {trace_id}",
        width=9.0,
        height=max(1.8, 0.38 * len(rows) + 1.2),
    )
