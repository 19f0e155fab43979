"""The connection status widget: connected / reconnecting / closed, updating on its own."""

from __future__ import annotations

import ipywidgets as w

from ..lab import Lab
from ..lab.markup import join, tag
from .live import Live, idle_timeout_of

__all__ = ["ConnectionStatus"]

COLORS = {
    "connected": "#1b7f3b",
    "reconnecting": "#c77700",
    "connecting": "#c77700",
    "closed": "#b00020",
}


class ConnectionStatus(w.VBox):
    """One line per connection: state, URL (password masked), node, reconnects, calls in flight,
    served services, tails, and whether it is read-only. Redrawn on every state change and
    looked at every ``interval`` s (sent to the browser only when it changed); it pauses after
    ``idle_timeout`` s without interaction (default: the Lab's ``live_idle_timeout``) until
    Resume."""

    def __init__(self, lab: Lab, interval: float = 1.0, idle_timeout: float | None = None) -> None:
        self.lab = lab
        self.interval = interval
        self.line = w.HTML()
        self.live = Live(lab.runner, idle_timeout_of(lab, idle_timeout), key=("status", id(lab)))
        self._redraw = self.live.redraw(self.draw, 0.1)
        self._watched: set[str] = set()
        super().__init__([self.live.bar, self.line])
        self.draw()
        self.live.every(interval, self.draw)

    @property
    def value(self) -> str:
        """The lines shown (HTML)."""
        return str(self.line.value)

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
        self.line.value = join(lines) or tag("i", "not connected")

    def close(self) -> None:
        self.live.close()
        super().close()
