"""A transport's event subscriptions and the events connection that consumes them.

The events connection (:class:`~.event_connection.EventConnection`) is opened with the first
subscription and closed with the last. It belongs to the transport's connection: opened on
the same node, lost with it, and opened again, with every subscription, by the transport's
reconnection (see transport.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from .errors import NuropbTransportError
from .event_connection import BrokerClosed, EventConnection
from .events import TAIL_QUEUE_PATTERN, Subscription
from .topology import Topology
from .urls import AmqpTarget

__all__ = ["Subscriptions"]

log = logging.getLogger(__name__)


class Subscriptions:
    """The subscriptions, kept across reconnections, and their events connection.

    ``connect`` opens a new events connection; ``live`` is the transport's connection while
    it is connected (None otherwise), so that one opened while the transport was lost is not
    kept; ``not_connected`` says why a subscription cannot be made now."""

    def __init__(
        self,
        connect: Callable[[], Coroutine[Any, Any, EventConnection]],
        live: Callable[[], object | None],
        not_connected: Callable[[], NuropbTransportError],
    ) -> None:
        self._connect = connect
        self._live = live
        self._not_connected = not_connected
        self.all: list[Subscription] = []
        self.events: EventConnection | None = None
        self._opening = asyncio.Lock()

    async def open(self) -> EventConnection | None:
        """A new events connection with every subscription on it, None without any (for the
        transport's (re)connection; raises as it would)."""
        if not self.all:
            return None
        events = await self._connect()
        try:
            for subscription in list(self.all):
                await _add_again(events, subscription)
        except BaseException:
            events.abort()
            raise
        return events

    def detach(self) -> EventConnection | None:
        """Forget the events connection (the transport closes or aborts it)."""
        events, self.events = self.events, None
        return events

    async def _connection(self, target: AmqpTarget) -> EventConnection:
        """The events connection, opened when the first subscription needs it."""
        async with self._opening:
            events = self.events
            if events is not None:
                if not events.is_open:  # lost: the reconnection makes a new one
                    raise NuropbTransportError(
                        f"the events connection to {target.masked} was lost ({events.ended})"
                    )
                return events
            before = self._live()
            events = await self._connect()
            if before is None or self._live() is not before:
                events.abort()  # the transport was lost meanwhile; its reconnection opens one
                raise self._not_connected()
            self.events = events
            return events

    async def subscribe(self, subscription: Subscription, target: AmqpTarget) -> None:
        """Consume events by ``subscription`` now and again after every reconnection."""
        if self._live() is None:
            raise self._not_connected()
        self.all.append(subscription)
        try:
            events = await self._connection(target)
            await events.add(subscription)
        except BaseException as exc:
            if subscription in self.all:
                self.all.remove(subscription)
            events_now = self.events
            if events_now is not None and not self.all:
                self.events = None  # it failed this subscription only: no loss to recover
                await events_now.close()
            if isinstance(exc, BrokerClosed) and exc.reply_code == 403:
                raise NuropbTransportError(refused_queue(target, subscription.queue)) from None
            raise

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop consuming and delete the subscription's queue (closing the events connection
        with the last subscription)."""
        if subscription in self.all:
            self.all.remove(subscription)
        subscription.active = False
        events = self.events
        if events is None or not events.is_open or self._live() is None:
            return  # the queue went with its connection (it is exclusive)
        await events.remove(subscription)
        if not self.all and self.events is events:
            self.events = None
            await events.close()

    def consuming(self, queue: str) -> tuple[EventConnection, Subscription] | None:
        """The open events connection and the subscription of ``queue``, if it is one's
        (exclusive to that connection: only it may look at the queue)."""
        events = self.events
        for subscription in self.all:
            if subscription.queue == queue and events is not None and events.is_open:
                return events, subscription
        return None


async def _add_again(events: EventConnection, subscription: Subscription) -> None:
    """Consume a subscription again after a reconnection; its queue under another name where
    the old one is still held (RabbitMQ 4.3 keeps the exclusive queue of a connection whose
    node died until the node is back; the events meanwhile are lost, as in any gap)."""
    try:
        await events.add(subscription)
    except BrokerClosed as exc:
        if exc.reply_code != 405:  # RESOURCE_LOCKED
            raise
        held, subscription.queue = subscription.queue, Topology.renamed(subscription.queue)
        log.warning("%s is still held: now %s", held, subscription.queue)
        await events.add(subscription)


def refused_queue(target: AmqpTarget, queue: str) -> str:
    """What to grant, when the broker refused to declare a tail's or tap's own queue."""
    return (
        f"user {target.username!r} may not create queue {queue!r} on mesh"
        f" {target.vhost!r}: grant it configure permission on"
        f" '{TAIL_QUEUE_PATTERN}' (tails and taps need a queue of their own)"
    )
