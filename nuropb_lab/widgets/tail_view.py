"""The live event tail view: the newest events as a table, topic filter, pause, clear, rates."""

from __future__ import annotations

import datetime
import html

import ipywidgets as w

from ..lab import Tail
from ..mesh.events import MeshEvent
from .live import PauseClear, matches
from .render import json_text
from .throttle import Redraw

__all__ = ["TailView"]


class TailView(w.VBox):
    """A view over a :class:`Tail`: redrawn at most a few times a second, showing the newest
    ``rows`` events that pass the topic filter (a substring, or a glob like ``orders.*``)."""

    def __init__(self, tail: Tail, rows: int = 20, interval: float = 0.25) -> None:
        if tail.runner is None:
            raise ValueError("this tail has no Lab loop to redraw in")
        self.tail = tail
        self.rows = rows
        self.filter = w.Text(
            value="", placeholder="topic filter (text or glob)", description="topic"
        )
        self.status = w.HTML()
        self.table = w.HTML()
        self.shown: list[MeshEvent] = []
        self._redraw = Redraw(tail.runner, self.draw, interval)
        controls = PauseClear(tail, self._redraw.request)
        self.pause_button, self.clear_button = controls.pause_button, controls.clear_button
        self.filter.observe(lambda _c: self._redraw.request(), names="value")
        tail.add_listener(self._on_event)
        super().__init__(
            [w.HBox([self.filter, self.pause_button, self.clear_button]), self.status, self.table]
        )
        self.draw()

    def _on_event(self, _tail: Tail) -> None:
        self._redraw.request()

    @property
    def redraws(self) -> int:
        return self._redraw.count

    def draw(self) -> None:
        """Set the status and table (trait values only; safe from the loop thread)."""
        pattern = self.filter.value.strip()
        events = [e for e in self.tail.snapshot() if matches([e.topic], pattern)]
        self.shown = events[-self.rows :]
        rates = self.tail.rates()
        top = ", ".join(f"{r.topic} {r.per_second:.1f}/s" for r in rates.head(5).itertuples())
        status = self.tail.status()
        gaps = f" · {status['gaps']} gap(s)" if status["gaps"] else ""
        self.status.value = (
            f"<b>{html.escape(status['state'])}</b> · {status['rows']} kept of {status['received']}"
            f" received{gaps} · {html.escape(top or 'no events yet')}"
        )
        body = "".join(
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>".format(
                datetime.datetime.fromtimestamp(e.received_at).strftime("%H:%M:%S.%f")[:-3],
                html.escape(e.topic),
                html.escape(json_text(e.event, indent=None, limit=200)),
                html.escape(e.trace_id or ""),
            )
            for e in reversed(self.shown)
        )
        self.table.value = (
            "<table><tr><th>received</th><th>topic</th><th>event</th><th>trace</th></tr>"
            f"{body}</table>"
        )

    def close(self) -> None:
        self.tail.remove_listener(self._on_event)
        super().close()
