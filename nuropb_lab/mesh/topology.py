"""Names and declarations of a nuropb mesh's exchanges and queues (one mesh = one vhost)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import aio_pika
import aiormq
from aiormq import Channel

from .connect import MeshNotFound, connect_target
from .errors import NuropbTransportError
from .management import ManagementAPI, ManagementUnavailable
from .nodes import Nodes, connect_any
from .urls import AmqpTarget

__all__ = [
    "Topology",
    "configure_mesh",
    "declare_dl_queue",
    "declare_service_queue",
    "denies_transient_queues",
    "ensure_shared",
]

log = logging.getLogger(__name__)

_RENAMED = re.compile(r"\.[0-9a-f]{6}$")  # what Topology.renamed adds
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
    def renamed(queue: str) -> str:
        """Another name of the same kind (``...-rq``, ``...-tq``) for one of an API's own
        exclusive queues whose name is still held after a connection loss: RabbitMQ 4.3 keeps
        the exclusive queue of a connection whose node died, locked (405), until that node is
        back. ``nuropb-x-{instance}-rq`` -> ``nuropb-x-{instance}.{6 hex}-rq``."""
        stem = _RENAMED.sub("", queue[:-3])
        return f"{stem}.{uuid.uuid4().hex[:6]}{queue[-3:]}"

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


OpenChannel = Callable[[], Awaitable[Channel]]
Connect = Callable[[], Awaitable[aio_pika.abc.AbstractConnection]]  # a new connection


class _Checker:
    """Declares on a channel of its own, opening another after each refusal (the broker
    closes the channel of a refused or failed declare)."""

    def __init__(self, open_channel: OpenChannel) -> None:
        self._open = open_channel
        self._channel: Channel | None = None

    async def channel(self) -> Channel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._open()
        return self._channel

    async def exists(self, declare: Callable[[Channel], Awaitable[Any]]) -> bool:
        """Run a passive declare: True when the object is there (no permission needed)."""
        try:
            await declare(await self.channel())
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        return True

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await self._channel.close()


def denies_transient_queues(exc: BaseException) -> bool:
    """Whether ``exc`` is a broker refusing a transient (non-durable) non-exclusive queue: the
    deprecated feature ``transient_nonexcl_queues``, denied by default in RabbitMQ 4.3.0 and by
    any 3.13 or 4.x told so. It closes the connection of the declare (541 INTERNAL_ERROR)."""
    return isinstance(exc, aiormq.exceptions.ConnectionInternalError) and (
        "transient_nonexcl_queues" in str(exc)
    )


async def ensure_shared(
    open_channel: OpenChannel,
    topology: Topology,
    *,
    dead_letters: bool,
    connect: Connect,
    management: ManagementAPI | None = None,
    where: str = "the mesh",
) -> list[str]:
    """Check the mesh's shared objects passively and create only those missing, with nuropb's
    flags; an existing one is used whatever its flags. Returns what was created.

    Everyone needs the RPC and events exchanges; ``dead_letters`` (services, and
    configure_mesh) adds the dead-letter exchange, and with a new one its queue (see
    :func:`declare_dl_queue`: on connections of its own from ``connect``, asking
    ``management`` first). A DLX that exists keeps its queues as they are: nuropb names them
    ``nuropb-dl-queue`` (configure_mesh) or ``nuropb-{service}-dl`` (a transport left to
    itself), and neither is the lab's to add.
    Passive declares need no permission, so a user without configure permission on shared
    objects connects to a mesh that has them.
    """
    checker = _Checker(open_channel)
    created: list[str] = []
    wanted = [(topology.rpc_exchange, "direct"), (topology.events_exchange, "topic")]
    if dead_letters:
        wanted.append((topology.dl_exchange, "fanout"))
    try:
        for name, kind in wanted:
            if await checker.exists(functools.partial(_exchange_exists, name)):
                continue
            try:
                await (await checker.channel()).exchange_declare(
                    name, exchange_type=kind, durable=True
                )
            except aiormq.exceptions.ChannelAccessRefused:
                raise NuropbTransportError(
                    f"{where} has no exchange {name!r}, and this user may not create it: set the"
                    " mesh up first (nuropb_lab.configure_mesh, or nuropb's configure_mesh)"
                ) from None
            created.append(name)
        if dead_letters and topology.dl_exchange in created:
            queue = topology.dl_queue
            if not await checker.exists(functools.partial(_queue_exists, queue)):
                await declare_dl_queue(connect, topology, management)
                created.append(queue)
    finally:
        await checker.close()
    if created:
        log.info("%s: created %s", where, ", ".join(created))
    return created


async def declare_dl_queue(
    connect: Connect, topology: Topology, management: ManagementAPI | None = None
) -> None:
    """Declare the DLQ and bind it to the DLX.

    With nuropb's flags (pika's defaults: not durable), so that nuropb's own setup helpers,
    which declare it actively, still work on the mesh, where the broker permits that; durable
    where it denies transient non-exclusive queues. What the broker permits is its
    configuration, not its version (Debian's 4.3.6 permits them, 4.3.0 does not, any 4.x can
    be set either way), so the broker is asked: its management API, when it answers, says so
    without side effects; else nuropb's declare is tried, and as a denial closes the
    connection (aiormq logs that as an error), each declare has a connection of its own."""
    permitted = await _permits_transient_queues(management)
    if permitted is not False:
        try:
            await _declare_dl_queue(await connect(), topology, durable=False)
            return
        except aiormq.exceptions.AMQPError as exc:
            if not denies_transient_queues(exc):
                raise
    log.info("the broker denies transient queues: %s is declared durable", topology.dl_queue)
    await _declare_dl_queue(await connect(), topology, durable=True)


async def _permits_transient_queues(management: ManagementAPI | None) -> bool | None:
    """What the management API says of transient non-exclusive queues; None when it cannot
    say (none given, unreachable, refused, or it does not list them)."""
    if management is None:
        return None
    try:
        features = await management.get("deprecated-features")
    except ManagementUnavailable:
        return None
    if features is None:  # 404: RabbitMQ before 3.13 deprecates nothing of the kind
        return True
    for feature in features:
        if feature.get("name") == "transient_nonexcl_queues" and "state" in feature:
            return bool(feature["state"] == "permitted")
    return None


async def _declare_dl_queue(
    connection: aio_pika.abc.AbstractConnection, topology: Topology, durable: bool
) -> None:
    try:
        channel = await connection.channel(publisher_confirms=False)
        underlay = cast(Channel, await channel.get_underlay_channel())
        await underlay.queue_declare(topology.dl_queue, durable=durable)
        # bound as pika binds without a key (the queue's name; a fanout ignores it)
        await underlay.queue_bind(
            topology.dl_queue, topology.dl_exchange, routing_key=topology.dl_queue
        )
    finally:
        with contextlib.suppress(Exception):  # closed already by a denial
            await connection.close()


async def declare_service_queue(
    open_channel: OpenChannel,
    topology: Topology,
    queue: str,
    rpc_bindings: list[str],
    event_bindings: list[str],
) -> None:
    """Declare a service's queue as nuropb does (durable, dead-lettered to the DLX) and bind
    it. A queue that exists with other arguments (an operator's quorum queue, another DLX)
    is used as it is: re-declaring it is what nuropb would fail on."""
    checker = _Checker(open_channel)
    try:
        try:
            await (await checker.channel()).queue_declare(
                queue, durable=True, auto_delete=False, arguments=topology.service_queue_arguments()
            )
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            if not await checker.exists(functools.partial(_queue_exists, queue)):
                raise
            log.warning(
                "using service queue %r as it is (declared with other settings: %s)", queue, exc
            )
        channel = await checker.channel()
        for key in rpc_bindings:
            await channel.queue_bind(queue, topology.rpc_exchange, routing_key=key)
        for key in event_bindings:
            await channel.queue_bind(queue, topology.events_exchange, routing_key=key)
    finally:
        await checker.close()


async def _exchange_exists(name: str, channel: Channel) -> None:
    await channel.exchange_declare(name, passive=True)


async def _queue_exists(name: str, channel: Channel) -> None:
    await channel.queue_declare(name, passive=True)


async def configure_mesh(
    amqp_url: str | Mapping[str, Any] | AmqpTarget | Sequence[Any] | Nodes,
    rpc_exchange: str | None = None,
    events_exchange: str | None = None,
    dl_exchange: str | None = None,
    dl_queue: str | None = None,
    management_url: str | None = None,
    timeout: float = 10.0,
) -> Topology:
    """Make the mesh ready: create the vhost when missing, and the exchanges, DLX and DLQ
    that are missing, with nuropb's flags (see :func:`ensure_shared`).

    Idempotent, and leaves an existing mesh as it is (one that nuropb's helpers made, too).
    The vhost is created through the management HTTP API, which is needed only when the vhost
    does not exist yet. Given several nodes, the first that answers is used.
    """
    nodes = Nodes.parse(amqp_url)
    target = nodes.first
    topology = Topology.from_settings(
        {
            "rpc_exchange": rpc_exchange,
            "events_exchange": events_exchange,
            "dl_exchange": dl_exchange,
            "dl_queue": dl_queue,
        }
    )
    api = ManagementAPI.for_target(nodes, management_url, timeout=timeout)

    async def connect() -> aio_pika.abc.AbstractConnection:
        connection, _ = await connect_any(
            nodes.order(), lambda node: connect_target(node, timeout=timeout)
        )
        return connection

    try:
        connection = await connect()
    except MeshNotFound:
        await api.create_vhost(target.vhost)
        connection = await connect()

    async def open_channel() -> Channel:
        channel = await connection.channel(publisher_confirms=False)
        return cast(Channel, await channel.get_underlay_channel())

    try:
        await ensure_shared(
            open_channel,
            topology,
            dead_letters=True,
            connect=connect,
            management=api,
            where=f"mesh {target.vhost!r}",
        )
    finally:
        await connection.close()
    return topology
