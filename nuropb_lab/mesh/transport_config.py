"""What a transport is set up with: its own module, so that the transport and the parts it is
made of (own_queues.py) both import it and not each other."""

from __future__ import annotations

import dataclasses
from typing import Any

from .topology import Topology

__all__ = ["TransportConfig"]


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
    # what nuropb's RMQTransport tells user code (see Transport.rmq_configuration)
    service_name: str = ""
    instance_id: str = ""
    amqp_url: Any = dataclasses.field(default=None, repr=False)  # as given: a password in it
    default_ttl: int = 0
    # a temporary service: its queue is deleted when it stops (unless others consume it)
    temporary: bool = False
