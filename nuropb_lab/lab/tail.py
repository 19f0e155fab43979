"""A live tail of mesh events: a bounded ring buffer, per-topic rates, a DataFrame on demand.

Events arrive in the Lab's loop thread; appending is O(1) (no DataFrame work per event).
``.df`` and ``.rates()`` build their frames when asked, from a snapshot. What is kept is
bounded in bytes (limits.py): each field of an event, all the rows, the topics rates count.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pandas as pd

from ..mesh.events import MeshEvent, Subscription
from ..mesh.limits import (
    CONTEXT_BYTES,
    EVENT_BYTES,
    OTHER_TOPICS,
    RATE_TOPICS,
    ROW_BYTES,
    TAIL_BYTES,
    TEXT_BYTES,
    clip_text,
    clip_value,
)
from ..views import view_of
from .handles import Releasable
from .markup import frame, output, tag
from .redact import Redactor, redactor
from .rows import Rows
from .runner import LoopRunner

__all__ = ["RateCounter", "Tail", "bounded", "events_frame"]

BASE_COLUMNS = list(MeshEvent._fields)
# the most an event's fields keep: event, context, target, topic, trace and correlation ids
_FIELDS_MAX = EVENT_BYTES + 2 * CONTEXT_BYTES + 3 * TEXT_BYTES


def bounded(event: MeshEvent) -> tuple[MeshEvent, int]:
    """The event as a tail keeps it, each field within its limit (a preview past it), and what
    it costs in the tail's byte budget."""
    size = event.bytes
    if size > TEXT_BYTES:  # else nothing in it can be over a limit
        topic = clip_text(event.topic)
        trace_id = None if event.trace_id is None else clip_text(event.trace_id)
        correlation_id = None if event.correlation_id is None else clip_text(event.correlation_id)
        payload, context, target = event.event, event.context, event.target
        if size > EVENT_BYTES:
            payload = clip_value(payload, EVENT_BYTES)[0]
        if size > CONTEXT_BYTES:
            cut, was_cut = clip_value(context, CONTEXT_BYTES)
            context = {"(truncated)": cut} if was_cut else context
            cut, was_cut = clip_value(target, CONTEXT_BYTES)
            target = [cut] if was_cut else target
        event = event._replace(
            topic=topic,
            event=payload,
            context=context,
            trace_id=trace_id,
            correlation_id=correlation_id,
            target=target,
        )
    return event, ROW_BYTES + min(size, _FIELDS_MAX)


def events_frame(rows: list[MeshEvent]) -> pd.DataFrame:
    """Events as a DataFrame; a dict event's top-level keys become columns too."""
    frame = pd.DataFrame.from_records(rows, columns=BASE_COLUMNS)
    frame["received_at"] = pd.to_datetime(frame["received_at"], unit="s", utc=True)
    if not rows:
        return frame
    dicts = [e.event if isinstance(e.event, dict) else {} for e in rows]
    if any(dicts):
        expanded = pd.DataFrame.from_records(dicts)
        expanded.columns = [f"event.{c}" if c in BASE_COLUMNS else str(c) for c in expanded.columns]
        frame = pd.concat([frame, expanded], axis=1)
    return frame


class RateCounter:
    """Events per topic in one-second buckets over a sliding window: O(1) per event. At most
    ``max_topics`` distinct topics are counted in a window; events of the others are counted
    together as OTHER_TOPICS (each distinct topic kept would cost memory)."""

    def __init__(self, window: int = 60, max_topics: int = RATE_TOPICS) -> None:
        self.window = window
        self.max_topics = max_topics
        self._buckets: collections.deque[tuple[int, collections.Counter[str]]] = collections.deque()
        self._seen: dict[str, int] = {}  # topic -> the last second it was counted in
        self.started = time.time()

    def add(self, topic: str, at: float) -> None:
        second = int(at)
        buckets = self._buckets
        if not buckets or buckets[-1][0] != second:
            buckets.append((second, collections.Counter()))
            while buckets[0][0] <= second - self.window:
                buckets.popleft()
            if len(self._seen) >= self.max_topics:  # make room: forget those out of the window
                start = second - self.window
                self._seen = {t: s for t, s in self._seen.items() if s > start}
        seen = self._seen
        if topic in seen or len(seen) < self.max_topics:
            seen[topic] = second
        else:
            topic = OTHER_TOPICS
        buckets[-1][1][topic] += 1

    def rates(self, now: float | None = None) -> pd.DataFrame:
        now = time.time() if now is None else now
        totals: collections.Counter[str] = collections.Counter()
        for second, counts in list(self._buckets):
            if second > now - self.window:
                totals.update(counts)
        span = max(min(float(self.window), now - self.started), 1.0)
        frame = pd.DataFrame(
            [(topic, count, count / span) for topic, count in totals.most_common()],
            columns=["topic", "events", "per_second"],
        )
        frame.attrs["window_s"] = span
        return frame

    def clear(self) -> None:
        self._buckets.clear()
        self._seen.clear()
        self.started = time.time()


class Tail(Releasable):
    """Events matching ``patterns`` as they happen, the newest ``max_rows`` kept, at most
    ``max_bytes`` of them in all (limits.py).

    ``.df`` (a DataFrame), ``.rates()`` (events/s per topic over the last minute),
    ``.pause()`` / ``.resume()`` (stop / restart keeping events), ``.clear()``, ``.stop()``
    (or ``await .astop()``: the tail's queue is deleted, the rows stay readable).
    """

    def __init__(
        self,
        patterns: list[str],
        max_rows: int,
        alias: str,
        release: Callable[[Tail], Coroutine[Any, Any, None]],
        runner: LoopRunner,
        max_bytes: int = TAIL_BYTES,
        redact: Redactor | None = None,
    ) -> None:
        super().__init__(release, runner)
        self.patterns = list(patterns)
        self.max_rows = max_rows
        self.alias = alias
        self.received = 0  # every event that arrived
        self.skipped = 0  # arrived while paused
        # redacted before an event is kept (redact.py): the redactor in force when the tail
        # began, and how many values it redacted
        self.redactor = redactor() if redact is None else redact
        self.redacted = 0
        self.subscription: Subscription | None = None
        self._rows: Rows[MeshEvent] = Rows(max_rows, max_bytes)
        self._rates = RateCounter()
        self._lock = threading.Lock()
        self._paused = False
        self._listeners: list[Callable[[Tail], None]] = []

    # called in the Lab loop thread, once per event
    def on_event(self, event: MeshEvent) -> None:
        if self.redactor.enabled:
            payload, n = self.redactor.value(event.event)
            context, m = self.redactor.value(event.context)
            if n or m:
                event = event._replace(event=payload, context=context)
                self.redacted += n + m
        event, cost = bounded(event)
        with self._lock:
            self.received += 1
            if self._paused:
                self.skipped += 1
                return
            self._rows.append(event, cost)
            self._rates.add(event.topic, event.received_at)
        for listener in self._listeners:
            listener(self)

    def add_listener(self, listener: Callable[[Tail], None]) -> None:
        """Call ``listener(tail)`` after each kept event (in the loop thread; keep it cheap)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Tail], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def snapshot(self, last: int | None = None) -> list[MeshEvent]:
        with self._lock:
            return self._rows.newest(last)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def df(self) -> pd.DataFrame:
        """The events kept; ``attrs["redacted"]``: values redacted (``attrs["redaction"]``
        says which redaction was in force)."""
        frame = events_frame(self.snapshot())
        frame.attrs["redaction"] = self.redactor.describe()
        frame.attrs["redacted"] = self.redacted
        return frame

    def rates(self) -> pd.DataFrame:
        with self._lock:
            return self._rates.rates()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def state(self) -> str:
        if self.stopped:
            return "stopped"
        if self.subscription is not None and not self.subscription.active:
            return "reconnecting"
        return "paused" if self._paused else "live"

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._rates.clear()

    def widget(self, rows: int = 20) -> Any:
        """A live view of this tail (ipywidgets): table, topic filter, pause, clear, rates."""
        return view_of(self, rows=rows)  # registered by the widget layer, above this one

    @property
    def gaps(self) -> list[tuple[float, float | None]]:
        return list(self.subscription.gaps) if self.subscription is not None else []

    def status(self) -> dict[str, Any]:
        return {
            "patterns": " ".join(self.patterns),
            "state": self.state,
            "rows": len(self._rows),
            "max_rows": self.max_rows,
            "kept_bytes": self._rows.kept_bytes,
            "max_bytes": self._rows.max_bytes,
            "dropped": self._rows.dropped,  # oldest rows dropped past max_bytes
            "received": self.received,
            "skipped": self.skipped,
            "undecodable": self.subscription.undecodable if self.subscription else 0,
            "gaps": len(self.gaps),
            "redacted": self.redacted,  # values redacted (redact.py)
            "redaction": "on" if self.redactor.enabled else "off",
            "alias": self.alias,
        }

    def _repr_html_(self) -> str:
        """In a notebook: the status line and the newest few events."""
        latest = events_frame(self.snapshot(last=5))
        shown = latest[["received_at", "topic", "event", "trace_id"]]
        table = frame(shown, index=False, border=0) if len(latest) else ""
        return output(tag("div", tag("code", repr(self))), table)

    def __repr__(self) -> str:
        s = self.status()
        gaps = f", {s['gaps']} gap(s)" if s["gaps"] else ""
        redacted = f"{s['redacted']} redacted" if s["redaction"] == "on" else "redaction off"
        counts = f"{s['rows']}/{self.max_rows} rows, {s['received']} received{gaps}, {redacted}"
        return f"<Tail {s['patterns']!r} on {self.alias}: {s['state']}, {counts}>"
