"""The live event tail view: the newest events as a table, topic filter, pause, clear, rates."""

from __future__ import annotations

import datetime

import ipywidgets as w

from ..lab import Tail
from ..lab.markup import join, tag
from ..mesh.events import MeshEvent
from .live import Live, PauseClear, idle_timeout_of, matches
from .render import json_text

__all__ = ["TailView"]


class TailView(w.VBox):
    """A view over a :class:`Tail`: redrawn at most a few times a second, showing the newest
    ``rows`` events that pass the topic filter (a substring, or a glob like ``orders.*``).
    It stops redrawing after ``idle_timeout`` s without interaction (default: the Lab's
    ``live_idle_timeout``) until Resume; the tail keeps collecting meanwhile."""

    def __init__(
        self, tail: Tail, rows: int = 20, interval: float = 0.25, idle_timeout: float | None = None
    ) -> None:
        self.tail = tail
        self.rows = rows
        self.filter = w.Text(
            value="", placeholder="topic filter (text or glob)", description="topic"
        )
        self.status = w.HTML()
        self.table = w.HTML()
        self.shown: list[MeshEvent] = []
        self.live = Live(tail.runner, idle_timeout_of(tail, idle_timeout), key=("tail", id(tail)))
        self._redraw = self.live.redraw(self.draw, interval)
        controls = PauseClear(tail, self._redraw.request)
        self.pause_button, self.clear_button = controls.pause_button, controls.clear_button
        self.live.watch(self.filter, self.pause_button, self.clear_button)
        self.filter.observe(lambda _c: self._redraw.request(), names="value")
        tail.add_listener(self._on_event)
        super().__init__(
            [
                self.live.bar,
                w.HBox([self.filter, self.pause_button, self.clear_button]),
                self.status,
                self.table,
            ]
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
        self.status.value = join(
            [
                tag("b", status["state"]),
                f" · {status['rows']} kept of {status['received']} received{gaps}",
                f" · {status['redacted']} redacted"
                if status["redaction"] == "on"
                else " · redaction off",
                f" · {top or 'no events yet'}",
            ]
        )
        rows = (
            tag(
                "tr",
                tag(
                    "td",
                    datetime.datetime.fromtimestamp(e.received_at).strftime("%H:%M:%S.%f")[:-3],
                ),
                tag("td", e.topic),
                tag("td", tag("code", json_text(e.event, indent=None, limit=200))),
                tag("td", e.trace_id or ""),
            )
            for e in reversed(self.shown)
        )
        head = tag("tr", *(tag("th", h) for h in ("received", "topic", "event", "trace")))
        self.table.value = tag("table", head, *rows)

    def close(self) -> None:
        self.live.close()
        self.tail.remove_listener(self._on_event)
        super().close()
