"""The AMQP transport: one aio-pika connection, its queues and consumers, and reconnection.

The hot path (consume, publish, ack) runs on aio-pika's underlying aiormq channels: aio-pika's
``Queue.consume`` would add a second task per delivered message. What the hot path sends
(requests, responses, events, acks) goes through an :class:`Outbox`: frames encoded directly
(see frames.py) and written once per event-loop iteration, not once per frame.

Event subscriptions are consumed on a second connection, opened with the first subscription:
an :class:`~.event_connection.EventConnection`, which reads deliveries without aiormq. It is
part of the transport: the loss of either connection is the transport's loss (the gaps are
recorded and both reconnect, as when the subscriptions shared the one connection).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import importlib.metadata
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Literal, cast

import aio_pika
import aiormq
from aiormq import Channel
from aiormq.abc import ChannelFrame, DeliveredMessage
from pamqp import commands as spec
from pamqp.header import ContentHeader

from . import frames
from .connect import connect_target
from .errors import NuropbNotDeliveredError, NuropbTransportError
from .event_connection import EventConnection
from .events import Subscription
from .topology import Topology, declare_exchanges
from .urls import AmqpTarget

__all__ = ["Confirms", "Outbox", "Transport", "TransportConfig", "TransportState"]

log = logging.getLogger(__name__)

TransportState = Literal["idle", "connecting", "connected", "reconnecting", "closed"]
# Handles a delivery in the call; returns what is left to run (in a task), or None when done.
MessageHandler = Callable[[DeliveredMessage], Coroutine[Any, Any, None] | None]
ReturnHandler = Callable[[DeliveredMessage], None]
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# aiormq 7 looks a channel's return and confirm handlers up per frame (Transport._catch_returns)
_AIORMQ_MAJOR = int(importlib.metadata.version("aiormq").split(".")[0])
WATCH_INTERVAL = 0.25
PACED_BATCH = 64  # paced messages (events) per write, see Outbox.room
HOT_FRAME_BUFFER = 1024  # frames read ahead on the hot channel (aiormq's default: 10)


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
        self._max_body = max(1, channel.connection.connection_tune.frame_max) - (
            frames.FRAME_OVERHEAD
        )
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


class _Consumer:
    """A consumer as registered with aiormq. aiormq makes a task of the coroutine a consumer
    returns, for every message; the transport's own delivery (``_deliver_directly``) calls
    ``handle`` instead, and makes a task only of what is left to run, if anything."""

    __slots__ = ("handle",)

    def __init__(self, handle: MessageHandler) -> None:
        self.handle = handle

    def __call__(self, message: DeliveredMessage) -> Coroutine[Any, Any, None]:
        rest = self.handle(message)
        return rest if rest is not None else _done()


@dataclasses.dataclass
class TransportConfig:
    topology: Topology
    response_queue: str
    service_queue: str | None  # None for a client-only API
    rpc_bindings: list[str]
    event_bindings: list[str]
    prefetch_count: int
    connection_name: str
    connect_timeout: float = 10.0
    reconnect: bool = True


class Transport:
    """Owns the connection; ``on_response`` and ``on_service`` get the raw deliveries."""

    def __init__(
        self,
        target: AmqpTarget,
        config: TransportConfig,
        on_response: MessageHandler,
        on_service: MessageHandler | None = None,
        on_state: Callable[[TransportState], None] | None = None,
        on_return: ReturnHandler | None = None,
    ) -> None:
        self.target = target
        self.config = config
        self._on_response = _Consumer(on_response)
        self._on_service = _Consumer(on_service) if on_service is not None else None
        self._on_state = on_state
        self._on_return = on_return
        self.state: TransportState = "idle"
        self.reconnects = 0
        self.last_error: str | None = None
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: Channel | None = None  # consumers, responses, events, acks
        self._confirm_channel: Channel | None = None  # commands (mandatory and confirmed)
        self._outbox: Outbox | None = None  # sends on _channel
        # sends on _confirm_channel, when its confirms are counted here (see _count_confirms)
        self._confirm_outbox: Outbox | None = None
        self._confirms: Confirms | None = None
        self._returns_caught = False  # whether _channel hands basic.return to on_return
        self._connected = asyncio.Event()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._subscriptions: list[Subscription] = []
        self._events: EventConnection | None = None  # consumes the subscriptions' queues
        self._events_opening = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def _set_state(self, state: TransportState) -> None:
        if state == self.state:
            return
        self.state = state
        if state == "connected":
            self._connected.set()
        else:
            self._connected.clear()
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                log.exception("transport state callback failed")

    async def start(self) -> None:
        """Connect once; raises NuropbTransportError with the cause (no retry on first connect)."""
        if self.state in ("connected", "connecting", "reconnecting"):
            return
        self._stopping = False
        self._set_state("connecting")
        try:
            await self._open()
        except BaseException:
            self._set_state("closed")
            raise
        self._set_state("connected")

    async def stop(self) -> None:
        self._stopping = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reconnect_task
            self._reconnect_task = None
        connection, self._connection = self._connection, None
        events, self._events = self._events, None
        self._channel = self._confirm_channel = None
        self._drop_outbox()
        for subscription in self._subscriptions:
            subscription.active = False
        self._set_state("closed")
        if events is not None:
            await events.close()
        if connection is not None:
            await self._close_quietly(connection)
        for task in list(self._tasks):
            task.cancel()

    async def wait_connected(self, timeout: float | None) -> bool:
        """Wait (at most ``timeout`` s) while connecting or reconnecting; True once connected."""
        if self.state in ("idle", "closed"):
            return False
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return self.connected

    async def _open(self) -> None:
        cfg = self.config
        connection = await connect_target(
            self.target,
            timeout=cfg.connect_timeout,
            client_properties={"connection_name": cfg.connection_name, "product": "nuropb-lab"},
        )
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                # The hot channel straight on aiormq, for its deeper frame queue: at aiormq's
                # default (10 frames) the connection's reader stalls on every burst.
                assert connection.transport is not None
                underlay = cast(aiormq.Connection, connection.transport.connection)
                channel = cast(
                    Channel,
                    await underlay.channel(
                        publisher_confirms=False, frame_buffer_size=HOT_FRAME_BUFFER
                    ),
                )
                if _AIORMQ_MAJOR >= 7:
                    confirm = cast(
                        Channel,
                        await underlay.channel(
                            publisher_confirms=True, frame_buffer_size=HOT_FRAME_BUFFER
                        ),
                    )
                    self._confirm_outbox = Outbox(confirm)
                    self._confirms = self._count_confirms(confirm)
                else:
                    confirming = await connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                    confirm = cast(Channel, await confirming.get_underlay_channel())
                # Deliveries come as soon as a consumer is declared; their acks need the outbox.
                self._outbox = Outbox(channel)
                self._returns_caught = self._catch_returns(channel)
                self._deliver_directly(channel)
                await self._declare_and_consume(channel)
            events = await self._open_events() if self._subscriptions else None
        except BaseException as exc:
            self._drop_outbox()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=2)
            if isinstance(exc, NuropbTransportError):
                raise
            if isinstance(exc, (aiormq.exceptions.AMQPError, OSError, TimeoutError)):
                raise NuropbTransportError(self._describe_setup_error(exc)) from None
            raise
        self._connection, self._channel, self._confirm_channel = connection, channel, confirm
        self._events = events
        # Every sign of loss names its own connection, so a late one never drops a newer one.
        lost = functools.partial(self._lost, connection)
        connection.close_callbacks.add(lambda _sender, exc=None: lost(self._reason(exc)))
        for ch in (channel, confirm):
            ch.closing.add_done_callback(lambda _: lost("a channel closed"))
        channel.on_consumer_cancel_callbacks.add(lambda _: lost("the broker cancelled a consumer"))
        self._spawn(self._watch(connection))

    async def _declare_and_consume(self, channel: Channel) -> None:
        cfg = self.config
        topo = cfg.topology
        await declare_exchanges(channel, topo)
        await channel.queue_declare(cfg.response_queue, durable=False, auto_delete=True)
        if cfg.service_queue is not None:
            await channel.queue_declare(
                cfg.service_queue,
                durable=True,
                auto_delete=False,
                arguments=topo.service_queue_arguments(),
            )
            for key in cfg.rpc_bindings:
                await channel.queue_bind(cfg.service_queue, topo.rpc_exchange, routing_key=key)
            for key in cfg.event_bindings:
                await channel.queue_bind(cfg.service_queue, topo.events_exchange, routing_key=key)
        await channel.basic_qos(prefetch_count=cfg.prefetch_count)
        await channel.basic_consume(
            cfg.response_queue, self._on_response, no_ack=True, exclusive=True
        )
        if cfg.service_queue is not None and self._on_service is not None:
            await channel.basic_consume(cfg.service_queue, self._on_service, no_ack=False)

    # --- event subscriptions ----------------------------------------------------------------

    def _connect_events(self) -> Coroutine[Any, Any, EventConnection]:
        return EventConnection.open(
            self.target,
            f"{self.config.connection_name}-events",
            self.config.topology.events_exchange,
            self._events_lost,
            timeout=self.config.connect_timeout,
        )

    async def _open_events(self) -> EventConnection:
        """A new events connection with every subscription on it (raises as ``_open`` does)."""
        events = await self._connect_events()
        try:
            for subscription in list(self._subscriptions):
                await events.add(subscription)
        except BaseException:
            events.abort()
            raise
        return events

    async def _events_connection(self) -> EventConnection:
        """The events connection, opened when the first subscription needs it."""
        async with self._events_opening:
            events = self._events
            if events is not None:
                if not events.is_open:  # lost: the reconnection makes a new one
                    raise NuropbTransportError(
                        f"the events connection to {self.target.masked} was lost ({events.ended})"
                    )
                return events
            connection = self._connection
            events = await self._connect_events()
            if connection is None or connection is not self._connection or not self.alive():
                events.abort()  # the transport was lost meanwhile; its reconnection opens one
                raise NuropbTransportError(f"not connected to {self.target.masked} ({self.state})")
            self._events = events
            return events

    def _events_lost(self, events: EventConnection, reason: str) -> None:
        connection = self._connection
        if events is self._events and connection is not None:
            self._lost(connection, f"the events connection: {reason}")

    async def subscribe(self, subscription: Subscription) -> None:
        """Consume events by ``subscription`` now and again after every reconnection."""
        if not self.alive():
            raise NuropbTransportError(f"not connected to {self.target.masked} ({self.state})")
        self._subscriptions.append(subscription)
        try:
            events = await self._events_connection()
            await events.add(subscription)
        except BaseException:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            events_now = self._events
            if events_now is not None and not events_now.is_open and not self._subscriptions:
                self._events = None  # it failed this subscription only: no loss to recover
            raise

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop consuming and delete the subscription's queue (closing the events connection
        with the last subscription)."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        subscription.active = False
        events = self._events
        if events is None or not events.is_open or not self.alive():
            return  # the queue went with its connection (it is exclusive)
        await events.remove(subscription)
        if not self._subscriptions and self._events is events:
            self._events = None
            await events.close()

    @contextlib.asynccontextmanager
    async def temp_channel(self) -> AsyncIterator[Channel]:
        """A short-lived channel, for operations that may close it (a passive declare)."""
        connection = self._connection
        if connection is None or not self.alive():
            raise NuropbTransportError(f"not connected to {self.target.masked} ({self.state})")
        channel = await connection.channel(publisher_confirms=False)
        try:
            yield cast(Channel, await channel.get_underlay_channel())
        finally:
            if not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()

    async def queue_info(self, queue: str) -> tuple[int, int] | None:
        """(messages, consumers) of a queue, or None when it does not exist."""
        events = self._events
        for subscription in self._subscriptions:
            if subscription.queue == queue and events is not None and events.is_open:
                # exclusive to the events connection: only it may look
                return await events.queue_info(subscription)
        try:
            async with self.temp_channel() as channel:
                ok = await channel.queue_declare(queue, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        return int(ok.message_count or 0), int(ok.consumer_count or 0)

    def _describe_setup_error(self, exc: BaseException) -> str:
        text = self.target.scrub(str(exc))
        if isinstance(exc, aiormq.exceptions.ChannelAccessRefused) and "exclusive use" in text:
            return (
                f"another API instance is connected with this instance_id: response queue"
                f" {self.config.response_queue!r} is in exclusive use (single-instance)"
            )
        if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
            return f"the mesh has a queue or exchange declared with other settings: {text}"
        return f"setting up queues on {self.target.masked} failed: {type(exc).__name__}: {text}"

    # --- connection loss and reconnection ---------------------------------------------

    def _reason(self, exc: BaseException | None) -> str:
        return self.target.scrub(f"{type(exc).__name__}: {exc}") if exc is not None else "closed"

    @staticmethod
    def _is_open(connection: aio_pika.abc.AbstractConnection) -> bool:
        # Under load aiormq can take seconds to finish closing a connection whose reader
        # has stopped (so close callbacks come late); its ``is_opened`` drops at once.
        underlay = getattr(connection.transport, "connection", None)
        return underlay is not None and bool(underlay.is_opened)

    def alive(self) -> bool:
        """True when connected and the connection is really open (noticing a loss now)."""
        connection = self._connection
        if connection is None or self.state != "connected":
            return False
        if not self._is_open(connection):
            self._lost(connection, "the connection stopped")
            return False
        return True

    async def _watch(self, connection: aio_pika.abc.AbstractConnection) -> None:
        """Notice a dead connection while idle, without waiting for aiormq's slow close."""
        while connection is self._connection:
            if not self._is_open(connection):
                self._lost(connection, "the connection stopped")
                return
            await asyncio.sleep(WATCH_INTERVAL)

    def _lost(self, connection: aio_pika.abc.AbstractConnection, reason: str) -> None:
        """Drop a lost connection (closing it in the background) and start reconnecting."""
        if self._stopping or connection is not self._connection:
            return
        self.last_error = reason
        log.warning("connection to %s lost (%s)", self.target.masked, reason)
        for subscription in self._subscriptions:
            subscription.lost()
        self._connection = None
        self._channel = self._confirm_channel = None
        self._drop_outbox()
        events, self._events = self._events, None
        if events is not None:
            # at once: its exclusive queues must be gone before the reconnection declares them
            events.abort()
        self._spawn(self._close_quietly(connection))
        if not self.config.reconnect:
            self._set_state("closed")
            return
        self._set_state("reconnecting")
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    @staticmethod
    async def _close_quietly(connection: aio_pika.abc.AbstractConnection) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), timeout=5)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._stopping:
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            await asyncio.sleep(delay)
            attempt += 1
            try:
                await self._open()
            except NuropbTransportError as exc:
                self.last_error = exc.description
                log.info("reconnect attempt %d failed: %s", attempt, exc.description)
                continue
            self.reconnects += 1
            log.info("reconnected to %s after %d attempt(s)", self.target.masked, attempt)
            self._set_state("connected")
            return

    # --- publishing -------------------------------------------------------------------

    def _catch_returns(self, channel: Channel) -> bool:
        """Have ``channel`` (no publisher confirms) hand each basic.return to ``on_return``.

        aiormq gives a returned message only to the publish waiting for its confirmation, so
        a mandatory message would need a confirm channel and a wait for the broker's ack per
        message just to learn that it was not routed. aiormq 7 looks up the channel's
        ``_on_return_frame`` for each basic.return it reads; this channel's own handler reads
        the returned message with the channel's frame reader and passes it on. Where that
        hook is missing (another aiormq), False: requests then go the confirmed way.
        """
        if self._on_return is None or _AIORMQ_MAJOR < 7:
            return False
        read_frame = getattr(channel, "_get_frame", None)
        read_content = getattr(channel, "_read_content", None)
        if read_frame is None or read_content is None or not hasattr(channel, "_on_return_frame"):
            return False
        on_return = self._on_return

        async def on_return_frame(frame: spec.Basic.Return) -> None:
            header = await read_frame()
            if not isinstance(header, ContentHeader):
                raise ValueError(f"unexpected frame {header!r} instead of a content header")
            message = await read_content(frame, header)
            try:
                on_return(message)
            except Exception:
                log.exception("return handler failed")

        channel._on_return_frame = on_return_frame  # type: ignore[method-assign]
        return True

    def _deliver_directly(self, channel: Channel) -> None:
        """Hand ``channel``'s deliveries to the consumers in the channel's reader.

        aiormq makes a task per delivered message to run its consumer (with its bookkeeping,
        and a loop iteration before the consumer runs); most of the messages here are handled
        in the consumer's call, so that task cost more than the handling. aiormq 7 looks the
        channel's ``_on_deliver_frame`` up for each basic.deliver; this one reads the message
        with the channel's frame reader and calls the consumer; a task is made only for what
        the consumer leaves to run. Without that hook aiormq's way stays.
        """
        read_frame = getattr(channel, "_get_frame", None)
        read_content = getattr(channel, "_read_content", None)
        if (
            _AIORMQ_MAJOR < 7
            or read_frame is None
            or read_content is None
            or not hasattr(channel, "_on_deliver_frame")
        ):
            return
        consumers = channel.consumers

        async def on_deliver_frame(frame: spec.Basic.Deliver) -> None:
            header = await read_frame()
            if not isinstance(header, ContentHeader):
                raise ValueError(f"unexpected frame {header!r} instead of a content header")
            message = await read_content(frame, header)
            consumer = consumers.get(frame.consumer_tag or "")
            if consumer is None:
                return
            # aiormq keeps each consumer wrapped (functools.wraps) in a coroutine function
            ours = getattr(consumer, "__wrapped__", None)
            try:
                if isinstance(ours, _Consumer):
                    rest = ours.handle(message)
                else:
                    rest = consumer(message)
            except Exception:  # never let a consumer's failure stop the channel's reader
                log.exception("consumer failed")
                return
            if rest is not None:
                self._spawn_logged(rest)

        channel._on_deliver_frame = on_deliver_frame  # type: ignore[method-assign]

    def _spawn_logged(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._consumer_done)

    def _consumer_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("consumer failed", exc_info=task.exception())

    def _count_confirms(self, channel: Channel) -> Confirms:
        """Count ``channel``'s publisher confirms here, not in aiormq.

        aiormq's basic_publish on a confirm channel waits for its own confirmation, one publish
        at a time under the channel's lock. Publishing through an outbox instead, this
        transport counts the delivery tags itself; aiormq 7 looks the channel's
        ``_on_confirm_frame`` and ``_on_return_frame`` up for each frame it reads, and this
        channel's own handlers settle the confirmations (aiormq publishes nothing on it).
        """
        confirms = Confirms()
        read_frame, read_content = channel._get_frame, channel._read_content

        async def on_confirm_frame(
            frame: spec.Basic.Ack | spec.Basic.Nack | spec.Basic.Reject,
        ) -> None:
            confirms.settle(
                frame.delivery_tag or 0,
                bool(getattr(frame, "multiple", False)),
                isinstance(frame, spec.Basic.Ack),
            )

        async def on_return_frame(frame: spec.Basic.Return) -> None:
            header = await read_frame()
            if not isinstance(header, ContentHeader):
                raise ValueError(f"unexpected frame {header!r} instead of a content header")
            message = await read_content(frame, header)
            confirms.returned(
                message.header.properties.message_id,
                frame.routing_key or "",
                frame.exchange or "",
            )

        channel._on_confirm_frame = on_confirm_frame  # type: ignore[method-assign]
        channel._on_return_frame = on_return_frame  # type: ignore[method-assign]
        return confirms

    def _drop_outbox(self) -> None:
        outbox, self._outbox = self._outbox, None
        if outbox is not None:
            outbox.close()
        confirm_outbox, self._confirm_outbox = self._confirm_outbox, None
        if confirm_outbox is not None:
            confirm_outbox.close()
        confirms, self._confirms = self._confirms, None
        if confirms is not None:
            confirms.fail("the connection was lost before the broker confirmed the message")

    @property
    def returns_caught(self) -> bool:
        """True when :meth:`send` may carry mandatory messages (returns reach on_return)."""
        return self._returns_caught and self._outbox is not None

    def send(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: frames.Properties | spec.Basic.Properties,
        mandatory: bool = False,
    ) -> None:
        """Queue a message for this loop iteration's write, without waiting for anything.

        A mandatory message the broker cannot route comes back to ``on_return`` (only when
        :attr:`returns_caught`; use :meth:`publish` otherwise).
        """
        connection, outbox = self._connection, self._outbox
        if connection is None or outbox is None or not self.alive():
            raise NuropbTransportError(f"not connected to {self.target.masked} ({self.state})")
        if mandatory and not self._returns_caught:
            raise RuntimeError("this channel cannot report returned messages: use publish()")
        try:
            outbox.publish(exchange, routing_key, body, properties, mandatory)
        except aiormq.exceptions.ChannelInvalidStateError as exc:
            self._lost(connection, self._reason(exc))
            raise NuropbTransportError(f"publish failed: {exc}") from None

    def outbox_for(self, channel: Any) -> Outbox | None:
        """The outbox of ``channel`` while it is the transport's channel (acks go there)."""
        outbox = self._outbox
        return outbox if outbox is not None and outbox.channel is channel else None

    def send_confirmed(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: frames.Properties | spec.Basic.Properties,
    ) -> asyncio.Future[None] | None:
        """Queue a mandatory message on the confirm channel, without waiting: the future is
        settled by the broker's confirmation (NuropbNotDeliveredError when it is returned).
        None when the confirms are not counted here or the transport is not connected (use
        :meth:`publish`, which waits or raises)."""
        connection, confirm_outbox, confirms = (
            self._connection,
            self._confirm_outbox,
            self._confirms,
        )
        if connection is None or confirm_outbox is None or confirms is None or not self.alive():
            return None
        if isinstance(properties, frames.Properties):
            message_id = properties.message_id
            if not message_id:
                message_id = uuid.uuid4().hex
                properties = properties._replace(message_id=message_id)
        else:
            message_id = properties.message_id or uuid.uuid4().hex
            properties.message_id = message_id
        confirmed = confirms.expect(message_id)
        try:
            confirm_outbox.publish(exchange, routing_key, body, properties, mandatory=True)
        except aiormq.exceptions.ChannelInvalidStateError as exc:
            self._lost(connection, self._reason(exc))
            raise NuropbTransportError(f"publish failed: {exc}") from None
        return confirmed

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: frames.Properties | spec.Basic.Properties,
        mandatory: bool = False,
    ) -> None:
        """Publish; a mandatory message goes with a publisher confirm, and raises
        NuropbNotDeliveredError when the broker cannot route it. Others are sent as by
        :meth:`send`."""
        if not mandatory:
            outbox = self._outbox
            if outbox is not None:
                await outbox.room()
            self.send(exchange, routing_key, body, properties)
            return
        connection = self._connection
        channel = self._confirm_channel
        if connection is None or channel is None or not self.alive():
            raise NuropbTransportError(f"not connected to {self.target.masked} ({self.state})")
        confirmed = self.send_confirmed(exchange, routing_key, body, properties)
        if confirmed is not None:
            await confirmed
            return
        if isinstance(properties, frames.Properties):
            properties = properties.to_pamqp()
        try:
            confirmation = await channel.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                mandatory=mandatory,
                wait=False,
            )
        except aiormq.exceptions.PublishError as exc:
            raise NuropbNotDeliveredError(
                f"no service is bound for {routing_key!r} on {exchange!r} (312 NO_ROUTE)"
            ) from exc
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            self._lost(connection, self._reason(exc))
            raise NuropbTransportError(
                f"publish failed: {type(exc).__name__}: {self.target.scrub(str(exc))}"
            ) from None
        if isinstance(confirmation, spec.Basic.Nack):
            raise NuropbTransportError("the broker refused the message (basic.nack)")
