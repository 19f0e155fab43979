"""What the transport sends on its hot channels, and how it hears back.

aiormq writes each publish and each ack with a socket write of its own, marshals frames with
pamqp's generic code, and on a confirm channel waits for each publish's confirmation under
the channel's lock; on the hot path those cost more than the rest of a message's handling.
Here an :class:`Outbox` encodes frames directly (amqp/frames.py) and writes a loop
iteration's frames at once; :class:`Confirms` counts publisher confirms itself; and
:func:`catch_returns`, :func:`count_confirms` and :func:`deliver_directly` hook aiormq 7's
per-frame handlers of a channel (``_on_return_frame``, ``_on_confirm_frame``,
``_on_deliver_frame``), which is why aiormq is pinned to 7.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import aiormq
from aiormq import Channel
from aiormq.abc import ChannelFrame, DeliveredMessage
from pamqp import commands as spec
from pamqp.header import ContentHeader

from .amqp import frames
from .amqp.constants import FRAME_OVERHEAD
from .errors import NuropbNotDeliveredError, NuropbTransportError

__all__ = [
    "Confirms",
    "Consumer",
    "MessageHandler",
    "Outbox",
    "ReturnHandler",
    "catch_returns",
    "count_confirms",
    "deliver_directly",
]

log = logging.getLogger(__name__)

ReturnHandler = Callable[[DeliveredMessage], None]
# Handles a delivery in the call; returns what is left to run (in a task), or None when done.
MessageHandler = Callable[[DeliveredMessage], Coroutine[Any, Any, None] | None]
PACED_BATCH = 64  # paced messages (events) per write, see Outbox.room


class Outbox:
    """What the transport sends on one channel, written as one frame batch per loop iteration.

    aiormq writes each publish and each ack with a socket write of its own, and marshals its
    frames with pamqp's generic code; on the hot path both cost more than the rest of a
    message's handling. Here frames are encoded directly and every frame added during one
    event-loop iteration goes out in one write, in the order added (so a response still
    precedes the ack of its request). Nothing waits: as with aiormq's ``wait=False``, a send
    is done once queued. Frames still queued when the channel closes are dropped: the broker
    redelivers unacknowledged messages, and a request's wait ends by its ttl.
    """

    __slots__ = (
        "_batch",
        "_channel",
        "_eager",
        "_loop",
        "_max_body",
        "_number",
        "_parts",
        "_queue",
        "_scheduled",
        "_waiters",
    )

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._number: int = channel.number
        self._queue = channel.write_queue
        self._max_body = max(1, channel.connection.connection_tune.frame_max) - FRAME_OVERHEAD
        self._loop = asyncio.get_running_loop()
        self._parts: list[bytes] = []
        self._scheduled = False
        # One message per iteration (a sequential caller): write it at once, saving the loop
        # iteration a batch waits; set again by each flush from the size of its batch.
        self._eager = True
        self._batch = 0  # paced messages in this iteration's write
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def channel(self) -> Channel:
        return self._channel

    async def room(self) -> None:
        """Wait for a place in a write of at most PACED_BATCH paced messages.

        Events are paced: a burst published in one go would otherwise leave in one write,
        faster than this process reads what it consumes, and overflow its own bounded
        subscription queues. Requests and responses are not: their callers' concurrency and
        the prefetch bound them.
        """
        if self._batch < PACED_BATCH and not self._waiters:
            self._batch += 1
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        self._schedule()
        await waiter

    def close(self) -> None:
        """Let every waiter go (its send then fails: the channel is closed)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def publish_frames(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: frames.Properties | spec.Basic.Properties,
        mandatory: bool = False,
    ) -> bytes:
        return frames.publish(
            self._number, exchange, routing_key, body, properties, mandatory, self._max_body
        )

    def settle_frame(self, delivery_tag: int, how: Literal["ack", "nack", "reject"]) -> bytes:
        """basic.ack, basic.nack (requeue) or basic.reject (dead-letter) of a delivery."""
        if how == "ack":
            return frames.ack(self._number, delivery_tag)
        if how == "nack":
            return frames.nack(self._number, delivery_tag, requeue=True)
        return frames.reject(self._number, delivery_tag, requeue=False)

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: frames.Properties | spec.Basic.Properties,
        mandatory: bool = False,
    ) -> None:
        self.write(self.publish_frames(exchange, routing_key, body, properties, mandatory))

    def write(self, data: bytes) -> None:
        """Send encoded frames (of this channel), after everything written before."""
        if self._channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError(f"channel {self._number} is closed")
        if self._eager and not self._scheduled:
            try:
                self._queue.put_nowait(ChannelFrame(payload=data, should_close=False))
            except asyncio.QueueFull:
                pass
            else:  # the rest of this iteration's frames are batched
                self._schedule()
                return
        self._parts.append(data)
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._channel.is_closed:
            self._parts.clear()
            self.close()
            return
        parts = self._parts
        if parts:
            try:
                self._queue.put_nowait(ChannelFrame(payload=b"".join(parts), should_close=False))
            except asyncio.QueueFull:  # aiormq's writer is behind: it drains in this iteration
                self._scheduled = True
                self._loop.call_soon(self._flush)
                return
        self._eager = len(parts) <= 1
        parts.clear()
        # the next write's places go to the longest waiting
        self._batch = 0
        waiters = self._waiters
        while waiters and self._batch < PACED_BATCH:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._batch += 1


class Confirms:
    """Publisher confirms of a confirm-mode channel all of whose publishes go through one
    outbox: delivery tags are counted here and settled by the broker's basic.ack / basic.nack
    (one or ``multiple``); a basic.return, which comes before the ack, fails its message."""

    def __init__(self) -> None:
        self._tag = 0
        # in tag order: a ``multiple`` ack settles from the front, without a scan of the rest
        self._waiting: collections.OrderedDict[int, tuple[asyncio.Future[None], str]] = (
            collections.OrderedDict()
        )
        self._tags: dict[str, int] = {}  # message id -> delivery tag

    def expect(self, message_id: str) -> asyncio.Future[None]:
        """The future of the next publish's confirmation."""
        self._tag += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[self._tag] = (future, message_id)
        self._tags[message_id] = self._tag
        return future

    def returned(self, message_id: str | None, routing_key: str, exchange: str) -> None:
        tag = self._tags.get(message_id) if message_id else None
        entry = self._waiting.get(tag) if tag is not None else None
        if entry is not None and not entry[0].done():
            entry[0].set_exception(
                NuropbNotDeliveredError(
                    f"no service is bound for {routing_key!r} on {exchange!r} (312 NO_ROUTE)"
                )
            )

    def settle(self, delivery_tag: int, multiple: bool, ack: bool) -> None:
        waiting = self._waiting
        if multiple:
            # Under a burst the broker confirms with ``multiple``; scanning every waiting tag
            # for each such ack made a burst of commands quadratic in its size.
            entries: list[tuple[int, tuple[asyncio.Future[None], str]]] = []
            while waiting:
                tag = next(iter(waiting))
                if tag > delivery_tag:
                    break
                entries.append((tag, waiting.pop(tag)))
        else:
            entry = waiting.pop(delivery_tag, None)
            entries = [] if entry is None else [(delivery_tag, entry)]
        for tag, (future, message_id) in entries:
            if self._tags.get(message_id) == tag:
                del self._tags[message_id]
            if future.done():  # returned, or its publisher stopped waiting
                continue
            if ack:
                future.set_result(None)
            else:
                future.set_exception(
                    NuropbTransportError("the broker refused the message (basic.nack)")
                )

    def fail(self, reason: str) -> None:
        waiting, self._waiting = self._waiting, collections.OrderedDict()
        self._tags.clear()
        for future, _ in waiting.values():
            if not future.done():
                future.set_exception(NuropbTransportError(reason))


async def _done() -> None:
    return None


class Consumer:
    """A consumer as registered with aiormq. aiormq makes a task of the coroutine a consumer
    returns, for every message; :func:`deliver_directly` calls ``handle`` instead, and makes
    a task only of what is left to run, if anything."""

    __slots__ = ("handle",)

    def __init__(self, handle: MessageHandler) -> None:
        self.handle = handle

    def __call__(self, message: DeliveredMessage) -> Coroutine[Any, Any, None]:
        rest = self.handle(message)
        return rest if rest is not None else _done()


async def _content(
    channel: Channel, frame: spec.Basic.Deliver | spec.Basic.Return
) -> DeliveredMessage:
    """The message of a basic.deliver or basic.return: its content header and body frames,
    read with the channel's frame reader (as aiormq's own handlers read them)."""
    header = await channel._get_frame()
    if not isinstance(header, ContentHeader):
        raise ValueError(f"unexpected frame {header!r} instead of a content header")
    return await channel._read_content(frame, header)


def catch_returns(channel: Channel, on_return: ReturnHandler) -> None:
    """Have ``channel`` (no publisher confirms) hand each basic.return to ``on_return``.

    aiormq gives a returned message only to the publish waiting for its confirmation, so
    a mandatory message would need a confirm channel and a wait for the broker's ack per
    message just to learn that it was not routed. aiormq 7 looks up the channel's
    ``_on_return_frame`` for each basic.return it reads; this channel's own handler reads
    the returned message and passes it on.
    """

    async def on_return_frame(frame: spec.Basic.Return) -> None:
        message = await _content(channel, frame)
        try:
            on_return(message)
        except Exception:
            log.exception("return handler failed")

    channel._on_return_frame = on_return_frame  # type: ignore[method-assign]


def count_confirms(channel: Channel) -> Confirms:
    """Count ``channel``'s publisher confirms here, not in aiormq.

    aiormq's basic_publish on a confirm channel waits for its own confirmation, one publish
    at a time under the channel's lock. Publishing through an outbox instead, this
    transport counts the delivery tags itself; aiormq 7 looks the channel's
    ``_on_confirm_frame`` and ``_on_return_frame`` up for each frame it reads, and this
    channel's own handlers settle the confirmations (aiormq publishes nothing on it).
    """
    confirms = Confirms()

    async def on_confirm_frame(
        frame: spec.Basic.Ack | spec.Basic.Nack | spec.Basic.Reject,
    ) -> None:
        confirms.settle(
            frame.delivery_tag or 0,
            bool(getattr(frame, "multiple", False)),
            isinstance(frame, spec.Basic.Ack),
        )

    async def on_return_frame(frame: spec.Basic.Return) -> None:
        message = await _content(channel, frame)
        confirms.returned(
            message.header.properties.message_id,
            frame.routing_key or "",
            frame.exchange or "",
        )

    channel._on_confirm_frame = on_confirm_frame  # type: ignore[method-assign]
    channel._on_return_frame = on_return_frame  # type: ignore[method-assign]
    return confirms


def deliver_directly(channel: Channel, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    """Hand ``channel``'s deliveries to the consumers in the channel's reader.

    aiormq makes a task per delivered message to run its consumer (with its bookkeeping,
    and a loop iteration before the consumer runs); most of the messages here are handled
    in the consumer's call, so that task cost more than the handling. aiormq 7 looks the
    channel's ``_on_deliver_frame`` up for each basic.deliver; this one reads the message
    and calls the consumer; ``spawn`` makes a task only of what the consumer leaves to run.
    """
    consumers = channel.consumers

    async def on_deliver_frame(frame: spec.Basic.Deliver) -> None:
        message = await _content(channel, frame)
        consumer = consumers.get(frame.consumer_tag or "")
        if consumer is None:
            return
        # aiormq keeps each consumer wrapped (functools.wraps) in a coroutine function
        ours = getattr(consumer, "__wrapped__", None)
        try:
            rest = ours.handle(message) if isinstance(ours, Consumer) else consumer(message)
        except Exception:  # never let a consumer's failure stop the channel's reader
            log.exception("consumer failed")
            return
        if rest is not None:
            spawn(rest)

    channel._on_deliver_frame = on_deliver_frame  # type: ignore[method-assign]
