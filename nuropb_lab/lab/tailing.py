"""The Lab's live tails of mesh events."""

from __future__ import annotations

import logging

from ..mesh.errors import NuropbException
from ..mesh.limits import TAIL_BYTES
from .base import Connection, LabBase, awaitable, blocking
from .tail import Tail

__all__ = ["TailsMixin"]

log = logging.getLogger(__name__)


class TailsMixin(LabBase):
    """Live tails of mesh events into bounded buffers."""

    async def _tail(
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
        is behind (the oldest are dropped past it; default ``max_rows``, at least 1,000)."""
        connection = self.connection(alias)
        tail = Tail(
            list(patterns) or ["#"],
            max_rows or self.tail_max_rows,
            connection.alias,
            stopper=lambda t: self._stop_tail_soon(connection, t),
            runner=self._runner,
            max_bytes=max_bytes,
        )
        tail.subscription = await connection.api.subscribe(
            tail.patterns, tail.on_event, max_length=backlog or max(tail.max_rows, 1000)
        )
        connection.tails.append(tail)
        return tail

    tail = blocking(_tail)
    atail = awaitable(_tail)

    async def _stop_tail(self, connection: Connection, tail: Tail) -> None:
        if tail in connection.tails:
            connection.tails.remove(tail)
        tail._stopped = True
        if tail.subscription is not None:
            try:
                await connection.api.unsubscribe(tail.subscription)
            except NuropbException as exc:
                log.info("could not delete the tail's queue: %s", exc)

    def _stop_tail_soon(self, connection: Connection, tail: Tail) -> None:
        coro = self._stop_tail(connection, tail)
        if self._runner.in_loop_thread():
            self._runner.loop.create_task(coro)
        else:
            self._wait(coro)

    @property
    def tails(self) -> list[Tail]:
        return [t for c in self._connections.values() for t in c.tails]
