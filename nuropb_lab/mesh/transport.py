"""The AMQP transport: one aio-pika connection, its queues and consumers, and reconnection.

The hot path (consume, publish, ack) runs on aio-pika's underlying aiormq channels: aio-pika's
``Queue.consume`` would add a second task per delivered message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Literal, cast

import aio_pika
import aiormq
from aiormq import Channel
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from .connect import connect_target
from .errors import NuropbNotDeliveredError, NuropbTransportError
from .events import Subscription
from .topology import Topology, declare_exchanges
from .urls import AmqpTarget

__all__ = ["Transport", "TransportConfig", "TransportState"]

log = logging.getLogger(__name__)

TransportState = Literal["idle", "connecting", "connected", "reconnecting", "closed"]
MessageHandler = Callable[[DeliveredMessage], Coroutine[Any, Any, None]]
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
WATCH_INTERVAL = 0.25


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
    ) -> None:
        self.target = target
        self.config = config
        self._on_response = on_response
        self._on_service = on_service
        self._on_state = on_state
        self.state: TransportState = "idle"
        self.reconnects = 0
        self.last_error: str | None = None
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: Channel | None = None  # consumers, responses, events, acks
        self._confirm_channel: Channel | None = None  # mandatory requests and commands
        self._connected = asyncio.Event()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._subscriptions: list[Subscription] = []

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
        self._channel = self._confirm_channel = None
        for subscription in self._subscriptions:
            subscription.active = False
        self._set_state("closed")
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
                plain = await connection.channel(publisher_confirms=False)
                confirming = await connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                channel = cast(Channel, await plain.get_underlay_channel())
                confirm = cast(Channel, await confirming.get_underlay_channel())
                await self._declare_and_consume(channel)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=2)
            if isinstance(exc, NuropbTransportError):
                raise
            if isinstance(exc, (aiormq.exceptions.AMQPError, OSError, TimeoutError)):
                raise NuropbTransportError(self._describe_setup_error(exc)) from None
            raise
        self._connection, self._channel, self._confirm_channel = connection, channel, confirm
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
        for subscription in self._subscriptions:
            await self._declare_subscription(channel, subscription)

    async def _declare_subscription(self, channel: Channel, subscription: Subscription) -> None:
        await channel.queue_declare(
            subscription.queue, exclusive=True, arguments=subscription.arguments
        )
        for pattern in subscription.patterns:
            await channel.queue_bind(
                subscription.queue, self.config.topology.events_exchange, routing_key=pattern
            )
        await channel.basic_consume(
            subscription.queue, subscription.deliver, no_ack=True, consumer_tag=subscription.queue
        )
        subscription.resumed()

    async def subscribe(self, subscription: Subscription) -> None:
        """Consume events by ``subscription`` now and again after every reconnection."""
        if not self.alive() or self._channel is None:
            raise NuropbTransportError(f"not connected to {self.target.masked} ({self.state})")
        self._subscriptions.append(subscription)
        try:
            await self._declare_subscription(self._channel, subscription)
        except BaseException:
            self._subscriptions.remove(subscription)
            raise

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop consuming and delete the subscription's queue."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        subscription.active = False
        if self.alive() and self._channel is not None:
            with contextlib.suppress(aiormq.exceptions.AMQPError):
                await self._channel.basic_cancel(subscription.queue)
            async with self.temp_channel() as channel:
                await channel.queue_delete(subscription.queue)

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

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.Basic.Properties,
        mandatory: bool = False,
    ) -> None:
        """Publish; a mandatory message the broker cannot route raises NuropbNotDeliveredError."""
        connection = self._connection
        channel = self._confirm_channel if mandatory else self._channel
        if connection is None or channel is None or not self.alive():
            raise NuropbTransportError(f"not connected to {self.target.masked} ({self.state})")
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
