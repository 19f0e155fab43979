"""The wire tap's views: the newest messages with a filter and pause, and the live service
graph beside them (or alone, for ``%nuropb graph``)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import threading
from typing import Any

import ipywidgets as w

from ..lab.markup import Markup, join, tag
from ..lab.tap import Tap
from ..lab.tap.capture import KINDS as MESSAGE_KINDS
from ..lab.tap.capture import UNKNOWN_KIND
from .live import Live, PauseClear, idle_timeout_of, matches
from .render import json_text

__all__ = ["GraphView", "TapView", "tap_view"]

log = logging.getLogger(__name__)

KINDS = ("all", *MESSAGE_KINDS, UNKNOWN_KIND)
# row tuple positions (capture.COLUMNS)
TIME, KIND, CALLER, SERVICE, METHOD, TOPIC, CID, TRACE, BYTES, ENCRYPTED, PAYLOAD, ERROR = range(12)


def tap_view(tap: Tap, graph_only: bool = False, **options: Any) -> Any:
    """The view the Lab's ``tap.widget()`` / ``tap.graph_view()`` ask for."""
    return GraphView(tap, **options) if graph_only else TapView(tap, **options)


CELL = (
    "padding:1px 6px;white-space:nowrap;max-width:22em;overflow:hidden;text-overflow:ellipsis;"
    "text-align:left"
)
_SVG_SIZE = re.compile(r'(<svg\b[^>]*?)\swidth="[^"]*"\s+height="[^"]*"')


def responsive(svg: str) -> Markup:
    """The picture (lab/picture.py's SVG, its text escaped) scaled to its box's width (its
    viewBox keeps the proportions)."""
    return Markup(_SVG_SIZE.sub(r'\1 style="width:100%;height:auto"', svg, count=1))


def _matches(row: tuple[Any, ...], pattern: str) -> bool:
    fields = [str(row[i]) for i in (CALLER, SERVICE, METHOD, TOPIC, TRACE) if row[i] is not None]
    if row[SERVICE] is not None and row[METHOD] is not None:
        fields.append(f"{row[SERVICE]}.{row[METHOD]}")
    return matches(fields, pattern)


class GraphView(w.VBox):
    """The service graph of a tap, redrawn every ``interval`` seconds while traffic comes (and
    at least every ``idle`` seconds while the tap runs, so rates fall when it stops). Drawn off
    the Lab loop, in a worker thread; the picture reaches the browser by setting a trait, and
    only when it changed. It pauses after ``idle_timeout`` s without interaction (default: the
    Lab's ``live_idle_timeout``) until Resume; inside a tap view, with that view (``live``)."""

    def __init__(
        self,
        tap: Tap,
        window: float = 60.0,
        interval: float = 2.0,
        idle: float = 10.0,
        idle_timeout: float | None = None,
        live: Live | None = None,
    ) -> None:
        self.tap = tap
        self.window = window
        self.interval = interval
        self.idle = idle
        self.picture = w.HTML(layout=w.Layout(overflow="auto"))
        self.caption = w.HTML()
        self.redraws = 0
        self.data: dict[str, Any] = {}
        self._drawing = threading.Lock()
        self._seen = -1
        self._ticks = 0
        self._own_live = live is None
        self.live = live or Live(
            tap.runner, idle_timeout_of(tap, idle_timeout), key=("graph", id(tap))
        )
        super().__init__(
            [self.live.bar, self.caption, self.picture]
            if self._own_live
            else [self.caption, self.picture]
        )
        self.draw()
        self.live.every(interval, self._tick, until=self._final)

    def _final(self) -> bool:
        """The tap stopped and what it received last is drawn: nothing more to redraw."""
        return self.tap.stopped and self.tap.capture.received == self._seen

    async def _tick(self) -> None:
        self._ticks += 1
        fresh = self.tap.capture.received != self._seen
        if not fresh and self.tap.stopped:
            return  # what it shows is final
        if (fresh or self._ticks * self.interval >= self.idle) and not self._drawing.locked():
            self._ticks = 0
            await asyncio.get_running_loop().run_in_executor(None, self.draw)

    def draw(self) -> None:
        """Draw the graph now (in the calling thread) and show it."""
        with self._drawing:
            self._seen = self.tap.capture.received
            try:
                picture = self.tap.graph(window=self.window)
            except Exception:
                log.exception("the service graph could not be drawn")
                return
            self.data = picture.data
            self.picture.value = responsive(picture.svg)
            nodes, edges = len(self.data["nodes"]), len(self.data["edges"])
            # no clock here: a picture that did not change sends nothing
            self.caption.value = join(
                [
                    tag("b", "service graph"),
                    f" · last {self.window:.0f} s · {nodes} nodes, {edges} edges",
                    f" · {self.tap.mode}",
                ]
            )
            self.redraws += 1

    def close(self) -> None:
        if self._own_live:
            self.live.close()
        super().close()


class TapView(w.HBox):
    """A live view over a :class:`Tap`: the newest ``rows`` messages that pass the filter (a
    substring or a glob over caller, service, method, topic and trace id) and the kind menu;
    pause, clear; the service graph beside it. The table redraws at most every ``interval``
    seconds, the graph every ``graph_interval`` seconds; both pause after ``idle_timeout`` s
    without interaction (default: the Lab's ``live_idle_timeout``) until Resume, while the tap
    keeps collecting."""

    def __init__(
        self,
        tap: Tap,
        rows: int = 20,
        interval: float = 0.5,
        graph_interval: float = 2.0,
        window: float = 60.0,
        idle_timeout: float | None = None,
    ) -> None:
        self.tap = tap
        self.rows = rows
        self.live = Live(tap.runner, idle_timeout_of(tap, idle_timeout), key=("tap", id(tap)))
        self.filter = w.Text(
            value="",
            placeholder="service, method, topic, trace (text or glob)",
            description="filter",
        )
        self.kind = w.Dropdown(options=KINDS, value="all", description="kind")
        self.status = w.HTML()
        self.notice = w.HTML(tag("i", tap.notice) if tap.notice else "")
        self.table = w.HTML()
        self.graph = GraphView(tap, window=window, interval=graph_interval, live=self.live)
        self.shown: list[tuple[Any, ...]] = []
        self._redraw = self.live.redraw(self.draw, interval)
        controls = PauseClear(tap, self._redraw.request)
        self.pause_button, self.clear_button = controls.pause_button, controls.clear_button
        self.live.watch(self.filter, self.kind, self.pause_button, self.clear_button)
        self.filter.observe(lambda _c: self._redraw.request(), names="value")
        self.kind.observe(lambda _c: self._redraw.request(), names="value")
        tap.add_listener(self._on_traffic)
        left = w.VBox(
            [
                self.live.bar,
                w.HBox([self.filter, self.kind]),
                w.HBox([self.pause_button, self.clear_button]),
                self.status,
                self.notice,
                self.table,
            ],
            layout=w.Layout(width="55%", overflow="auto"),
        )
        self.graph.layout.width = "45%"
        super().__init__([left, self.graph])
        self.draw()

    def _on_traffic(self, _tap: Tap) -> None:
        self._redraw.request()

    @property
    def redraws(self) -> int:
        return self._redraw.count

    def draw(self) -> None:
        """Set the status and the table (trait values only; safe from the loop thread)."""
        pattern = self.filter.value.strip()
        kind = self.kind.value
        rows = [
            r
            for r in self.tap.snapshot()
            if (kind == "all" or r[KIND] == kind) and _matches(r, pattern)
        ]
        self.shown = rows[-self.rows :]
        s = self.tap.status()
        parts = [
            tag("b", s["state"]),
            s["mode"],
            f"{s['rows']} kept of {s['kept']}",
            f"{s['calls']} calls, {s['waiting']} waiting",
        ]
        parts += [f"{s['unpaired']} unpaired"] if s["unpaired"] else []
        parts += [f"{s['gaps']} gap(s)"] if s["gaps"] else []
        parts += [f"{s['redacted']} redacted" if s["redaction"] == "on" else "redaction off"]
        self.status.value = join(parts, " · ")
        head = (tag("th", h, style=CELL) for h in ("time", "kind", "message", "trace", "payload"))
        self.table.value = tag(
            "table",
            tag("tr", *head),
            *(self._row_html(r) for r in reversed(self.shown)),
            style="font-size:12px;border-collapse:collapse",
        )

    def _row_html(self, row: tuple[Any, ...]) -> Markup:
        when = datetime.datetime.fromtimestamp(row[TIME]).strftime("%H:%M:%S.%f")[:-3]
        caller = row[CALLER] or self.tap.known_caller(row) or "?"
        if row[KIND] == "event":
            message = f"{caller} ⇢ {row[TOPIC] or ''}"
        else:
            message = f"{caller} → {row[SERVICE] or '?'}.{row[METHOD] or '?'}"
        payload: object
        if row[ENCRYPTED]:
            payload = f"🔒 encrypted, {row[BYTES]} bytes"
        elif row[ERROR]:
            payload = tag("span", str(row[ERROR])[:120], style="color:#b00020")
        else:
            payload = tag("code", json_text(row[PAYLOAD], indent=None, limit=120))
        cells = [when, row[KIND], message, row[TRACE] or "", payload]
        return tag("tr", *(tag("td", c, style=CELL) for c in cells))

    def close(self) -> None:
        self.live.close()
        self.tap.remove_listener(self._on_traffic)
        self.graph.close()
        super().close()
