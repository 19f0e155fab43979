"""An API's own queues on its connection: declared as nuropb's transport declares them (the
shared exchanges only when missing, see topology.ensure_shared), consumed on the hot channel,
and the service queue consumed again in place when the broker cancels its consumer.

Checks and declarations that the broker may refuse run on channels of their own, so the hot
channel stays open.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import cast

import aiormq
from aiormq import Channel

from .connect import connect_target
from .management import ManagementAPI
from .nodes import queue_down
from .outbox import Consumer
from .topology import OpenChannel, Topology, declare_service_queue, ensure_shared
from .transport_config import TransportConfig
from .urls import AmqpTarget

__all__ = ["OwnQueues", "setup_error"]

log = logging.getLogger(__name__)


class OwnQueues:
    """The response queue (exclusive, no acks) and, for a service, its service queue."""

    def __init__(
        self, config: TransportConfig, on_response: Consumer, on_service: Consumer | None
    ) -> None:
        self.config = config
        self._on_response = on_response
        self._on_service = on_service
        self.service_tag: str | None = None  # the service queue's consumer, while consuming
        self._declared = False  # once connected, a reconnection may rename the response queue

    async def declare_and_consume(
        self, connection: aiormq.Connection, channel: Channel, target: AmqpTarget
    ) -> None:
        cfg = self.config
        open_channel = _channel_opener(connection)
        await ensure_shared(
            open_channel,
            cfg.topology,
            dead_letters=cfg.service_queue is not None,
            connect=functools.partial(connect_target, target),
            management=ManagementAPI.for_target(target),
            where=f"mesh {target.vhost!r}",
        )
        if cfg.service_queue is not None:
            await declare_service_queue(
                open_channel, cfg.topology, cfg.service_queue, cfg.rpc_bindings, cfg.event_bindings
            )
        await self._declare_response_queue(open_channel)
        await channel.basic_qos(prefetch_count=cfg.prefetch_count)
        await channel.basic_consume(
            cfg.response_queue, self._on_response, no_ack=True, exclusive=True
        )
        if cfg.service_queue is not None and self._on_service is not None:
            ok = await channel.basic_consume(cfg.service_queue, self._on_service, no_ack=False)
            self.service_tag = ok.consumer_tag
        self._declared = True

    async def _declare_response_queue(self, open_channel: OpenChannel) -> None:
        """Exclusive (nuropb's is not): peers only publish to it, by name, which an exclusive
        queue takes; and RabbitMQ 4.3 may deny the non-durable non-exclusive kind. Declared on
        a channel of its own, as a refusal closes the channel: on the first connection one
        means another API has this instance_id; on a reconnection, the name is also still
        held where RabbitMQ 4.3 (Khepri) keeps the queue of the lost connection as its node died
        (until the node is back), so another name is taken (answers on their way to the old
        one are lost: their calls end at their ttl)."""
        cfg = self.config
        channel = await open_channel()
        try:
            await channel.queue_declare(
                cfg.response_queue, durable=False, auto_delete=True, exclusive=True
            )
        except aiormq.exceptions.ChannelLockedResource:
            if not self._declared:
                raise
            held, cfg.response_queue = cfg.response_queue, Topology.renamed(cfg.response_queue)
            log.warning("response queue %s is still held: now %s", held, cfg.response_queue)
            channel = await open_channel()
            await channel.queue_declare(
                cfg.response_queue, durable=False, auto_delete=True, exclusive=True
            )
        await channel.close()

    async def delete_service_queue(self, connection: aiormq.Connection, channel: Channel) -> None:
        """A temporary service stops: cancel its consumer (the broker confirms once the queue
        has forgotten it), then delete the queue unless other instances consume it. Bounded
        by the connect timeout; a failure is logged (the queue stays, as nuropb's do)."""
        queue = self.config.service_queue
        if queue is None:
            return
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                if self.service_tag is not None:
                    await channel.basic_cancel(self.service_tag)
                    self.service_tag = None
                deleting = await _channel_opener(connection)()
                await deleting.queue_delete(queue, if_unused=True)
                await deleting.close()
        except aiormq.exceptions.ChannelPreconditionFailed:
            log.info("%s is kept: other instances consume it", queue)
        except (aiormq.exceptions.AMQPError, OSError, TimeoutError) as exc:
            log.warning("could not delete %s: %s: %s", queue, type(exc).__name__, exc)

    async def consume_again(
        self,
        connection: aiormq.Connection,
        channel: Channel,
        wanted: Callable[[], bool],
        delays: tuple[float, ...],
    ) -> None:
        """After the broker cancelled the service queue's consumer (its node went down, or it
        was deleted): declare the queue again until the broker takes it, then consume it on
        ``channel``, while ``wanted()`` (the connection is still the transport's)."""
        cfg = self.config
        assert cfg.service_queue is not None and self._on_service is not None
        open_channel = _channel_opener(connection)
        attempt = 0
        while wanted():
            await asyncio.sleep(delays[min(attempt, len(delays) - 1)])
            attempt += 1
            try:  # refused while its node is down
                await declare_service_queue(
                    open_channel, cfg.topology, cfg.service_queue, cfg.rpc_bindings,
                    cfg.event_bindings,
                )  # fmt: skip
            except (aiormq.exceptions.AMQPError, OSError, TimeoutError) as exc:
                log.info("%s is not back yet: %s: %s", cfg.service_queue, type(exc).__name__, exc)
                continue
            if not wanted():
                return
            try:
                ok = await channel.basic_consume(cfg.service_queue, self._on_service, no_ack=False)
            except (aiormq.exceptions.AMQPError, ConnectionError):
                return  # the channel closed: the connection's loss, handled as any
            self.service_tag = ok.consumer_tag
            log.info("consuming %s again", cfg.service_queue)
            return


def setup_error(exc: BaseException, target: AmqpTarget, response_queue: str) -> str:
    """What a failed declaration or consume on connect means, in one line."""
    text = target.scrub(str(exc))
    in_use = isinstance(exc, aiormq.exceptions.ChannelAccessRefused) and "exclusive use" in text
    locked = isinstance(exc, aiormq.exceptions.ChannelLockedResource)
    if in_use or locked:
        return (
            f"another API instance is connected with this instance_id: response queue"
            f" {response_queue!r} is in exclusive use (single-instance)"
        )
    if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
        return f"the mesh has a queue or exchange declared with other settings: {text}"
    down = queue_down(text)
    if down is not None:
        return str(down)
    return f"setting up queues on {target.masked} failed: {type(exc).__name__}: {text}"


def _channel_opener(connection: aiormq.Connection) -> OpenChannel:
    async def open_channel() -> Channel:
        return cast(Channel, await connection.channel(publisher_confirms=False))

    return open_channel
