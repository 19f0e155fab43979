"""The connection status widget: connected / reconnecting / closed, updating on its own."""

from __future__ import annotations

import asyncio
import concurrent.futures

import ipywidgets as w

from ..lab import Lab
from ..lab.markup import join, tag
from .throttle import Redraw

__all__ = ["ConnectionStatus"]

COLORS = {
    "connected": "#1b7f3b",
    "reconnecting": "#c77700",
    "connecting": "#c77700",
    "closed": "#b00020",
}


class ConnectionStatus(w.HTML):
    """One line per connection: state, URL (password masked), node, reconnects, calls in flight,
    served services, tails, and whether it is read-only. Redrawn on every state change and
    every ``interval`` s."""

    def __init__(self, lab: Lab, interval: float = 1.0) -> None:
        super().__init__()
        self.lab = lab
        self.interval = interval
        self._closed = False
        self._redraw = Redraw(lab.runner, self.draw, 0.1)
        self._watched: set[str] = set()
        self.draw()
        self._task: concurrent.futures.Future[None] = lab.runner.submit(self._tick())

    async def _tick(self) -> None:
        while not self._closed:
            self.draw()
            await asyncio.sleep(self.interval)

    def draw(self) -> None:
        lines = []
        for alias, connection in self.lab.connections.items():
            if alias not in self._watched:  # redraw at once on a state change
                self._watched.add(alias)
                connection.api.add_state_listener(lambda _state: self._redraw.request())
            transport = connection.api.transport
            color = COLORS.get(transport.state, "#555")
            served = ", ".join(connection.served) or "—"
            lines.append(
                tag(
                    "div",
                    tag("b", alias),
                    " ",
                    tag("span", f"● {transport.state}", style=f"color:{color}"),
                    f" {connection.url} · on {connection.node}",
                    f" · reconnects {transport.reconnects}",
                    f" · in flight {connection.api.in_flight} · serving {served}",
                    f" · tails {len([t for t in connection.tails if not t.stopped])}",
                    " · read-only" if connection.read_only else "",
                )
            )
        self.value = join(lines) or tag("i", "not connected")

    def close(self) -> None:
        self._closed = True
        self._task.cancel()
        super().close()
