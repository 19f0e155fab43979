"""RMQAPI: the nuropb API on aio-pika, as a client and as a service.

Interface and wire format follow nuropb 0.1.8 (see docs/PROTOCOL.md), without its
defects: every request ends by its ttl, unroutable calls fail at once, unpaired and duplicate
responses are counted and ignored, and a served object refuses plaintext calls to encrypted
methods and calls whose token is refused.

Connection loss: the API reconnects by itself and declares its queues and consumers again.
A request waiting for its response keeps waiting, within its ttl, across the reconnection (its
answer may still arrive). A call made while reconnecting waits for the connection within its
ttl and fails with NuropbTransportError if the connection is not back by then. ``disconnect()``
fails every waiting call at once with NuropbTransportError.

The jobs live apart: the client's calls in calls.py (responses.py pairs the answers,
descriptions.py keeps what services say of themselves), the service side in serving.py,
events in events.py and event_connection.py, the connection in transport.py.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Final

from aiormq.abc import DeliveredMessage
from cryptography.hazmat.primitives.asymmetric import rsa

from . import codec, crypto
from .calls import Caller, rpc_payload
from .codec import DecodeLimits
from .describe import DESCRIBE_METHOD
from .descriptions import MAX_DESCRIBE_BYTES, Descriptions
from .errors import (
    NuropbTransportError,
)
from .events import MeshEvent, Subscription
from .known_keys import KnownKeys
from .nodes import Nodes
from .responses import Answer, Responses
from .service import Outcome, ServiceExecutor, event_body
from .serving import ServiceSide, message_properties
from .topology import Topology
from .transport import Transport, TransportConfig, TransportState
from .urls import AmqpTarget

__all__ = ["RMQAPI"]

log = logging.getLogger(__name__)

DEFAULT_TTL_MS: Final = 60 * 60 * 1000  # nuropb's default: one hour
DEFAULT_PREFETCH: Final = 20


class RMQAPI:
    """The nuropb API. Without ``service_name`` it is a client; with one it serves
    ``service_instance`` on the mesh (and is a client too).

    ``transport_settings``: rpc_bindings, event_bindings, prefetch_count, default_ttl (ms),
    rpc_exchange, events_exchange, dl_exchange, dl_queue, service_queue, response_queue,
    connect_timeout (s), reconnect (bool), temporary (bool: a service's queue is deleted when it
    stops, unless other instances consume it), private_key (RSAPrivateKey), max_body_bytes,
    max_depth, failover_strategy ("round-robin" or "shuffle", for several nodes), known_keys
    (a :class:`~.known_keys.KnownKeys` the keys of other services are pinned in; default one
    of its own, in memory).

    ``amqp_url``: one URL (or nuropb's dict form), or the nodes of a cluster: a list of them,
    a comma-separated string, or the dict form with a list of ``hosts`` (see mesh/nodes.py).
    """

    def __init__(
        self,
        amqp_url: str
        | Mapping[str, Any]
        | AmqpTarget
        | Sequence[str | Mapping[str, Any] | AmqpTarget]
        | Nodes,
        service_name: str | None = None,
        instance_id: str | None = None,
        service_instance: object | None = None,
        rpc_exchange: str | None = None,
        events_exchange: str | None = None,
        transport_settings: Mapping[str, Any] | None = None,
    ) -> None:
        settings = dict(transport_settings or {})
        self._nodes = Nodes.parse(amqp_url, settings.get("failover_strategy") or "round-robin")
        self._mesh_name = self._nodes.vhost
        self._instance_id = instance_id or uuid.uuid4().hex
        self._client_only = service_name is None
        if service_name is None:
            service_name = f"{self._mesh_name}-client"
        elif service_instance is None:
            raise ValueError("a service_instance is needed to serve on the mesh")
        self._service_name = service_name
        self._service_instance = service_instance
        self._topology = Topology.from_settings(
            {
                **settings,
                "rpc_exchange": rpc_exchange or settings.get("rpc_exchange"),
                "events_exchange": events_exchange or settings.get("events_exchange"),
            }
        )
        self._default_ttl = int(settings.get("default_ttl") or DEFAULT_TTL_MS)
        self._limits = DecodeLimits(
            max_bytes=int(settings.get("max_body_bytes") or codec.DEFAULT_LIMITS.max_bytes),
            max_depth=int(settings.get("max_depth") or codec.DEFAULT_LIMITS.max_depth),
        )
        self._private_key: rsa.RSAPrivateKey | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats: collections.Counter[str] = collections.Counter()
        self._serving: ServiceSide | None = None
        service_queue = None
        rpc_bindings: list[str] = []
        event_bindings: list[str] = []
        if not self._client_only:
            # what callers may call is fixed now: the methods its describe lists
            executor = ServiceExecutor(service_instance, service_name, self._public_pem)
            self._private_key = settings.get("private_key") or getattr(
                service_instance, "_private_key", None
            )
            if self._private_key is None and executor.encrypted_methods:
                # Encrypted methods need a key; make one rather than serve them unusable.
                self._private_key = crypto.new_private_key()
                log.info("%s: generated an RSA key for its encrypted methods", service_name)
            self._serving = ServiceSide(
                executor,
                service_name,
                self._private_key,
                self._limits,
                self.stats,
                self._publish_event,
                self._spawn,
            )
            service_queue = settings.get("service_queue") or Topology.service_queue(service_name)
            rpc_bindings = list(dict.fromkeys([service_name, *settings.get("rpc_bindings", [])]))
            event_bindings = list(dict.fromkeys(settings.get("event_bindings", [])))
        self._responses = Responses(self.stats, self._limits)
        config = TransportConfig(
            topology=self._topology,
            response_queue=settings.get("response_queue")
            or Topology.response_queue(service_name, self._instance_id),
            service_queue=service_queue,
            rpc_bindings=rpc_bindings,
            event_bindings=event_bindings,
            prefetch_count=int(settings.get("prefetch_count") or DEFAULT_PREFETCH),
            connection_name=f"{self._mesh_name}-{service_name}-{self._instance_id}",
            connect_timeout=float(settings.get("connect_timeout") or 10.0),
            reconnect=bool(settings.get("reconnect", True)),
            service_name=service_name,
            instance_id=self._instance_id,
            amqp_url=amqp_url,
            default_ttl=self._default_ttl,
            temporary=service_queue is not None and bool(settings.get("temporary")),
        )
        self._transport = Transport(
            self._nodes,
            config,
            on_response=self._responses.on_response,
            on_service=self._serving.on_delivery if self._serving is not None else None,
            on_state=self._on_state,
            on_return=self._on_returned,
        )
        known_keys = settings.get("known_keys")
        self._descriptions = Descriptions(
            self._ask_description,
            self._mesh_name,
            known_keys if isinstance(known_keys, KnownKeys) else KnownKeys(),
        )
        self._caller = Caller(
            self._transport,
            self._topology,
            self._responses,
            self._descriptions,
            self.stats,
            self._default_ttl,
            self._spawn,
        )
        self._state_listeners: list[Callable[[TransportState], None]] = []
        if self._serving is not None:
            self._serving.transport = self._transport

    # --- identity and state -------------------------------------------------------------

    @property
    def service_name(self) -> str:
        return self._service_name

    @property
    def instance_id(self) -> str:
        return self._instance_id

    @property
    def mesh_name(self) -> str:
        return self._mesh_name

    @property
    def target(self) -> AmqpTarget:
        """The node connected to (or to be tried first)."""
        return self._transport.target

    @property
    def nodes(self) -> Nodes:
        return self._nodes

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def is_leader(self) -> bool:
        return True  # no leader election: every instance may configure the mesh

    @property
    def client_only(self) -> bool:
        return self._client_only

    @property
    def connected(self) -> bool:
        return self._transport.connected

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def service_instance(self) -> object | None:
        return self._service_instance

    @property
    def private_key(self) -> rsa.RSAPrivateKey | None:
        return self._private_key

    @property
    def in_flight(self) -> int:
        """Requests waiting for their answer (not describes listening for late answers)."""
        return sum(not p.future.done() for p in self._responses.waiting.values())

    def __repr__(self) -> str:
        role = "client" if self._client_only else f"service {self._service_name!r}"
        return f"<RMQAPI {role} on {self.target.masked} ({self._transport.state})>"

    def add_state_listener(self, listener: Callable[[TransportState], None]) -> None:
        """Call ``listener(state)`` on every transport state change (in the loop thread)."""
        self._state_listeners.append(listener)

    def _on_state(self, state: TransportState) -> None:
        for listener in list(self._state_listeners):
            try:
                listener(state)
            except Exception:
                log.exception("state listener failed")

    def _on_returned(self, message: DeliveredMessage) -> None:
        self._caller.on_returned(message)

    def _public_pem(self) -> str | None:
        return crypto.public_pem(self._private_key) if self._private_key is not None else None

    # --- lifecycle --------------------------------------------------------------------

    async def connect(self) -> None:
        if self.connected:
            log.debug("already connected")
            return
        await self._transport.start()

    async def disconnect(self) -> None:
        await self._transport.stop()
        self._responses.fail_all(NuropbTransportError("disconnected while waiting for a response"))
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> RMQAPI:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background send failed: %s", task.exception())

    # --- client: requests, commands, events --------------------------------------------

    async def request(
        self,
        service: str,
        method: str,
        params: dict[str, Any],
        context: dict[str, Any],
        ttl: int | None = None,
        trace_id: str | None = None,
        rpc_response: bool = True,
        encrypted: bool = False,
        correlation_id: str | None = None,
    ) -> Any:
        """Call ``service.method(**params)`` and wait for its response, at most ``ttl`` ms.

        With ``rpc_response`` the result is returned and a remote error raised as its nuropb
        class (also a NuropbMessageError); without it the response dict is returned.
        ``correlation_id`` (beyond nuropb's signature) fixes the id instead of a fresh one.
        """
        payload = rpc_payload("request", service, method, params, context, trace_id, correlation_id)
        return await self._caller.request(payload, ttl, rpc_response, encrypted)

    def command(
        self,
        service: str,
        method: str,
        params: dict[str, Any],
        context: dict[str, Any],
        ttl: int | None = None,
        trace_id: str | None = None,
        encrypted: bool = False,
    ) -> asyncio.Future[None]:
        """Send a command (no response). Returns a future: await it to learn whether the
        broker routed it (NuropbNotDeliveredError if no service is bound), or ignore it."""
        payload = rpc_payload("command", service, method, params, context, trace_id)
        return self._caller.command(payload, ttl, encrypted)

    def publish_event(
        self,
        topic: str,
        event: Any,
        context: dict[str, Any],
        trace_id: str | None = None,
        encrypted: bool = False,
        target: list[Any] | None = None,
    ) -> asyncio.Task[None]:
        """Publish an event on ``topic``. Events travel in plaintext (as in nuropb), so
        ``encrypted`` is accepted and ignored. Returns a task that may be awaited."""
        body = event_body(topic, event, context, trace_id, uuid.uuid4().hex, target)
        return self._spawn(self._publish_event(body))

    async def _publish_event(self, body: dict[str, Any]) -> None:
        raw = codec.encode_json(body)
        properties = message_properties("event", body["correlation_id"], body["trace_id"])
        await self._transport.publish(
            self._topology.events_exchange, body["topic"], raw, properties
        )
        self.stats["events_published"] += 1

    async def subscribe(
        self,
        patterns: list[str],
        on_event: Callable[[MeshEvent], None],
        max_length: int = 100_000,
        expires_ms: int = 60_000,
    ) -> Subscription:
        """Receive events whose topic matches any of ``patterns`` (``*`` one word, ``#`` any)
        in ``on_event`` (called in the loop), until :meth:`unsubscribe`; kept across
        reconnections, with the gaps recorded on the subscription."""
        if not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise ValueError("subscribe needs one or more non-empty topic patterns")
        subscription = Subscription(
            list(patterns),
            on_event,
            max_length=max_length,
            expires_ms=expires_ms,
            limits=self._limits,
        )
        await self._transport.subscribe(subscription)
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        await self._transport.unsubscribe(subscription)

    async def queue_info(self, queue: str) -> tuple[int, int] | None:
        """(messages, consumers) of a queue on the mesh, or None when there is no such queue."""
        return await self._transport.queue_info(queue)

    # --- client: discovery and keys -----------------------------------------------------

    async def describe_service(
        self, service_name: str, refresh: bool = False, ttl: int | None = None
    ) -> dict[str, Any]:
        """The service's ``nuropb_describe``, cached; ``refresh`` asks the service again."""
        return await self._descriptions.describe(service_name, refresh, ttl)

    def cached_description(self, service_name: str) -> dict[str, Any] | None:
        return self._descriptions.cached(service_name)

    @property
    def descriptions(self) -> Descriptions:
        """What this API knows of other services: descriptions, pinned keys, and whether a
        call must be encrypted (shared with the Lab)."""
        return self._descriptions

    def public_key(self, service_name: str) -> rsa.RSAPublicKey | None:
        """The service's key as it may be encrypted for (pinned, 2048 bits or more)."""
        return self._descriptions.key(service_name)

    async def _ask_description(
        self,
        service_name: str,
        ttl: int,
        window: Callable[[Answer], float],
        on_late: Callable[[Answer], None],
    ) -> list[Answer]:
        payload = rpc_payload("request", service_name, DESCRIBE_METHOD, {}, {}, uuid.uuid4().hex)
        limits = DecodeLimits(MAX_DESCRIBE_BYTES, self._limits.max_depth)
        return await self._caller.gather(payload, ttl, window, on_late, limits)

    async def requires_encryption(self, service_name: str, method_name: str) -> bool:
        """Whether the method requires encryption: as described, or as seen before (a
        requirement is never lowered)."""
        await self.describe_service(service_name)
        required = self._descriptions.requires(service_name, method_name)
        if required is None:
            raise ValueError(f"Method {method_name} not found on service {service_name}")
        return required

    async def has_public_key(self, service_name: str) -> bool:
        await self.describe_service(service_name)
        return self._descriptions.key(service_name) is not None

    # --- nuropb's transport entry point ------------------------------------------------

    def receive_transport_message(
        self,
        service_message: dict[str, Any],
        message_complete_callback: Callable[[list[dict[str, Any]], str], None],
        metadata: dict[str, Any],
    ) -> None:
        """nuropb's entry point for a decoded transport message (``TransportServicePayload``).

        A response completes its waiting request. A service message runs on the served object;
        ``message_complete_callback(responses, acknowledgement)`` gets the result.
        """
        nuropb_type = service_message.get("nuropb_type")
        payload = service_message.get("nuropb_payload") or {}
        correlation_id = service_message.get("correlation_id") or payload.get("correlation_id")
        if nuropb_type == "response":
            self._responses.complete(correlation_id, payload)
            return
        if self._serving is None:
            error = {
                "error": "NuropbHandlingError",
                "description": "no service instance to handle it",
            }
            message_complete_callback(
                ServiceSide.transport_responses(service_message, Outcome("reject", error=error)),
                "reject",
            )
            return
        self._serving.run_transport_message(service_message, message_complete_callback, metadata)
