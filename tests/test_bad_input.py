"""Bad messages on a lab service queue: rejected (dead-lettered), answered when they can be,
and the service carries on."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from support import wait_until

import nuropb_lab as nl
from nuropb_lab.mesh import codec

GOOD_HEADERS = codec.headers_for("request", "t-bad", False, "0.1.8")


def request_body(**overrides: Any) -> bytes:
    body = {
        "tag": "request",
        "service": "calc",
        "method": "add",
        "params": {"a": 1, "b": 2},
        "context": {},
    }
    body.update(overrides)
    return json.dumps(body).encode()


CASES: list[tuple[str, bytes, dict[str, Any] | None, str, str]] = [
    ("not json", b"{not json", GOOD_HEADERS, "NuropbMessageError", "not valid UTF-8 JSON"),
    ("not utf-8", b"\xff\xfe\xfd", GOOD_HEADERS, "NuropbMessageError", "not valid UTF-8 JSON"),
    ("json list", b"[1, 2]", GOOD_HEADERS, "NuropbMessageError", "is a JSON list"),
    ("no headers", request_body(), None, "NuropbMessageError", "no nuropb headers"),
    (
        "no protocol",
        request_body(),
        {**GOOD_HEADERS, "nuropb_protocol": None},
        "NuropbMessageError",
        "None",
    ),
    (
        "old protocol",
        request_body(),
        {**GOOD_HEADERS, "nuropb_protocol": "0.0.9"},
        "NuropbMessageError",
        "0.0.9",
    ),
    (
        "no type",
        request_body(),
        {**GOOD_HEADERS, "nuropb_type": None},
        "NuropbMessageError",
        "nuropb_type",
    ),
    (
        "bad type",
        request_body(),
        {**GOOD_HEADERS, "nuropb_type": "gossip"},
        "NuropbMessageError",
        "gossip",
    ),
    (
        "response",
        request_body(),
        {**GOOD_HEADERS, "nuropb_type": "response"},
        "NuropbMessageError",
        "response",
    ),
    ("no method", request_body(method=None), GOOD_HEADERS, "NuropbMessageError", "'method'"),
    ("list params", request_body(params=[1]), GOOD_HEADERS, "NuropbMessageError", "'params'"),
    ("bad context", request_body(context="x"), GOOD_HEADERS, "NuropbMessageError", "'context'"),
    (
        "garbage cipher",
        b"abc.def",
        {**GOOD_HEADERS, "encrypted": "yes"},
        "NuropbMessageError",
        "decrypted",
    ),
    ("wrong params", request_body(params={"x": 1}), GOOD_HEADERS, "NuropbValidationError", "'a'"),
    (
        "too big",
        request_body(params={"a": "x" * 5000, "b": 1}),
        GOOD_HEADERS,
        "NuropbMessageError",
        "limit",
    ),
    (
        "too deep",
        request_body(params={"a": json.loads("[" * 80 + "]" * 80)}),
        GOOD_HEADERS,
        "NuropbMessageError",
        "deep",
    ),
]


class Calc:
    def add(self, a: int, b: int) -> int:
        return a + b

    @nl.publish_to_mesh(requires_encryption=True)
    def secret(self) -> str:
        return "s"


@pytest.fixture
async def raw(
    mesh_url: str,
) -> AsyncIterator[tuple[aio_pika.abc.AbstractChannel, aio_pika.abc.AbstractQueue]]:
    settings = {"max_body_bytes": 4096, "max_depth": 50}
    async with nl.RMQAPI(
        mesh_url, service_name="calc", service_instance=Calc(), transport_settings=settings
    ):
        connection = await aio_pika.connect(mesh_url)
        async with connection:
            channel = await connection.channel()
            replies = await channel.declare_queue(exclusive=True)
            yield channel, replies


async def dlq_count(channel: aio_pika.abc.AbstractChannel, expect: int | None = None) -> int | bool:
    """Messages in the DLQ (or whether there are ``expect`` of them)."""
    queue = await channel.declare_queue("nuropb-dl-queue", passive=True)
    count = int(queue.declaration_result.message_count or 0)
    return count if expect is None else count == expect


async def next_reply(
    queue: aio_pika.abc.AbstractQueue, timeout: float = 5.0
) -> aio_pika.abc.AbstractIncomingMessage:
    async with asyncio.timeout(timeout):
        while True:
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                return message
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("label", "body", "headers", "error", "text"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_message_is_answered_and_dead_lettered(
    raw: tuple[aio_pika.abc.AbstractChannel, aio_pika.abc.AbstractQueue],
    label: str,
    body: bytes,
    headers: dict[str, Any] | None,
    error: str,
    text: str,
) -> None:
    channel, replies = raw
    before = await dlq_count(channel)
    correlation_id = uuid.uuid4().hex
    await channel.default_exchange.publish(
        aio_pika.Message(
            body, headers=headers, correlation_id=correlation_id, reply_to=replies.name
        ),
        routing_key="nuropb-calc-sq",
    )
    reply = await next_reply(replies)
    assert reply.correlation_id == correlation_id
    assert reply.headers["nuropb_type"] == "response"
    response = json.loads(reply.body)
    assert response["error"]["error"] == error
    assert text in response["error"]["description"]
    assert response["correlation_id"] == correlation_id
    await wait_until(lambda: dlq_count(channel, before + 1), what="the message in the DLQ")


async def test_bad_message_without_reply_to_is_only_dead_lettered(
    mesh_url: str, raw: tuple[aio_pika.abc.AbstractChannel, aio_pika.abc.AbstractQueue]
) -> None:
    channel, replies = raw
    before = await dlq_count(channel)
    await channel.default_exchange.publish(aio_pika.Message(b"junk"), routing_key="nuropb-calc-sq")
    await wait_until(lambda: dlq_count(channel, before + 1), what="the message in the DLQ")
    assert await replies.get(no_ack=True, fail=False) is None
    async with nl.RMQAPI(mesh_url) as client:  # the service still answers
        assert await client.request("calc", "add", {"a": 2, "b": 3}, {}, ttl=5000) == 5
