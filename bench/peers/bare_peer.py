"""A bare aio-pika echo, without mesh semantics: the floor the lab's RPC is measured against.

    python bare_peer.py serve URL QUEUE PREFETCH [--uvloop]
    python bare_peer.py client URL PREFETCH [--uvloop]

The service consumes QUEUE (prefetch PREFETCH) and publishes each body back to its
``reply_to`` with the same ``correlation_id``, then acks. The client waits on a future per
correlation id. aio-pika's high-level API as its documentation shows it (``Queue.consume``,
``Exchange.publish``, ``IncomingMessage.ack``), on channels without publisher confirms:
no JSON, no headers, no mandatory flag, no ttl.
"""

import asyncio
import uuid
from typing import Any

import aio_pika
from _common import command_loop, measure, peer_main

BODY = b'{"value":"ping"}'


async def serve(url: str, queue_name: str, prefetch: int) -> int:
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=False)
    await channel.set_qos(prefetch_count=prefetch)
    # exclusive: a broker that denies transient non-exclusive queues (RabbitMQ 4.3.0's
    # default) closes the connection of any other non-durable declare
    queue = await channel.declare_queue(queue_name, exclusive=True)
    exchange = channel.default_exchange

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if message.reply_to:
            await exchange.publish(
                aio_pika.Message(message.body, correlation_id=message.correlation_id),
                routing_key=message.reply_to,
            )
        await message.ack()

    await queue.consume(on_message)
    try:
        await command_loop({})
    finally:
        await connection.close()
    return 0


async def client(url: str, prefetch: int) -> int:
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=False)
    await channel.set_qos(prefetch_count=prefetch)
    replies = await channel.declare_queue(exclusive=True, auto_delete=True)
    exchange = channel.default_exchange
    pending: dict[str, asyncio.Future[bytes]] = {}

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        future = pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    await replies.consume(on_reply, no_ack=True)

    async def rpc(cmd: dict[str, Any]) -> dict[str, Any]:
        queue_name = cmd["service"]
        loop = asyncio.get_running_loop()

        async def call() -> None:
            correlation_id = uuid.uuid4().hex
            future: asyncio.Future[bytes] = loop.create_future()
            pending[correlation_id] = future
            await exchange.publish(
                aio_pika.Message(BODY, correlation_id=correlation_id, reply_to=replies.name),
                routing_key=queue_name,
            )
            await asyncio.wait_for(future, 30)

        return await measure(call, int(cmd["n"]), int(cmd["concurrency"]))

    try:
        await command_loop({"rpc": rpc})
    finally:
        await connection.close()
    return 0


def main() -> None:
    peer_main(__doc__, serve, client)


if __name__ == "__main__":
    main()
