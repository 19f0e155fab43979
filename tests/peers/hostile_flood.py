"""A hostile peer's floods, made of aio-pika alone (no nuropb_lab code), in a process of its own
so that what it builds and sends does not count in the lab's memory:

    python hostile_flood.py AMQP_URL big N SIZE     N requests, responses and events, every
                                                    field SIZE characters long, and one event
                                                    nested 900 levels deep
    python hostile_flood.py AMQP_URL topics N       N small events, each on a topic of its own

Prints ``DONE`` when everything is published.
"""

import asyncio
import json
import sys
from typing import Any

import aio_pika
import aiormq

RPC = "nuropb-rpc-exchange"
EVENTS = "nuropb-events-exchange"
HEADERS = {"nuropb_protocol": "0.1.1", "nuropb_version": "0.1.8", "encrypted": ""}


def message(kind: str, body: Any, **properties: Any) -> aio_pika.Message:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**HEADERS, "nuropb_type": kind}
    return aio_pika.Message(raw, headers=headers, content_type="application/json", **properties)


def big(n: int, size: int) -> Any:
    """(exchange, routing key, message): one at a time, so that few are in memory at once."""
    blob = "x" * size
    context = {"c": blob}
    for i in range(n):
        request = {
            "tag": "request",
            "service": "nobody",
            "method": "m" * size,
            "params": {"p": blob},
            "context": context,
            "correlation_id": f"big-{i}",
            "trace_id": "t" * size,
        }
        yield RPC, "nobody", message("request", request, correlation_id=f"big-{i}")
        response = {
            "tag": "response",
            "correlation_id": f"big-{i}",
            "context": context,
            "result": None,
            "error": {"error": "E" * size, "description": blob},
        }
        yield "", "nuropb-nobody-x-rq", message("response", response)
        event = {"tag": "event", "topic": "T" * size, "event": {"e": blob}, "context": context}
        yield EVENTS, "flood.big", message("event", event)
    deep = {"tag": "event", "topic": "flood.deep", "event": json.loads("[" * 900 + "]" * 900)}
    yield EVENTS, "flood.deep", message("event", deep)


async def topics(channel: aio_pika.abc.AbstractChannel, n: int) -> None:
    """On aio-pika's channel underneath (aiormq), without confirms: aio-pika's Message and
    publish cost more than the lab's taking of them on a busy two-core machine."""
    raw = await channel.get_underlay_channel()
    properties = aiormq.spec.Basic.Properties(
        headers={**HEADERS, "nuropb_type": "event"}, content_type="application/json"
    )
    body = b'{"tag":"event","topic":"%s","event":1,"context":{}}'
    for i in range(n):
        topic = f"spray.{i}"
        await raw.basic_publish(
            body % topic.encode(), exchange=EVENTS, routing_key=topic, properties=properties
        )


async def main(url: str, kind: str, args: list[str]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        if kind == "topics":
            await topics(await connection.channel(publisher_confirms=False), int(args[0]))
        else:
            channel = await connection.channel()
            exchanges = {
                "": channel.default_exchange,
                RPC: await channel.get_exchange(RPC, ensure=False),
                EVENTS: await channel.get_exchange(EVENTS, ensure=False),
            }
            for exchange, key, msg in big(int(args[0]), int(args[1])):
                await exchanges[exchange].publish(msg, routing_key=key)
    print("DONE", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
