"""The connection event subscriptions are consumed on: consume-only AMQP 0-9-1 on an asyncio
Protocol.

Through aiormq a delivered event cost ~70-100 us of CPU, most of it aiormq's frame reading
(see amqp/reader.py). Here the bytes of each socket read are parsed in ``data_received`` and
the deliveries they complete go to their subscriptions in the same call: no await, no queue
and no task per message or per frame.

One connection; per subscription an exclusive queue (with the subscription's ``x-max-length``
/ ``x-expires``), a binding per pattern and a ``no_ack`` consumer tagged with the queue's name.
Consumers live on channel 1; queues are declared, bound, looked at and deleted on a setup
channel (2), so that a refusal (a user without configure permission for the queue, a missing
exchange) closes only that channel and fails only that subscription: the broker closes the
channel of any refused command. Setup and the rare frames (everything but deliveries) are
pamqp's objects (written by pamqp, read by amqp/unmarshal.py), and every wait is bounded.
The connection ends, reported once to ``on_lost``, when the broker closes it or its consuming
channel, cancels a consumer (its queue was deleted), goes silent for two heartbeats, or the
socket is lost; reconnecting is the owner's job (the transport's).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import platform
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp import heartbeat as pamqp_heartbeat
from pamqp.base import Frame

from .._version import __version__
from .amqp.constants import PROTOCOL_HEADER
from .amqp.reader import DEFAULT_FRAME_MAX, Delivery, FrameError, FrameReader, MethodFrame
from .connect import cannot_connect, credentials_refused, mesh_not_found, tls_context
from .errors import NuropbTransportError
from .events import Subscription
from .urls import AmqpTarget

__all__ = ["BrokerClosed", "EventConnection"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Frame)

_CHANNEL = 1  # consumers
_SETUP = 2  # declares, binds, deletes: a refusal closes this channel only
_HEARTBEAT = pamqp_frame.marshal(pamqp_heartbeat.Heartbeat(), 0)
# The broker is taken for gone after this many heartbeat/2 ticks without a byte from it
# (two heartbeats, as RabbitMQ judges its clients).
_SILENT_TICKS = 4
CLOSE_TIMEOUT = 2.0


class BrokerClosed(NuropbTransportError):
    """The broker closed the connection or the channel."""

    def __init__(self, what: str, reply_code: int, reply_text: str) -> None:
        super().__init__(f"the broker closed the {what}: {reply_code} {reply_text}")
        self.reply_code = reply_code


class EventConnection(asyncio.Protocol):
    """Open with :meth:`open`; :meth:`add` / :meth:`remove` subscriptions; :meth:`close`."""

    def __init__(
        self,
        target: AmqpTarget,
        name: str,
        exchange: str,
        on_lost: Callable[[EventConnection, str], None],
        timeout: float,
    ) -> None:
        self.target = target
        self.name = name
        self.exchange = exchange  # the events exchange the queues are bound to
        self.timeout = timeout
        self.heartbeat = 0  # seconds, as tuned (0: none)
        self.frame_max = DEFAULT_FRAME_MAX
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._reader = FrameReader()
        self._transport: asyncio.Transport | None = None
        # Waiters for the broker's replies, in the order the requests went out.
        self._replies: collections.deque[tuple[int, type[Frame], asyncio.Future[Any]]] = (
            collections.deque()
        )
        self._consumers: dict[str, Subscription] = {}  # by consumer tag (= queue name)
        self._ended: str | None = None  # why the connection ended; None while it is open
        self._opened = False  # until open() is done, failures are open()'s to raise
        self._closing = False  # ended by us: nothing to report
        self._heard = False  # bytes came since the last heartbeat tick
        self._silent = 0  # heartbeat ticks without a byte
        self._timer: asyncio.TimerHandle | None = None
        self._setup_open = False
        self._setup_lock = asyncio.Lock()

    def __repr__(self) -> str:
        state = f"ended: {self._ended}" if self._ended else "open"
        return f"<EventConnection {self.name} to {self.target.masked}, {state}>"

    @property
    def is_open(self) -> bool:
        return self._ended is None and self._transport is not None

    @property
    def ended(self) -> str | None:
        return self._ended

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._consumers.values())

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        target: AmqpTarget,
        name: str,
        exchange: str,
        on_lost: Callable[[EventConnection, str], None],
        timeout: float = 10.0,
    ) -> EventConnection:
        """Connect, authenticate (PLAIN), tune, open the vhost and the channel, within
        ``timeout`` s; raises NuropbTransportError saying what failed."""
        ssl_context = tls_context(target)
        connection = cls(target, name, exchange, on_lost, timeout)
        stage = "connect"
        try:
            async with asyncio.timeout(timeout):
                await connection._loop.create_connection(
                    lambda: connection,
                    target.host,
                    target.port,
                    ssl=ssl_context,
                    server_hostname=target.host if ssl_context is not None else None,
                )
                start = connection._expect(0, spec.Connection.Start)
                connection._write(PROTOCOL_HEADER)
                started = await start
                stage = "authenticate"
                await connection._start(started)
                stage = "open"
                await connection._request(
                    0, spec.Connection.Open(target.vhost), spec.Connection.OpenOk
                )
                await connection._request(_CHANNEL, spec.Channel.Open(), spec.Channel.OpenOk)
        except BaseException as exc:
            connection._closing = True
            connection._end("not opened", abort=True)
            if isinstance(exc, BrokerClosed) and exc.reply_code == 403 and stage != "open":
                raise credentials_refused(target) from None
            if isinstance(exc, BrokerClosed) and exc.reply_code == 530:
                raise mesh_not_found(target) from None
            if isinstance(exc, NuropbTransportError) and stage == "authenticate":
                if "socket" in str(exc):  # a broker without authentication_failure_close
                    raise credentials_refused(target) from None
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"no answer within {timeout:g} s ({stage})")
            if isinstance(exc, (OSError, TimeoutError, NuropbTransportError)):
                raise cannot_connect(target, exc) from None
            raise
        connection._opened = True
        return connection

    async def _start(self, start: spec.Connection.Start) -> None:
        mechanisms = str(start.mechanisms).split()
        if "PLAIN" not in mechanisms:
            raise NuropbTransportError(f"the broker offers no PLAIN authentication: {mechanisms}")
        tune = self._expect(0, spec.Connection.Tune)
        self._send(
            0,
            spec.Connection.StartOk(
                client_properties={
                    "product": "nuropb-lab",
                    "version": __version__,
                    "platform": f"Python {platform.python_version()}",
                    "connection_name": self.name,
                    "capabilities": {
                        "authentication_failure_close": True,
                        "consumer_cancel_notify": True,
                    },
                },
                mechanism="PLAIN",
                response=f"\0{self.target.username}\0{self.target.password}",
                locale="en_US",
            ),
        )
        tuned = await tune
        # As the main connection (aiormq): the target's heartbeat if it sets one, else the
        # broker's proposal; frame_max 0 means no limit, which a reader cannot offer.
        wanted = self.target.heartbeat
        self.heartbeat = int(tuned.heartbeat if wanted is None else wanted)
        self.frame_max = tuned.frame_max or DEFAULT_FRAME_MAX
        self._reader.frame_max = self.frame_max
        self._send(
            0,
            spec.Connection.TuneOk(
                channel_max=tuned.channel_max, frame_max=self.frame_max, heartbeat=self.heartbeat
            ),
        )
        if self.heartbeat > 0:
            self._timer = self._loop.call_later(self.heartbeat / 2, self._tick)

    # --- subscriptions ---------------------------------------------------------------------

    async def _setup_channel(self) -> None:
        """Open the setup channel (again, after a refusal closed it)."""
        async with self._setup_lock:
            if not self._setup_open:
                opened = self._request(_SETUP, spec.Channel.Open(), spec.Channel.OpenOk)
                await self._all([opened], "opening the setup channel")
                self._setup_open = True

    async def _on_setup(self, requests: list[tuple[Frame, type[Frame]]], what: str) -> list[Any]:
        """Send ``requests`` on the setup channel together and wait for their replies; a
        refusal raises :class:`BrokerClosed` and leaves the connection open."""
        await self._setup_channel()
        replies = [self._request(_SETUP, frame, reply) for frame, reply in requests]
        return await self._all(replies, what)

    async def add(self, subscription: Subscription) -> None:
        """Declare the subscription's queue and bind its patterns (on the setup channel),
        consume it; then ``subscription.resumed()``."""
        queue = subscription.queue
        setup: list[tuple[Frame, type[Frame]]] = [
            (
                spec.Queue.Declare(queue=queue, exclusive=True, arguments=subscription.arguments),
                spec.Queue.DeclareOk,
            )
        ]
        for exchange, pattern in subscription.bindings(self.exchange):
            bind = spec.Queue.Bind(queue=queue, exchange=exchange, routing_key=pattern)
            setup.append((bind, spec.Queue.BindOk))
        await self._on_setup(setup, f"declaring {queue}")
        # registered first: deliveries can come in the same read as consume-ok
        self._consumers[queue] = subscription
        if subscription.raw_headers:
            self._reader.raw_headers.add(queue)
        consume = spec.Basic.Consume(queue=queue, consumer_tag=queue, no_ack=True)
        try:
            await self._all(
                [self._request(_CHANNEL, consume, spec.Basic.ConsumeOk)], f"consuming {queue}"
            )
        except BaseException:
            self._consumers.pop(queue, None)
            self._reader.raw_headers.discard(queue)
            raise
        subscription.resumed()

    async def bind(self, subscription: Subscription, exchange: str, routing_key: str) -> None:
        """Bind the subscription's queue to one more routing key (on the setup channel)."""
        bind = spec.Queue.Bind(queue=subscription.queue, exchange=exchange, routing_key=routing_key)
        await self._on_setup([(bind, spec.Queue.BindOk)], f"binding {subscription.queue}")

    async def cancel(self, subscription: Subscription) -> None:
        """Stop consuming the subscription's queue (the queue stays)."""
        queue = subscription.queue
        self._consumers.pop(queue, None)  # deliveries still on their way are dropped
        self._reader.raw_headers.discard(queue)
        cancel = self._request(_CHANNEL, spec.Basic.Cancel(consumer_tag=queue), spec.Basic.CancelOk)
        await self._all([cancel], f"cancelling the consumer of {queue}")

    async def remove(self, subscription: Subscription) -> None:
        """Stop consuming the subscription's queue and delete it."""
        await self.cancel(subscription)
        queue = subscription.queue
        await self._on_setup(
            [(spec.Queue.Delete(queue=queue), spec.Queue.DeleteOk)], f"deleting {queue}"
        )

    async def queue_info(self, subscription: Subscription) -> tuple[int, int]:
        """(messages, consumers) of the subscription's queue. Only this connection may look:
        the queue is exclusive, so a passive declare on another one is refused (405)."""
        declare = spec.Queue.Declare(queue=subscription.queue, passive=True)
        (ok,) = await self._on_setup([(declare, spec.Queue.DeclareOk)], "looking at a queue")
        return int(ok.message_count or 0), int(ok.consumer_count or 0)

    # --- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Close with the broker's agreement (a bounded wait), then the socket. The exclusive
        queues go with the connection."""
        if self._ended is not None:
            return
        self._closing = True
        close = spec.Connection.Close(200, "closed by nuropb-lab", 0, 0)
        try:
            await asyncio.wait_for(
                self._request(0, close, spec.Connection.CloseOk), timeout=CLOSE_TIMEOUT
            )
        except (NuropbTransportError, TimeoutError):
            pass
        self._end("closed")

    def abort(self) -> None:
        """Drop the connection now, without reporting a loss."""
        self._closing = True
        self._end("aborted", abort=True)

    # --- requests and replies --------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._transport is not None and self._ended is None:
            self._transport.write(data)

    def _send(self, channel: int, frame: Frame) -> None:
        self._write(pamqp_frame.marshal(frame, channel))

    def _expect(self, channel: int, reply: type[F]) -> asyncio.Future[F]:
        if self._ended is not None:
            raise NuropbTransportError(f"the events connection has ended ({self._ended})")
        future: asyncio.Future[F] = self._loop.create_future()
        self._replies.append((channel, reply, future))
        return future

    def _request(self, channel: int, frame: Frame, reply: type[F]) -> asyncio.Future[F]:
        future = self._expect(channel, reply)
        self._send(channel, frame)
        return future

    async def _all(self, replies: Iterable[asyncio.Future[Any]], what: str) -> list[Any]:
        """The ``replies`` (waited for within the timeout); a timeout ends the connection."""
        try:
            async with asyncio.timeout(self.timeout):
                return [await reply for reply in replies]
        except TimeoutError:
            reason = f"no answer from the broker within {self.timeout:g} s ({what})"
            self._end(reason, abort=True)
            raise NuropbTransportError(reason) from None

    def _end(self, reason: str, error: BaseException | None = None, abort: bool = False) -> None:
        """The one way the connection ends: waiters fail, the socket closes, and unless it
        was closed by us the owner hears of it (soon, not from inside this call)."""
        if self._ended is not None:
            return
        self._ended = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        failure = error or NuropbTransportError(f"the events connection ended: {reason}")
        while self._replies:
            future = self._replies.popleft()[2]
            if not future.done():
                future.set_exception(failure)
                future.exception()  # a waiter may be gone (cancelled); no "never retrieved"
        transport = self._transport
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()
        if self._opened and not self._closing:
            log.warning(
                "events connection %s to %s lost: %s", self.name, self.target.masked, reason
            )
            self._loop.call_soon(self._on_lost, self, reason)

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self._end("the broker closed the socket")
        else:
            self._end(f"the socket failed: {type(exc).__name__}: {exc}")
        self._transport = None

    def data_received(self, data: bytes) -> None:
        if self._ended is not None:
            return
        self._heard = True
        try:
            incoming = self._reader.feed(data)
        except FrameError as exc:
            self._end(f"unreadable frames from the broker: {exc}", abort=True)
            return
        # Deliveries go on in runs, one call per subscription and read.
        run: list[Delivery] = []
        for item in incoming:
            if item.__class__ is Delivery:
                assert isinstance(item, Delivery)
                if run and run[0].consumer_tag != item.consumer_tag:
                    self._hand_on(run)
                    run = []
                run.append(item)
            else:
                assert isinstance(item, MethodFrame)
                if run:
                    self._hand_on(run)
                    run = []
                self._on_frame(item.channel, item.frame)
                if self.ended is not None:
                    return
        if run:
            self._hand_on(run)

    def _hand_on(self, run: list[Delivery]) -> None:
        subscription = self._consumers.get(run[0].consumer_tag)
        if subscription is not None:  # else cancelled: its last deliveries are dropped
            subscription.take(run)

    def _on_frame(self, channel: int, frame: Frame | pamqp_heartbeat.Heartbeat) -> None:
        if isinstance(frame, pamqp_heartbeat.Heartbeat):
            return
        if isinstance(frame, spec.Connection.Close):
            self._send(0, spec.Connection.CloseOk())
            error = BrokerClosed("connection", frame.reply_code or 0, frame.reply_text or "")
            self._end(str(error), error)
        elif isinstance(frame, spec.Channel.Close) and channel == _SETUP:
            # a refused declare, bind or delete: that request fails, the consumers go on
            self._send(channel, spec.Channel.CloseOk())
            self._setup_open = False
            refused = BrokerClosed("setup channel", frame.reply_code or 0, frame.reply_text or "")
            self._fail_waiters(_SETUP, refused)
        elif isinstance(frame, spec.Channel.Close):
            # the consuming channel: nothing more can be consumed on it
            self._send(channel, spec.Channel.CloseOk())
            error = BrokerClosed("events channel", frame.reply_code or 0, frame.reply_text or "")
            self._end(str(error), error)
        elif isinstance(frame, spec.Basic.Cancel):
            self._end(f"the broker cancelled the consumer of {frame.consumer_tag} (queue deleted?)")
        elif isinstance(frame, (spec.Connection.Blocked, spec.Connection.Unblocked)):
            pass  # about publishing, which this connection does not do
        elif not self._answer(channel, frame):
            self._end(f"an unexpected {frame.name} on channel {channel}", abort=True)

    def _fail_waiters(self, channel: int, error: BaseException) -> None:
        for entry in [e for e in self._replies if e[0] == channel]:
            self._replies.remove(entry)
            if not entry[2].done():
                entry[2].set_exception(error)
                entry[2].exception()  # its waiter may be gone; no "never retrieved"

    def _answer(self, channel: int, frame: Frame) -> bool:
        """Settle the oldest waiter for this kind of reply on this channel. Not simply the
        oldest waiter: RabbitMQ may send a reply its queue process makes (basic.cancel-ok)
        after one its channel makes for a later request (queue.delete-ok)."""
        for index, (on, kind, future) in enumerate(self._replies):
            if on == channel and isinstance(frame, kind):
                del self._replies[index]
                if not future.done():
                    future.set_result(frame)
                return True
        return False

    def _tick(self) -> None:
        """Every heartbeat/2 s: a heartbeat to the broker, and a look whether it went silent.
        Counted in ticks, not by clock: a loop held up for a while is not a silent broker."""
        self._timer = None
        if self._ended is not None:
            return
        if self._heard:
            self._heard = False
            self._silent = 0
        else:
            self._silent += 1
            if self._silent >= _SILENT_TICKS:
                self._end(f"the broker sent nothing for {2 * self.heartbeat} s", abort=True)
                return
        self._write(_HEARTBEAT)
        self._timer = self._loop.call_later(self.heartbeat / 2, self._tick)
