"""The Lab's live tails of mesh events."""

from __future__ import annotations

import logging

from ..mesh.errors import NuropbException
from ..mesh.limits import TAIL_BYTES
from .connections import Connection, Connections
from .handles import replace_earlier
from .redact import Redaction
from .runner import LoopRunner
from .settings import Settings
from .tail import Tail

__all__ = ["Tails"]

log = logging.getLogger(__name__)


class Tails:
    """Live tails of mesh events into bounded buffers, per connection."""

    def __init__(
        self,
        connections: Connections,
        settings: Settings,
        runner: LoopRunner,
        redaction: Redaction,
    ) -> None:
        self._connections = connections
        self._settings = settings
        self._runner = runner
        self._redaction = redaction

    async def tail(
        self,
        *patterns: str,
        max_rows: int | None = None,
        backlog: int | None = None,
        alias: str | None = None,
        max_bytes: int = TAIL_BYTES,
    ) -> Tail:
        """Start a live tail of events matching ``patterns`` (default ``#``: all), keeping the
        newest ``max_rows``, at most ``max_bytes`` of them in all (each event's fields within
        their limits: limits.py). ``backlog``: events the broker holds for the tail while it
        is behind (the oldest are dropped past it; default ``max_rows``, at least 1,000).
        A tail of this connection started with the same arguments is stopped once this one
        runs (``.replaced`` counts them): a cell run again replaces its tail."""
        connection = self._connections.connection(alias)
        tail = Tail(
            list(patterns) or ["#"],
            max_rows or self._settings.tail_max_rows,
            connection.alias,
            release=lambda t: self._release(connection, t),
            runner=self._runner,
            max_bytes=max_bytes,
            redact=self._redaction.current,
        )
        tail.subscription = await connection.api.subscribe(
            tail.patterns, tail.on_event, max_length=backlog or max(tail.max_rows, 1000)
        )
        tail.settings = self._settings
        tail.arguments = (tuple(tail.patterns), max_rows, backlog, max_bytes)
        await replace_earlier(tail, connection.tails)
        connection.tails.append(tail)
        return tail

    async def _release(self, connection: Connection, tail: Tail) -> None:
        if tail in connection.tails:
            connection.tails.remove(tail)
        if tail.subscription is not None:
            try:
                await connection.api.unsubscribe(tail.subscription)
            except NuropbException as exc:
                log.info("could not delete the tail's queue: %s", exc)

    async def stop_all(self, connection: Connection) -> None:
        """Stop the connection's tails (it is closing)."""
        for tail in list(connection.tails):
            await tail.astop()

    def all(self) -> list[Tail]:
        """The tails of every connection that are not stopped."""
        return [t for c in self._connections.all.values() for t in c.tails]
