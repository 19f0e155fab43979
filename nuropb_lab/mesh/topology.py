"""Names and declarations of a nuropb mesh's exchanges and queues (one mesh = one vhost)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

from aiormq import Channel

from .connect import MeshNotFound, connect_target
from .management import ManagementAPI
from .urls import AmqpTarget, parse_amqp_url

__all__ = ["Topology", "configure_mesh", "declare_exchanges"]

SERVICE_QUEUE_PREFIX = "nuropb-"
SERVICE_QUEUE_SUFFIX = "-sq"


@dataclasses.dataclass(frozen=True)
class Topology:
    rpc_exchange: str = "nuropb-rpc-exchange"
    events_exchange: str = "nuropb-events-exchange"
    dl_exchange: str = "nuropb-dl-exchange"
    dl_queue: str = "nuropb-dl-queue"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Topology:
        defaults = cls()
        return cls(
            **{
                f.name: settings.get(f.name) or getattr(defaults, f.name)
                for f in dataclasses.fields(cls)
            }
        )

    @staticmethod
    def service_queue(service_name: str) -> str:
        return f"{SERVICE_QUEUE_PREFIX}{service_name}{SERVICE_QUEUE_SUFFIX}"

    @staticmethod
    def response_queue(service_name: str, instance_id: str) -> str:
        return f"nuropb-{service_name}-{instance_id}-rq"

    @staticmethod
    def service_from_queue(queue_name: str) -> str | None:
        """The service name of a ``nuropb-{service}-sq`` queue, else None."""
        if queue_name.startswith(SERVICE_QUEUE_PREFIX) and queue_name.endswith(
            SERVICE_QUEUE_SUFFIX
        ):
            name = queue_name[len(SERVICE_QUEUE_PREFIX) : -len(SERVICE_QUEUE_SUFFIX)]
            return name or None
        return None

    def service_queue_arguments(self) -> dict[str, Any]:
        return {"x-dead-letter-exchange": self.dl_exchange}


async def declare_exchanges(channel: Channel, topology: Topology) -> None:
    """Declare the exchanges, the DLX and the DLQ; idempotent."""
    await channel.exchange_declare(topology.dl_exchange, exchange_type="fanout", durable=True)
    await channel.queue_declare(topology.dl_queue, durable=True)
    await channel.queue_bind(topology.dl_queue, topology.dl_exchange, routing_key="")
    await channel.exchange_declare(topology.events_exchange, exchange_type="topic", durable=True)
    await channel.exchange_declare(topology.rpc_exchange, exchange_type="direct", durable=True)


async def configure_mesh(
    amqp_url: str | Mapping[str, Any] | AmqpTarget,
    rpc_exchange: str | None = None,
    events_exchange: str | None = None,
    dl_exchange: str | None = None,
    dl_queue: str | None = None,
    management_url: str | None = None,
    timeout: float = 10.0,
) -> Topology:
    """Make the mesh ready: create the vhost when missing, declare exchanges, DLX and DLQ.

    Idempotent. The vhost is created through the management HTTP API, which is needed only
    when the vhost does not exist yet.
    """
    target = parse_amqp_url(amqp_url)
    topology = Topology.from_settings(
        {
            "rpc_exchange": rpc_exchange,
            "events_exchange": events_exchange,
            "dl_exchange": dl_exchange,
            "dl_queue": dl_queue,
        }
    )
    api = ManagementAPI.for_target(target, management_url, timeout=timeout)
    try:
        connection = await connect_target(target, timeout=timeout)
    except MeshNotFound:
        await api.create_vhost(target.vhost)
        connection = await connect_target(target, timeout=timeout)
    try:
        channel = await connection.channel(publisher_confirms=False)
        await declare_exchanges(cast(Channel, await channel.get_underlay_channel()), topology)
    finally:
        await connection.close()
    return topology
