"""The lab changes nothing outside itself: importing and using nuropb_lab leaves aiormq and pamqp
as they are for every other user in the process.

The lab's own connections read with its frame receiver and decoders (mesh/amqp/receiver.py):
a lab service takes a request whose correlation id is not UTF-8 (dead-letters it), or whose
timestamp is past what a datetime holds (answers it), and keeps its connection. A plain
aio-pika connection in the same process still refuses such a message as it does without
nuropb_lab: pamqp raises on the short string and aiormq drops the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from typing import Any

import aio_pika
import aiormq.connection
import pamqp.decode
import pamqp.frame
import pytest
from aiormq.abc import ChannelFrame
from support import close_connections, wait_until

import nuropb_lab as nl
from nuropb_lab.mesh import ManagementAPI, Topology, codec, parse_amqp_url
from nuropb_lab.mesh.amqp import frames

SERVICE = "isolation"

# What aiormq and pamqp hold, by name, that the lab once replaced for the whole process.
SNAPSHOT = """
import aiormq.connection, pamqp.decode, pamqp.frame

def snapshot():
    held = {"aiormq.connection.FrameReceiver": aiormq.connection.FrameReceiver,
            "pamqp.frame.unmarshal": pamqp.frame.unmarshal}
    held.update((f"METHODS[{k!r}]", v) for k, v in pamqp.decode.METHODS.items())
    held.update((f"TABLE_MAPPING[{k!r}]", v) for k, v in pamqp.decode.TABLE_MAPPING.items())
    held.update((f"pamqp.decode.{n}", getattr(pamqp.decode, n)) for n in dir(pamqp.decode))
    return {name: id(value) for name, value in held.items()}
"""


class Echo:
    def echo(self, value: Any) -> Any:
        return value


def test_importing_nuropb_lab_changes_nothing_in_aiormq_or_pamqp() -> None:
    """In a fresh interpreter: the same objects before and after importing every module of
    the lab that touches the wire."""
    script = SNAPSHOT + (
        "before = snapshot()\n"
        "import nuropb_lab, nuropb_lab.magics, nuropb_lab.lab.tap\n"
        "import nuropb_lab.mesh.connect, nuropb_lab.mesh.event_connection\n"
        "import nuropb_lab.mesh.amqp.receiver, nuropb_lab.mesh.amqp.reader\n"
        "after = snapshot()\n"
        "print(sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)))\n"
    )
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def assert_aiormq_and_pamqp_are_their_own() -> None:
    """Everything in pamqp's decoder tables is pamqp's own function of that name, and aiormq's
    FrameReceiver is aiormq's."""
    receiver = aiormq.connection.FrameReceiver
    assert (receiver.__module__, receiver.__qualname__) == ("aiormq.connection", "FrameReceiver")
    assert pamqp.frame.unmarshal.__module__ == "pamqp.frame"
    tables = [*pamqp.decode.METHODS.values(), *pamqp.decode.TABLE_MAPPING.values()]
    for function in tables:
        assert function.__module__ == "pamqp.decode", function
        assert getattr(pamqp.decode, function.__name__) is function, function
    assert pamqp.decode.METHODS["shortstr"] is pamqp.decode.short_str
    assert pamqp.decode.METHODS["table"] is pamqp.decode.field_table
    assert pamqp.decode.TABLE_MAPPING[b"F"] is pamqp.decode.field_table


def request(channel: int, queue: str, reply_to: str, correlation_id: str) -> bytes:
    """The frames of a good nuropb request to ``queue``."""
    body = {
        "tag": "request",
        "service": SERVICE,
        "method": "echo",
        "params": {"value": 1},
        "correlation_id": "c1",
        "context": {},
        "trace_id": None,
    }
    properties = frames.Properties(
        content_type="application/json",
        correlation_id=correlation_id,
        reply_to=reply_to,
        headers=codec.headers_for("request", None, False, "0.1.8"),
    )
    return frames.publish(channel, "", queue, json.dumps(body).encode(), properties, False, 4096)


def request_with_cid_not_utf8(channel: int, queue: str, reply_to: str) -> bytes:
    """A good request whose correlation_id property is not UTF-8 (pamqp encodes only str, so
    the bytes are put in by hand)."""
    data = request(channel, queue, reply_to, "@@")
    assert data.count(b"\x02@@") == 1
    return data.replace(b"\x02@@", b"\x02\xff\xfe")


def request_with_timestamp(channel: int, queue: str, reply_to: str, seconds: int) -> bytes:
    """A good request with a timestamp property of ``seconds`` (pamqp encodes a datetime)."""
    data = request(channel, queue, reply_to, "c2")
    header_at = 7 + int.from_bytes(data[3:7], "big") + 1  # past the method frame
    size = int.from_bytes(data[header_at + 3 : header_at + 7], "big")
    payload = bytearray(data[header_at + 7 : header_at + 7 + size])
    payload[13] |= 0x40  # the timestamp's flag; no property after it is set
    payload += seconds.to_bytes(8, "big")
    header = data[header_at : header_at + 3] + len(payload).to_bytes(4, "big") + payload
    return data[:header_at] + header + b"\xce" + data[header_at + 8 + size :]


async def test_a_lab_service_takes_what_a_plain_aio_pika_connection_still_refuses(
    mesh_url: str,
) -> None:
    async with nl.RMQAPI(mesh_url, SERVICE, service_instance=Echo()) as service:
        plain = await aio_pika.connect(mesh_url)
        try:
            channel = await plain.channel(publisher_confirms=False)
            underlay = await channel.get_underlay_channel()
            replies = await channel.declare_queue(exclusive=True)
            answers: dict[str, Any] = {}

            async def answered(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                answers[str(message.correlation_id)] = json.loads(message.body)

            await replies.consume(answered, no_ack=True)

            async def dead_letters() -> int:
                looking = await plain.channel()
                try:
                    queue = await looking.declare_queue("nuropb-dl-queue", passive=True)
                    return int(queue.declaration_result.message_count or 0)
                finally:
                    await looking.close()

            before = await dead_letters()
            data = request_with_cid_not_utf8(
                underlay.number, Topology.service_queue(SERVICE), replies.name
            )
            await underlay.write_queue.put(ChannelFrame(payload=data, should_close=False))

            # the lab service read it (on its own receiver), dead-lettered it and carries on
            async def dead_lettered() -> bool:
                return await dead_letters() == before + 1

            await wait_until(dead_lettered, timeout=10, what="the request in the DLQ")
            # a timestamp past what a datetime holds (the broker takes it): answered
            data = request_with_timestamp(
                underlay.number, Topology.service_queue(SERVICE), replies.name, 2**64 - 1
            )
            await underlay.write_queue.put(ChannelFrame(payload=data, should_close=False))
            await wait_until(lambda: "c2" in answers, timeout=10, what="the answer to c2")
            assert answers["c2"]["result"] == 1 and answers["c2"]["error"] is None
            assert await dead_letters() == before + 1
            async with nl.RMQAPI(mesh_url) as client:
                assert await client.request(SERVICE, "echo", {"value": 2}, {}, ttl=10_000) == 2
            assert service.connected and service.transport.reconnects == 0
            assert_aiormq_and_pamqp_are_their_own()

            # the same message to a plain aio-pika consumer in this process: refused as
            # without nuropb_lab (pamqp raises, aiormq drops the connection)
            taken: list[aio_pika.abc.AbstractIncomingMessage] = []

            async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                taken.append(message)

            queue = await channel.declare_queue(exclusive=True)
            await queue.consume(take, no_ack=True)
            data = request_with_cid_not_utf8(underlay.number, queue.name, replies.name)
            await underlay.write_queue.put(ChannelFrame(payload=data, should_close=False))
            closing = underlay.connection.closing
            await asyncio.wait([closing], timeout=10)
            assert closing.done(), "the plain connection took the message"
        finally:
            await plain.close()
    assert taken == []
    error = closing.exception()
    assert isinstance(error, aiormq.exceptions.InvalidFrameError), repr(error)
    assert "codec can't decode byte 0xff" in str(error)
    assert_aiormq_and_pamqp_are_their_own()


async def test_only_the_labs_own_connections_are_kept_quiet_in_aiormqs_log(
    mesh_url: str, management: ManagementAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that closes connections: aiormq logs it for a plain connection as it does
    without the lab, and not for the lab's (its transport says it in one line), whether a Lab
    or an RMQAPI holds them; aiormq's logger keeps the level it was given."""
    logger = logging.getLogger("aiormq.connection")
    caplog.set_level(logging.WARNING, logger.name)
    vhost = parse_amqp_url(mesh_url).vhost
    lab = nl.Lab(timeout=10)
    try:
        lab.connect(mesh_url)
        async with nl.RMQAPI(mesh_url) as client:
            plain = await aiormq.connect(mesh_url)
            await close_connections(management, vhost, expect=3)
            await wait_until(lambda: plain.is_closed, timeout=10, what="the plain one closed")
            await wait_until(
                lambda: client.transport.reconnects and lab.connection().api.transport.reconnects,
                timeout=20,
                what="the lab's connections back",
            )
            assert await client.request(SERVICE + "-none", "x", {}, {}, ttl=2000) is None
    except nl.NuropbNotDeliveredError:
        pass  # the call proves the client is back: nobody serves that service
    finally:
        lab.close()
    closes = [r for r in caplog.records if "Unexpected connection close" in r.getMessage()]
    assert len(closes) == 1, [r.getMessage() for r in caplog.records]
    assert logger.level == logging.WARNING  # as the test set it
