"""A live wire tap: what the mesh's services say to each other, as it happens, bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pandas as pd

from ...mesh import ManagementAPI, ManagementUnavailable
from ...views import view_of
from ..handles import Releasable
from ..markup import frame, output, tag
from ..runner import LoopRunner
from .bounds import TapBounds
from .capture import Capture, TapSubscription, queue_label
from .tables import TapData, calls_frame, messages_frame

__all__ = ["Tap"]

BINDINGS_TTL = 10.0  # s a look at the events exchange's bindings is reused


class Tap(TapData, Releasable):
    """The mesh's traffic as it happens: ``.df`` (one row per message), ``.calls`` (one row per
    request or command), ``.stats()``, ``.graph()``, ``.traces()``, ``.trace(id)``,
    ``.timings(ids)``, ``.save(path)``; ``.pause()``, ``.resume()``, ``.clear()``, ``.widget()``;
    ``.stop()`` (or ``await .astop()``): its queue is deleted and, if it was the last tap on
    the firehose that a lab switched on, tracing is switched off; the rows stay readable.

    ``mode`` is ``"firehose"`` (every message, responses too: latencies and times queued) or
    ``"queue"`` (copies of requests, commands and events through a queue of its own: no
    responses, so no latency). ``bounds``: when it stops by itself (bounds.py), if it does.
    """

    def __init__(
        self,
        capture: Capture,
        subscription: TapSubscription,
        *,
        alias: str,
        vhost: str,
        services: list[str],
        notice: str | None,
        runner: LoopRunner,
        management: ManagementAPI | None,
        events_exchange: str,
        release: Callable[[Tap], Coroutine[Any, Any, None]],
    ) -> None:
        super().__init__(release, runner)
        self.capture = capture
        self.subscription = subscription
        self.alias = alias
        self.vhost = vhost
        self.services = list(services)
        self.notice = notice
        self.management = management
        self.events_exchange = events_exchange
        # without the firehose, of every service: binds the services that come later (taps.py)
        self.follower: asyncio.Task[None] | None = None
        # its limits, and the task that stops it at them (taps.py)
        self.bounds: TapBounds | None = None
        self.ender: asyncio.Task[None] | None = None
        self._listeners: dict[Callable[[Tap], None], Callable[[], None]] = {}
        self._bindings: tuple[float, dict[str, list[str]]] = (0.0, {})
        self._clients: tuple[float, dict[str, str]] = (0.0, {})

    @property
    def mode(self) -> str:
        return "firehose" if self.subscription.firehose else "queue"

    @property
    def events(self) -> bool:
        return self.capture.events

    @property
    def max_rows(self) -> int:
        return self.capture.rows.max_rows

    # --- tables -------------------------------------------------------------------------------

    @property
    def df(self) -> pd.DataFrame:
        frame = messages_frame(self.capture.snapshot())
        self._say_redacted(frame)
        unnamed = frame["caller"].isna() & frame["connection"].notna()
        if unnamed.any():  # e.g. events published before their connection was seen in a call
            names = self._connection_labels(set(frame.loc[unnamed, "connection"]))
            frame.loc[unnamed, "caller"] = frame.loc[unnamed, "connection"].map(names)
        return frame

    def known_caller(self, row: tuple[Any, ...]) -> str | None:
        """Who published a row whose caller was not known when it came, if known by now
        (no I/O: what its traffic taught, and the last look at the management API)."""
        connection = row[-1]
        if not connection:
            return None
        return self.capture.connections.get(connection) or self._clients[1].get(connection)

    def _connection_labels(self, connections: set[str]) -> dict[str, str | None]:
        """Who uses each connection: learnt from its traffic, else from the client properties
        the management API shows (a lab API's connection_name, a nuropb API's name)."""
        known = dict(self.capture.connections)
        missing = connections - set(known)
        at, looked = self._clients
        if missing and (time.monotonic() - at > BINDINGS_TTL or missing - set(looked)):
            looked = self._look_up_clients()
            self._clients = (time.monotonic(), looked)
        return {c: known.get(c) or looked.get(c) for c in connections}

    def _look_up_clients(self) -> dict[str, str]:
        if self.management is None:
            return {}
        try:
            rows = self.management.call_blocking(
                "GET", f"vhosts/{_quote(self.vhost)}/connections?columns=name,client_properties"
            )
        except ManagementUnavailable:
            return {}
        found = {}
        for row in rows or []:
            label = client_label(row.get("client_properties") or {}, self.vhost)
            if label:
                found[str(row.get("name"))] = label
        return found

    @property
    def calls(self) -> pd.DataFrame:
        capture = self.capture
        with capture.lock:
            capture.calls.expire(time.time())  # also when no traffic came to do it
            rows = capture.calls.rows()
        return self._say_redacted(calls_frame(rows))

    def _say_redacted(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Which redaction was in force and how many values it redacted, on a table's attrs."""
        frame.attrs["redaction"] = self.capture.redactor.describe()
        frame.attrs["redacted"] = self.capture.redacted
        return frame

    def snapshot(self, last: int | None = None) -> list[tuple[Any, ...]]:
        """The newest ``last`` rows (all kept if None), as tuples in ``df``'s column order."""
        return self.capture.snapshot(last)

    def __len__(self) -> int:
        return len(self.capture.rows)

    def _clock(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return (
            pd.Timestamp(self.capture.started, unit="s", tz="UTC"),
            pd.Timestamp(time.time(), unit="s", tz="UTC"),
        )

    def _subscribers(self) -> dict[str, list[str]]:
        """label -> topic patterns bound on the events exchange (management API; cached for
        a few seconds). The firehose names the subscribers of each event itself."""
        if self.subscription.firehose or self.management is None:
            return {}
        at, found = self._bindings
        if time.monotonic() - at < BINDINGS_TTL:
            return found
        found = {}
        try:
            bindings = self.management.call_blocking(
                "GET", f"exchanges/{_quote(self.vhost)}/{_quote(self.events_exchange)}"
                "/bindings/source",
            )  # fmt: skip
        except ManagementUnavailable:
            bindings = []
        for binding in bindings or []:
            queue = binding.get("destination", "")
            if binding.get("destination_type") != "queue" or queue == self.subscription.queue:
                continue
            found.setdefault(queue_label(queue), []).append(binding.get("routing_key", ""))
        self._bindings = (time.monotonic(), found)
        return found

    # --- control ------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.capture.paused

    @property
    def state(self) -> str:
        if self.stopped:
            return "stopped"
        if not self.subscription.active:
            return "reconnecting"
        return "paused" if self.capture.paused else "live"

    def pause(self) -> None:
        """Stop keeping messages (they still arrive, and are counted as skipped)."""
        self.capture.paused = True

    def resume(self) -> None:
        self.capture.paused = False

    def clear(self) -> None:
        self.capture.clear()

    def add_listener(self, listener: Callable[[Tap], None]) -> None:
        """Call ``listener(tap)`` after each batch of deliveries (in the loop thread; cheap)."""

        def call() -> None:
            listener(self)

        self._listeners[listener] = call
        self.capture.listeners.append(call)

    def remove_listener(self, listener: Callable[[Tap], None]) -> None:
        call = self._listeners.pop(listener, None)
        if call is not None and call in self.capture.listeners:
            self.capture.listeners.remove(call)

    def widget(self, rows: int = 20) -> Any:
        """A live view (ipywidgets): the newest messages, a filter, pause, the service graph."""
        return view_of(self, rows=rows)  # registered by the widget layer, above this one

    def graph_view(self, window: float = 60.0, interval: float = 2.0) -> Any:
        """The service graph as a live widget, redrawn every ``interval`` seconds."""
        return view_of(self, graph_only=True, window=window, interval=interval)

    # --- status -------------------------------------------------------------------------------

    @property
    def gaps(self) -> list[tuple[float, float | None]]:
        return list(self.subscription.gaps)

    def status(self) -> dict[str, Any]:
        capture = self.capture
        calls = capture.calls
        with capture.lock:
            calls.expire(time.time())  # also when no traffic came to do it
        return {
            "mode": self.mode,
            "services": " ".join(self.services) or "all",
            "events": capture.events,
            "state": self.state,
            "rows": len(capture.rows),
            "max_rows": self.max_rows,
            "kept_bytes": capture.rows.kept_bytes,
            "max_bytes": capture.rows.max_bytes,
            "dropped": capture.rows.dropped,  # oldest rows dropped past max_bytes
            "received": capture.received,
            "kept": capture.kept,
            "skipped": capture.skipped,
            "calls": len(calls.ring),
            "waiting": len(calls.pending),
            "unpaired": calls.unpaired,
            "expired": calls.expired + calls.evicted,
            "undecodable": capture.undecodable + self.subscription.undecodable,
            "gaps": len(self.subscription.gaps),
            "redacted": capture.redacted,  # values redacted (redact.py)
            "redaction": "on" if capture.redactor.enabled else "off",
            "alias": self.alias,
            "bounds": self.bounds_text(),
        }

    def bounds_text(self) -> str | None:
        """Its age and time left (``12 s old, 288 s left``), or why it ended by itself; None
        for a tap without limits."""
        if self.bounds is None or (self.stopped and self.bounds.ended is None):
            return None
        return self.bounds.describe(self.capture.received)

    def __repr__(self) -> str:
        s = self.status()
        gaps = f", {s['gaps']} gap(s)" if s["gaps"] else ""
        bounds = f", {s['bounds']}" if s["bounds"] else ""
        redacted = f"{s['redacted']} redacted" if s["redaction"] == "on" else "redaction off"
        return (
            f"<Tap {s['services']} on {self.alias} ({s['mode']}): {s['state']},"
            f" {s['rows']}/{s['max_rows']} rows, {s['calls']} calls ({s['waiting']} waiting)"
            f"{gaps}{bounds}, {redacted}>"
        )

    def _repr_html_(self) -> str:
        """In a notebook: the status line, the notice (if any) and the newest messages."""
        latest = messages_frame(self.capture.snapshot(last=5))
        shown = latest[["time", "kind", "caller", "service", "method", "topic", "trace_id"]]
        table = frame(shown, index=False, border=0, na_rep="") if len(latest) else ""
        notice = tag("div", tag("i", self.notice)) if self.notice else ""
        return output(tag("div", tag("code", repr(self))), notice, table)


def client_label(properties: dict[str, Any], vhost: str) -> str | None:
    """The service (or client label) a connection's client properties name: nuropb 0.1.8 sets
    ``name`` (and ``client_only``), a lab API ``connection_name`` = {vhost}-{service}-{id}."""
    if properties.get("client_only") == "true":
        return f"{vhost}-client"
    name = properties.get("name")
    if isinstance(name, str) and name:
        return name
    connection_name = properties.get("connection_name")
    prefix = f"{vhost}-"
    if isinstance(connection_name, str) and connection_name.startswith(prefix):
        service, dash, instance = connection_name[len(prefix) :].rpartition("-")
        if dash and service and instance != "events":
            return service
    return None


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
