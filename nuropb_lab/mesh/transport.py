"""The AMQP transport: one aio-pika connection, its queues and consumers, and reconnection.

The hot path (consume, publish, ack) runs on aio-pika's underlying aiormq channels: aio-pika's
``Queue.consume`` would add a second task per delivered message. What the hot path sends
(requests, responses, events, acks) goes through an :class:`Outbox`: frames encoded directly
(see amqp/frames.py) and written once per event-loop iteration, not once per frame.

Event subscriptions are consumed on a second connection, opened with the first subscription:
an :class:`~.event_connection.EventConnection`, which reads deliveries without aiormq (the
subscriptions and that connection are kept by :class:`~.subscriptions.Subscriptions`). It is
part of the transport: the loss of either connection is the transport's loss (the gaps are
recorded and both reconnect, as when the subscriptions shared the one connection).

Given several nodes of a cluster (:class:`~.nodes.Nodes`), the transport connects to the first
that answers and, after a loss, to the next ones first; ``target`` is the node it is on, and
the events connection goes to the same node.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Literal, cast

import aio_pika
import aiormq
from aiormq import Channel
from pamqp import commands as spec

from .amqp import frames
from .connect import connect_target
from .errors import NuropbTransportError
from .event_connection import EventConnection
from .events import Subscription
from .nodes import Nodes, connect_any, queue_down
from .outbox import (
    Confirms,
    Consumer,
    MessageHandler,
    Outbox,
    ReturnHandler,
    catch_returns,
    count_confirms,
    deliver_directly,
)
from .own_queues import OwnQueues, setup_error
from .subscriptions import Subscriptions
from .topology import Topology
from .transport_config import TransportConfig
from .urls import AmqpTarget

__all__ = ["Confirms", "Outbox", "Transport", "TransportConfig", "TransportState"]

log = logging.getLogger(__name__)

TransportState = Literal["idle", "connecting", "connected", "reconnecting", "closed"]
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
WATCH_INTERVAL = 0.25
HOT_FRAME_BUFFER = 1024  # frames read ahead on the hot channel (aiormq's default: 10)


class Transport:
    """Owns the connection; ``on_response`` and ``on_service`` get the raw deliveries."""

    def __init__(
        self,
        target: AmqpTarget | Nodes,
        config: TransportConfig,
        on_response: MessageHandler,
        on_service: MessageHandler | None = None,
        on_state: Callable[[TransportState], None] | None = None,
        on_return: ReturnHandler | None = None,
    ) -> None:
        self.nodes = target if isinstance(target, Nodes) else Nodes([target])
        self.target = self.nodes.first  # the node connected to (or to be tried first)
        self.config = config
        self._queues = OwnQueues(
            config, Consumer(on_response), Consumer(on_service) if on_service is not None else None
        )
        self._on_state = on_state
        self._on_return = on_return
        self.state: TransportState = "idle"
        self.reconnects = 0
        self.last_error: str | None = None
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: Channel | None = None  # consumers, responses, events, acks
        self._outbox: Outbox | None = None  # sends on _channel
        # sends on the confirm channel (commands: mandatory and confirmed), whose publisher
        # confirms are counted here (outbox.count_confirms)
        self._confirm_outbox: Outbox | None = None
        self._confirms: Confirms | None = None
        self._connected = asyncio.Event()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.subscriptions = Subscriptions(self._connect_events, self._live, self._not_connected)

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    # --- the attributes of nuropb's RMQTransport that user code reads, same shapes -----------

    @property
    def service_name(self) -> str:
        return self.config.service_name

    @property
    def instance_id(self) -> str:
        return self.config.instance_id

    @property
    def amqp_url(self) -> Any:
        return self.config.amqp_url

    @property
    def is_leader(self) -> bool:
        return True  # no leader election, as in nuropb 0.1.8

    @property
    def rpc_exchange(self) -> str:
        return self.config.topology.rpc_exchange

    @property
    def events_exchange(self) -> str:
        return self.config.topology.events_exchange

    @property
    def response_queue(self) -> str:
        return self.config.response_queue

    @property
    def rmq_configuration(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "rpc_exchange": cfg.topology.rpc_exchange,
            "events_exchange": cfg.topology.events_exchange,
            "dl_exchange": cfg.topology.dl_exchange,
            "dl_queue": cfg.topology.dl_queue,
            "service_queue": cfg.service_queue or Topology.service_queue(cfg.service_name),
            "response_queue": cfg.response_queue,
            "rpc_bindings": list(cfg.rpc_bindings),
            "event_bindings": list(cfg.event_bindings),
            "default_ttl": cfg.default_ttl,
            "client_only": cfg.service_queue is None,
        }

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
        if self.config.temporary and self._channel is not None and self.alive():
            assert self._connection is not None and self._connection.transport is not None
            underlay = cast(aiormq.Connection, self._connection.transport.connection)
            await self._queues.delete_service_queue(underlay, self._channel)
        connection, self._connection = self._connection, None
        events = self.subscriptions.detach()
        self._channel = None
        self._drop_outbox()
        for subscription in self.subscriptions.all:
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
        properties = {"connection_name": cfg.connection_name, "product": "nuropb-lab"}
        # a reconnection tries the nodes after the one lost first
        order = self.nodes.order(self.target if self.state == "reconnecting" else None)
        connection, self.target = await connect_any(
            order,
            lambda target: connect_target(
                target, timeout=cfg.connect_timeout, client_properties=properties
            ),
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
                confirm = cast(
                    Channel,
                    await underlay.channel(
                        publisher_confirms=True, frame_buffer_size=HOT_FRAME_BUFFER
                    ),
                )
                self._confirm_outbox = Outbox(confirm)
                self._confirms = count_confirms(confirm)
                # Deliveries come as soon as a consumer is declared; their acks need the outbox.
                self._outbox = Outbox(channel)
                if self._on_return is not None:
                    catch_returns(channel, self._on_return)
                deliver_directly(channel, self._spawn_logged)
                await self._queues.declare_and_consume(underlay, channel, self.target)
            events = await self.subscriptions.open()
        except BaseException as exc:
            self._drop_outbox()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=2)
            if isinstance(exc, NuropbTransportError):
                raise
            if isinstance(exc, (aiormq.exceptions.AMQPError, OSError, TimeoutError)):
                raise NuropbTransportError(
                    setup_error(exc, self.target, self.config.response_queue)
                ) from None
            raise
        self._connection, self._channel = connection, channel
        self.subscriptions.events = events
        # Every sign of loss names its own connection, so a late one never drops a newer one.
        lost = functools.partial(self._lost, connection)
        connection.close_callbacks.add(lambda _sender, exc=None: lost(self._reason(exc)))
        for ch in (channel, confirm):
            ch.closing.add_done_callback(lambda _: lost("a channel closed"))
        channel.on_consumer_cancel_callbacks.add(
            lambda frame: self._cancelled(connection, underlay, channel, frame.consumer_tag)
        )
        self._spawn(self._watch(connection))

    def _cancelled(
        self,
        connection: aio_pika.abc.AbstractConnection,
        underlay: aiormq.Connection,
        channel: Channel,
        tag: str | None,
    ) -> None:
        """The broker cancelled a consumer. The service queue's (its node went down, or it was
        deleted) is consumed again on the same channel once the queue is back: the calls in
        hand are still answered and acknowledged, and the API stays on the mesh meanwhile.
        Any other consumer's cancel is a loss."""
        if connection is not self._connection:
            return
        if tag is None or tag != self._queues.service_tag:
            self._lost(connection, "the broker cancelled a consumer")
            return
        self._queues.service_tag = None
        log.warning(
            "the broker cancelled the consumer of %s (its node is down, or it was deleted):"
            " consuming it again once it is back",
            self.config.service_queue,
        )
        self._spawn(
            self._queues.consume_again(
                underlay,
                channel,
                lambda: connection is self._connection and not self._stopping,
                RECONNECT_DELAYS,
            )
        )

    # --- event subscriptions ----------------------------------------------------------------

    def _connect_events(self) -> Coroutine[Any, Any, EventConnection]:
        return EventConnection.open(
            self.target,
            f"{self.config.connection_name}-events",
            self.config.topology.events_exchange,
            self._events_lost,
            timeout=self.config.connect_timeout,
        )

    def _events_lost(self, events: EventConnection, reason: str) -> None:
        connection = self._connection
        if events is self.subscriptions.events and connection is not None:
            self._lost(connection, f"the events connection: {reason}")

    def _live(self) -> object | None:
        """The connection while connected (checked now), else None."""
        return self._connection if self.alive() else None

    def _not_connected(self) -> NuropbTransportError:
        return NuropbTransportError(f"not connected to {self.target.masked} ({self.state})")

    @property
    def events(self) -> EventConnection | None:
        """The events connection, while there are subscriptions."""
        return self.subscriptions.events

    async def subscribe(self, subscription: Subscription) -> None:
        """Consume events by ``subscription`` now and again after every reconnection."""
        await self.subscriptions.subscribe(subscription, self.target)

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop consuming and delete the subscription's queue."""
        await self.subscriptions.unsubscribe(subscription)

    @contextlib.asynccontextmanager
    async def temp_channel(self) -> AsyncIterator[Channel]:
        """A short-lived channel, for operations that may close it (a passive declare)."""
        connection = self._connection
        if connection is None or not self.alive():
            raise self._not_connected()
        channel = await connection.channel(publisher_confirms=False)
        try:
            yield cast(Channel, await channel.get_underlay_channel())
        finally:
            if not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()

    async def queue_info(self, queue: str) -> tuple[int, int] | None:
        """(messages, consumers) of a queue, or None when it does not exist."""
        consuming = self.subscriptions.consuming(queue)
        if consuming is not None:
            events, subscription = consuming
            return await events.queue_info(subscription)
        try:
            async with self.temp_channel() as channel:
                ok = await channel.queue_declare(queue, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            down = queue_down(str(exc))
            if down is not None:  # it exists, on a node that is down
                raise down from None
            return None
        return int(ok.message_count or 0), int(ok.consumer_count or 0)

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
        for subscription in self.subscriptions.all:
            subscription.lost()
        self._connection = None
        self._channel = None
        self._drop_outbox()
        events = self.subscriptions.detach()
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
            where = f"{self.target.masked} {self.nodes.position(self.target)}".strip()
            log.info("reconnected to %s after %d attempt(s)", where, attempt)
            self._set_state("connected")
            return

    # --- publishing -------------------------------------------------------------------

    def _spawn_logged(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._consumer_done)

    def _consumer_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("consumer failed", exc_info=task.exception())

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
        return self._on_return is not None and self._outbox is not None

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
            raise self._not_connected()
        if mandatory and self._on_return is None:
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
        None when the transport is not connected (:meth:`publish` raises then)."""
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
        confirmed = self.send_confirmed(exchange, routing_key, body, properties)
        if confirmed is None:
            raise self._not_connected()
        await confirmed
