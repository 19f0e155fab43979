"""The connection subscriptions are consumed on: what the broker sends it (closes, cancels,
bad bytes) without a broker, then against the real one: heartbeats both ways, a silent broker,
a close forced by the broker, a subscription the broker refuses, bodies over several frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pamqp import commands as spec
from pamqp import frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat
from support import close_connections, wait_until

import nuropb_lab as nl
from nuropb_lab.mesh import ManagementAPI, parse_amqp_url
from nuropb_lab.mesh.event_connection import EventConnection
from nuropb_lab.mesh.events import Subscription

HEADERS = {"nuropb_protocol": "0.1.1", "nuropb_type": "event", "encrypted": ""}


def event_frames(queue: str, topic: str, event: Any, tag: int = 1) -> bytes:
    body = json.dumps({"tag": "event", "topic": topic, "event": event, "context": {}}).encode()
    return (
        frame.marshal(spec.Basic.Deliver(queue, tag, False, "events", topic), 1)
        + frame.marshal(ContentHeader(0, len(body), spec.Basic.Properties(headers=HEADERS)), 1)
        + frame.marshal(ContentBody(body), 1)
    )


class FakeSocket:
    """What the protocol writes, and whether it closed."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed: str | None = None

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = self.closed or "close"

    def abort(self) -> None:
        self.closed = self.closed or "abort"


@contextlib.asynccontextmanager
async def offline() -> AsyncIterator[tuple[EventConnection, FakeSocket, list[str]]]:
    """An opened connection on a fake socket (no broker), and the losses it reports."""
    lost: list[str] = []
    target = parse_amqp_url("amqp://guest:guest@127.0.0.1:5672/mesh")
    connection = EventConnection(target, "t", "events", lambda _c, why: lost.append(why), 5)
    socket = FakeSocket()
    connection.connection_made(socket)  # type: ignore[arg-type]
    connection._opened = True
    yield connection, socket, lost


async def test_deliveries_go_to_their_subscription_in_runs() -> None:
    calls: dict[str, list[list[Any]]] = {"a": [], "b": []}
    async with offline() as (connection, _socket, lost):
        subs = {}
        for name in ("a", "b"):
            sub = Subscription([f"{name}.#"], print, queue=name)
            sub.take = lambda runs, n=name: calls[n].append([d.routing_key for d in runs])  # type: ignore[method-assign]
            connection._consumers[name] = subs[name] = sub
        data = b"".join(
            [
                event_frames("a", "a.1", 1),
                event_frames("a", "a.2", 2),
                event_frames("b", "b.1", 3),
                event_frames("a", "a.3", 4),
                event_frames("gone", "x", 5),  # a cancelled consumer's late delivery: dropped
            ]
        )
        connection.data_received(data[:100])
        connection.data_received(data[100:])
        assert calls == {"a": [["a.1", "a.2"], ["a.3"]], "b": [["b.1"]]}
        assert connection.is_open and not lost


@pytest.mark.parametrize(
    ("frame_in", "reply", "reason"),
    [
        (
            spec.Connection.Close(320, "CONNECTION_FORCED - test", 0, 0),
            spec.Connection.CloseOk(),
            "closed the connection: 320 CONNECTION_FORCED - test",
        ),
        (
            spec.Channel.Close(404, "NOT_FOUND - no queue", 50, 10),
            spec.Channel.CloseOk(),
            "closed the events channel: 404 NOT_FOUND",
        ),
        (spec.Basic.Cancel("tail-q", nowait=True), None, "cancelled the consumer of tail-q"),
        (spec.Basic.ConsumeOk("nobody-asked"), None, "unexpected Basic.ConsumeOk"),
    ],
)
async def test_what_the_broker_ends_is_reported_once(
    frame_in: Any, reply: Any, reason: str
) -> None:
    async with offline() as (connection, socket, lost):
        pending = connection._expect(1, spec.Queue.DeclareOk)
        channel = 0 if isinstance(frame_in, spec.Connection.Close) else 1
        connection.data_received(frame.marshal(frame_in, channel))
        connection.data_received(frame.marshal(Heartbeat(), 0))  # after the end: ignored
        connection.connection_lost(None)
        await asyncio.sleep(0)
        assert len(lost) == 1 and reason in lost[0]
        assert not connection.is_open and socket.closed
        if reply is not None:
            assert bytes(socket.written) == frame.marshal(reply, channel)
        with pytest.raises(nl.NuropbTransportError, match=reason.split(":")[0]):
            await pending


async def test_bytes_that_are_not_amqp_end_it() -> None:
    async with offline() as (connection, socket, lost):
        connection.data_received(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await asyncio.sleep(0)
        assert socket.closed == "abort" and "unreadable frames" in lost[0]


async def test_heartbeats_out_and_silence_noticed_in_ticks() -> None:
    beat = frame.marshal(Heartbeat(), 0)
    async with offline() as (connection, socket, lost):
        connection.heartbeat = 10

        def tick() -> None:  # as the timer would, without waiting 5 s
            connection._tick()
            if connection._timer is not None:
                connection._timer.cancel()

        for _ in range(3):  # three ticks without a byte from the broker: still open
            tick()
        assert bytes(socket.written) == beat * 3 and connection.is_open
        connection.data_received(beat)
        for _ in range(4):  # a byte came: the count starts again at the next tick
            tick()
        assert connection.is_open
        tick()
        await asyncio.sleep(0)
        assert not connection.is_open and lost == ["the broker sent nothing for 20 s"]
        assert socket.closed == "abort"


async def test_closed_by_us_is_no_loss() -> None:
    async with offline() as (connection, socket, lost):
        closing = asyncio.ensure_future(connection.close())
        await asyncio.sleep(0)
        assert bytes(socket.written) == frame.marshal(
            spec.Connection.Close(200, "closed by nuropb-lab", 0, 0), 0
        )
        connection.data_received(frame.marshal(spec.Connection.CloseOk(), 0))
        await closing
        connection.connection_lost(None)
        await asyncio.sleep(0)
        assert socket.closed == "close" and connection.ended == "closed" and not lost


# --- against the broker -------------------------------------------------------------------


class Proxy:
    """A TCP proxy to the broker that can stop passing bytes either way (a silent broker)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(source, sink))
            self._tasks.add(task)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await source.read(65536):
                await self.flowing.wait()
                sink.write(data)
        sink.close()


async def test_heartbeats_keep_it_open_and_a_silent_broker_is_noticed(mesh_url: str) -> None:
    seen: list[nl.MeshEvent] = []
    target = parse_amqp_url(f"{mesh_url}?heartbeat=1")
    async with nl.RMQAPI(target) as api:
        subscription = await api.subscribe(["beat.#"], seen.append)
        events = api.transport.events
        assert events is not None and events.heartbeat == 1
        # RabbitMQ closes a connection that misses two heartbeats: ours go out
        await asyncio.sleep(3.5)
        assert events.is_open and subscription.active and api.transport.reconnects == 0
        await api.publish_event("beat.after", 1, {})
        await wait_until(lambda: seen, what="an event after the idle time")

    lost: list[str] = []
    async with Proxy(target.host, target.port) as proxy:
        via_proxy = parse_amqp_url(
            f"amqp://guest:guest@127.0.0.1:{proxy.port}/{target.vhost}?heartbeat=1"
        )
        events = await EventConnection.open(
            via_proxy, "silent", "nuropb-events-exchange", lambda _c, why: lost.append(why), 5
        )
        try:
            await asyncio.sleep(1.5)
            assert events.is_open and not lost
            proxy.flowing.clear()
            started = asyncio.get_running_loop().time()
            await wait_until(lambda: lost, timeout=6, what="the silence to be noticed")
            assert lost == ["the broker sent nothing for 2 s"] and not events.is_open
            assert asyncio.get_running_loop().time() - started < 4
        finally:
            events.abort()


async def test_a_close_forced_by_the_broker_is_a_gap_then_resumed(
    fresh_mesh_url: str, management: ManagementAPI
) -> None:
    seen: list[nl.MeshEvent] = []
    async with nl.RMQAPI(fresh_mesh_url) as api:
        subscription = await api.subscribe(["forced.#"], seen.append)
        first = api.transport.events
        vhost = fresh_mesh_url.rsplit("/", 1)[1]
        assert await close_connections(management, vhost, expect=1, name_contains="-events") == 1
        await wait_until(lambda: api.transport.reconnects == 1, timeout=15, what="reconnection")
        assert first is not None and "320 CONNECTION_FORCED" in str(first.ended)
        assert "320 CONNECTION_FORCED" in str(api.transport.last_error)
        await wait_until(lambda: subscription.active, what="the subscription to resume")
        ((lost_at, resumed_at),) = subscription.gaps
        assert resumed_at is not None and resumed_at >= lost_at
        assert api.transport.events is not first
        await api.publish_event("forced.after", 1, {})
        await wait_until(lambda: seen, what="an event after the gap")


async def test_a_subscription_the_broker_refuses(fresh_mesh_url: str) -> None:
    seen: list[nl.MeshEvent] = []
    async with nl.RMQAPI(fresh_mesh_url) as api:
        with pytest.raises(nl.NuropbTransportError, match="406 PRECONDITION_FAILED"):
            await api.subscribe(["bad.#"], seen.append, max_length=-1)
        assert api.connected and api.transport.reconnects == 0 and api.transport.events is None
        good = await api.subscribe(["good.#"], seen.append)
        events = api.transport.events
        # The refusal closes the setup channel only: the good one goes on, without a gap.
        with pytest.raises(nl.NuropbTransportError, match="406 PRECONDITION_FAILED"):
            await api.subscribe(["bad.#"], seen.append, max_length=-1)
        assert events is not None and events.is_open and api.transport.events is events
        assert good.active and good.gaps == [] and api.transport.reconnects == 0
        await api.publish_event("good.after", 1, {})
        await wait_until(lambda: seen, what="an event on the good subscription")
        # and the setup channel opens again for the next one
        again = await api.subscribe(["again.#"], seen.append)
        await api.publish_event("again.x", 2, {})
        await wait_until(lambda: len(seen) == 2, what="an event on the next subscription")
        assert again.active and [e.event for e in seen] == [1, 2]


async def test_bodies_over_several_frames_and_the_last_unsubscribe_closes_it(
    mesh_url: str,
) -> None:
    seen: list[nl.MeshEvent] = []
    async with nl.RMQAPI(mesh_url) as api:
        subscription = await api.subscribe(["big.#"], seen.append)
        events = api.transport.events
        assert events is not None and events.frame_max == 131_072
        big = {"blob": "x" * 400_000, "n": list(range(1000))}
        for i in range(3):
            await api.publish_event("big.one", {**big, "i": i}, {})
        await wait_until(lambda: len(seen) == 3, what="three large events")
        assert [e.event for e in seen] == [{**big, "i": i} for i in range(3)]
        other = await api.subscribe(["small.#"], seen.append)
        assert api.transport.events is events and len(events.subscriptions) == 2
        await api.unsubscribe(subscription)
        assert events.is_open and await api.queue_info(subscription.queue) is None
        await api.unsubscribe(other)
        assert not events.is_open and events.ended == "closed"
        assert api.transport.events is None and api.transport.reconnects == 0
