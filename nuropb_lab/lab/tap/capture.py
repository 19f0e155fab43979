"""A wire tap's capture: its queue, and the hot path from deliveries to rows and calls.

Two sources, one subscription class (so the events connection's fast reader, reconnection and
gaps come with it):

- the firehose: the queue is bound to ``amq.rabbitmq.trace`` with ``publish.#`` and
  ``deliver.#``; every message published on the vhost comes as a ``publish.{exchange}``
  record (the original properties in its headers, the original body as its body) and every
  delivery to a consumer as a ``deliver.{queue}`` record. Responses are seen (published to the
  default exchange), so requests pair with their responses;
- a queue of its own: bound to the RPC exchange with each service's routing key and to the
  events exchange with ``#``: copies of requests, commands and events as routed, no
  responses.

The queue is exclusive, bounded (``x-max-length``, oldest dropped) and expiring: the tap takes
nothing from the services, whose queues are untouched. Per socket read, :meth:`Capture.take`
turns the deliveries into row tuples (one per message, in :data:`COLUMNS` order) and call
records, under one lock, appending to bounded deques: O(1) a message, nothing waits. What a
row keeps is bounded in bytes (limits.py): each field, and all the rows together.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ...mesh import codec
from ...mesh.amqp.reader import Delivery
from ...mesh.errors import NuropbMessageError
from ...mesh.events import Subscription, tail_queue_name
from ...mesh.limits import (
    CONTEXT_BYTES,
    DECODE_DEPTH,
    ERROR_BYTES,
    NAMES_KEPT,
    ROUTED_QUEUES,
    ROW_BYTES,
    TAP_DECODE_BYTES,
    TEXT_BYTES,
    clip_text,
    clip_value,
)
from ..errors import OptionError
from ..redact import Redactor, redactor
from ..rows import Rows
from .calls import Call, Calls
from .records import read_trace

__all__ = [
    "COLUMNS",
    "FIREHOSE_KEYS",
    "KINDS",
    "TRACE_EXCHANGE",
    "UNKNOWN_KIND",
    "Capture",
    "FirehoseSubscription",
    "TapSubscription",
    "known_kind",
    "queue_label",
]

log = logging.getLogger(__name__)

TRACE_EXCHANGE = "amq.rabbitmq.trace"
FIREHOSE_KEYS = ("publish.#", "deliver.#")

#: a row of ``tap.df``, one per message seen
COLUMNS = (
    "time",
    "kind",
    "caller",  # who sent a request or command, who gets a response, who published an event
    "service",  # the service called (or answering)
    "method",
    "topic",
    "correlation_id",
    "trace_id",
    "bytes",
    "encrypted",
    "payload",  # params, result or event, when plaintext
    "error",  # a response's error: "Class: description"
    "truncated",  # a field cut to a preview (over its limit: body_limit for the payload)
    "context",
    "routed_to",  # an event's subscribers (firehose only): who the broker routed it to
    "connection",  # the publisher's connection, as the broker names it (firehose only)
)
#: a row's kind: what a peer's ``nuropb_type`` header says, if it is one of these, else
#: ``"unknown"``; mapped where it is read, so no row, view or saved file holds what a peer
#: wrote there
KINDS = ("request", "response", "command", "event")
UNKNOWN_KIND = "unknown"
_DECODE = codec.DecodeLimits(TAP_DECODE_BYTES, DECODE_DEPTH)
#: bodies up to this size have what a row keeps walked for redaction straight away; a larger
#: one is looked through as bytes first (redact.py), and walked only when something may match
WALK_BYTES = 512
DESCRIBE = "nuropb_describe"  # its answer's method names are not keys to redact

_labels: dict[str, str] = {}


def queue_label(queue: str) -> str:
    """Who a queue stands for: ``nuropb-{service}-{instance}-rq`` -> the service (or the
    client label ``{vhost}-client``), ``nuropb-{service}-sq`` -> the service, a lab's tail or
    tap queue -> ``lab tail`` / ``lab tap``; anything else, its name."""
    label = _labels.get(queue)
    if label is not None:
        return label
    label = queue
    if queue.startswith("nuropb-"):
        name = queue[7:-3]
        if queue.endswith("-rq"):
            service, dash, _instance = name.rpartition("-")
            label = service if dash and service else name
        elif queue.endswith("-sq"):
            label = name or queue
        elif queue.endswith("-tq") and name.startswith("lab-"):
            label = "lab " + name[4:].partition("-")[0]
    if len(_labels) < NAMES_KEPT:
        _labels[queue] = label
    return label


class TapSubscription(Subscription):
    """The tap's queue: bound to the firehose, or to the RPC and events exchanges."""

    def __init__(
        self,
        capture: Capture,
        firehose: bool,
        rpc_exchange: str,
        services: list[str],
        events: bool,
        max_length: int,
    ) -> None:
        super().__init__(
            patterns=[],
            on_event=_ignore,
            max_length=max_length,
            queue=tail_queue_name("tap"),
        )
        self.capture = capture
        self.firehose = firehose
        self.rpc_exchange = rpc_exchange
        self.services = list(services)
        self.events = events

    @classmethod
    def make(
        cls,
        capture: Capture,
        firehose: bool,
        rpc_exchange: str,
        services: list[str],
        events: bool,
        max_length: int,
    ) -> TapSubscription:
        kind = FirehoseSubscription if firehose else TapSubscription
        return kind(capture, firehose, rpc_exchange, services, events, max_length)

    def bindings(self, events_exchange: str) -> list[tuple[str, str]]:
        if self.firehose:
            return [(TRACE_EXCHANGE, key) for key in FIREHOSE_KEYS]
        keys = [(self.rpc_exchange, service) for service in self.services]
        return keys + ([(events_exchange, "#")] if self.events else [])

    def take(self, deliveries: Iterable[Delivery]) -> None:
        try:
            if self.firehose:
                self.capture.take_firehose(deliveries)
            else:
                self.capture.take_copies(deliveries)
        except Exception:  # a bug here must not end the events connection
            log.exception("%s: the tap could not take its deliveries", self.queue)


class FirehoseSubscription(TapSubscription):
    """On the firehose: trace records come with their header tables undecoded (records.py
    reads the few fields the tap uses)."""

    raw_headers = True


def _ignore(_event: Any) -> None:
    return None


class Capture:
    """What a tap saw: the newest ``max_rows`` messages (at most ``max_bytes`` of them in all),
    the newest ``max_calls`` calls and the requests still waiting for their response (at most
    ``max_pending``, for at most ``pending_ttl`` seconds)."""

    def __init__(
        self,
        max_rows: int,
        max_calls: int,
        max_pending: int,
        pending_ttl: float,
        body_limit: int,
        services: frozenset[str] | None,
        events: bool,
        max_bytes: int,
        redact: Redactor | None = None,
    ) -> None:
        if max_rows < 1 or max_calls < 1 or max_pending < 1:
            raise OptionError("max_rows, max_calls and max_pending must be at least 1")
        self.rows: Rows[tuple[Any, ...]] = Rows(max_rows, max_bytes)
        self.calls = Calls(max_calls, max_pending, pending_ttl)
        self.body_limit = body_limit
        # the most a row's fields keep: payload, context, error, method, topic, trace id
        self.fields_max = body_limit + CONTEXT_BYTES + ERROR_BYTES + 3 * TEXT_BYTES
        self.services = services  # None: every service
        self.events = events
        self.lock = threading.Lock()
        self.paused = False
        self.started = time.time()
        self.received = 0  # trace records or copies taken from the queue
        self.kept = 0  # messages kept as rows
        self.skipped = 0  # arrived while paused
        self.other = 0  # not nuropb messages, or filtered out
        self.undecodable = 0
        # what is redacted before a row is kept (redact.py): the redactor in force when the
        # tap began, and how many values it redacted
        self.redactor = redactor() if redact is None else redact
        self.redacted = 0
        # firehose: connection name (as the broker shows it) -> who uses it, learnt from the
        # queues it consumes and the reply_to of what it publishes (names event publishers)
        self.connections: dict[str, str] = {}
        self.listeners: list[Callable[[], None]] = []

    # --- the hot path (the Lab loop thread, once per socket read) ---------------------------

    def take_firehose(self, deliveries: Iterable[Delivery]) -> None:
        now = time.time()
        with self.lock:
            for delivery in deliveries:
                self.received += 1
                if self.paused:
                    self.skipped += 1
                    continue
                key = delivery.routing_key
                if key.startswith("deliver.") and (key.endswith("-rq") or key.endswith("-tq")):
                    # a response reaching its caller, a copy reaching a tail or tap: nothing
                    # the tap uses, so not even read
                    continue
                raw = delivery.raw_headers
                try:
                    if raw is None:
                        raise ValueError("no header table")
                    record = read_trace(raw)
                except ValueError:
                    self.undecodable += 1
                    continue
                if record.nuropb_type is None:
                    self.other += 1
                    continue
                kind = known_kind(record.nuropb_type)
                if key.startswith("deliver."):  # a consumer got it
                    if kind == "request" or kind == "command":
                        self._delivered(now, record.correlation_id, key[8:], record.connection)
                    continue
                self._message(
                    now,
                    kind,
                    record.routing_key,
                    record.correlation_id,
                    record.reply_to,
                    record.trace_id,
                    record.encrypted,
                    delivery.body,
                    record.connection,
                    record.routed_queues,
                )
            self.calls.expire(now)
        for listener in self.listeners:
            listener()

    def take_copies(self, deliveries: Iterable[Delivery]) -> None:
        """Copies from the tap's own queue: requests and commands (no responses), events."""
        now = time.time()
        with self.lock:
            for delivery in deliveries:
                self.received += 1
                if self.paused:
                    self.skipped += 1
                    continue
                headers = delivery.headers
                kind = headers.get("nuropb_type") if headers else None
                if kind is None or kind == "response":
                    self.other += 1
                    continue
                assert headers is not None
                trace_id = headers.get("trace_id")
                self._message(
                    now,
                    known_kind(kind),
                    delivery.routing_key,
                    delivery.correlation_id,
                    delivery.reply_to,
                    trace_id if isinstance(trace_id, str) else None,
                    headers.get("encrypted") in ("yes", b"yes"),
                    delivery.body,
                    None,
                    None,
                    waits=False,
                )
        for listener in self.listeners:
            listener()

    def _delivered(self, now: float, correlation_id: Any, queue: str, connection: Any) -> None:
        call = self.calls.pending.get(correlation_id) if correlation_id else None
        if call is None:
            return
        if call.delivered is None:
            call.delivered = now
        if connection and queue.endswith("-sq"):
            self._learn(connection, call.service or queue_label(queue))
        if call.kind == "command":  # nothing more comes for a command
            self.calls.pending.pop(correlation_id, None)

    def _message(
        self,
        now: float,
        kind: str,
        routing_key: str,
        correlation_id: str | None,
        reply_to: str | None,
        trace_id: str | None,
        encrypted: bool,
        body: bytes,
        connection: str | None,
        routed: list[Any] | None,
        waits: bool = True,
    ) -> None:
        """One published message (firehose) or copy: a row, and its call's news."""
        call: Call | None = None
        if kind == "response":
            call = self.calls.answered(correlation_id, now) if correlation_id else None
            if call is not None:
                caller, service, method = call.caller, call.service, call.method
                if connection:
                    self._learn(connection, service or "?")
            else:
                if correlation_id:
                    self.calls.unpaired += 1
                caller = queue_label(routing_key)
                service = self.connections.get(connection) if connection else None
                method = None
                if not self._wanted(caller, service):
                    self.other += 1
                    return
            topic = None
        elif kind == "event":
            if not self.events:
                self.other += 1
                return
            caller = self.connections.get(connection) if connection else None
            service = method = None
            topic = routing_key
        else:  # request, command
            service = routing_key
            if reply_to:
                caller = queue_label(reply_to)
            else:
                caller = self.connections.get(connection) if connection else None
            if not self._wanted(caller, service):
                self.other += 1
                return
            if connection and caller and connection not in self.connections:
                self._learn(connection, caller)
            method = None
            topic = None
        size = len(body)
        payload: Any = None
        error: str | None = None
        context: Any = None
        truncated = False
        if not encrypted:
            try:
                decoded = codec.decode_json(body, _DECODE)
            except NuropbMessageError as exc:
                decoded = None
                error, n = self.redactor.text(f"undecodable: {exc.description}")
                self.redacted += n
                self.undecodable += 1
            if isinstance(decoded, dict):
                context = decoded.get("context")
                if trace_id is None:
                    trace_id = decoded.get("trace_id")
                if kind == "response":
                    payload = decoded.get("result")
                    failure = decoded.get("error")
                    if call is not None:
                        call.ok = not failure
                    if failure:
                        error = clip_text(_error_text(failure), ERROR_BYTES)
                        if call is not None:
                            call.error = clip_text(_error_class(failure))
                elif kind == "event":
                    payload = decoded.get("event")
                    topic = decoded.get("topic") or topic
                else:
                    payload = decoded.get("params")
                    method = decoded.get("method")
                redact = self.redactor  # before anything is kept or cut to a preview
                if redact.enabled and (size <= WALK_BYTES or redact.may_hold(body)):
                    n = m = k = 0  # no call for what is empty (a context is mostly {})
                    if payload:
                        describe = call is not None and call.method == DESCRIBE
                        walk = redact.description if describe else redact.value
                        payload, n = walk(payload)
                    if context:
                        context, m = redact.value(context)
                    if error:
                        error, k = redact.text(error)
                        if k and call is not None and call.error:  # the class a peer named
                            call.error = redact.text(call.error)[0]
                    if n or m or k:
                        self.redacted += n + m + k
                if size > TEXT_BYTES:  # else no field of it can be over its limit
                    method, cut_method = clip_value(method, TEXT_BYTES)
                    topic, cut_topic = clip_value(topic, TEXT_BYTES)
                    truncated = cut_method or cut_topic
                    if size > self.body_limit:
                        payload, cut = clip_value(payload, self.body_limit)
                        truncated = truncated or cut
                    if size > CONTEXT_BYTES:
                        context, cut = clip_value(context, CONTEXT_BYTES)
                        truncated = truncated or cut
        if not isinstance(trace_id, str):
            trace_id = None
        elif len(trace_id) > TEXT_BYTES // 4:  # a header may be as long as a frame
            trace_id = clip_text(trace_id)
        routed_to = None
        if routed is not None and kind == "event":
            routed_to = tuple(queue_label(q) for q in routed[:ROUTED_QUEUES] if isinstance(q, str))
            if len(routed) > ROUTED_QUEUES:
                routed_to += (f"... ({len(routed)} queues in all)",)
        self.rows.append(
            (
                now,
                kind,
                caller,
                service,
                method,
                topic,
                correlation_id,
                trace_id,
                size,
                encrypted,
                payload,
                error,
                truncated,
                context,
                routed_to,
                connection,
            ),
            ROW_BYTES if encrypted else ROW_BYTES + min(size, self.fields_max),
        )
        self.kept += 1
        if (kind == "request" or kind == "command") and correlation_id:
            self.calls.add(
                Call(
                    correlation_id,
                    kind,
                    caller,
                    service,
                    method,
                    trace_id,
                    now,
                    encrypted,
                ),
                waits,
            )

    def _learn(self, connection: str, label: str) -> None:
        connections = self.connections
        if connections.get(connection) != label:
            connections[connection] = label
            if len(connections) > NAMES_KEPT:  # many short-lived clients: forget the oldest
                del connections[next(iter(connections))]

    def _wanted(self, caller: str | None, service: str | None) -> bool:
        wanted = self.services
        return wanted is None or service in wanted or caller in wanted

    # --- readers (any thread) ------------------------------------------------------------------

    def snapshot(self, last: int | None = None) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.rows.newest(last)

    def clear(self) -> None:
        with self.lock:
            self.rows.clear()
            self.calls.clear()


def known_kind(value: Any) -> str:
    """One of :data:`KINDS` for a ``nuropb_type`` header's value, else ``"unknown"``."""
    return value if isinstance(value, str) and value in KINDS else UNKNOWN_KIND


def _error_class(failure: Any) -> str:
    if isinstance(failure, dict):
        return str(failure.get("error") or "error")
    return str(failure)


def _error_text(failure: Any) -> str:
    if isinstance(failure, dict):
        return f"{failure.get('error') or 'error'}: {failure.get('description') or ''}".rstrip(": ")
    return str(failure)
