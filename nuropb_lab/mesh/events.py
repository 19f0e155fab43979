"""Event subscriptions: a queue of one's own bound to the events exchange by topic patterns.

The queue is exclusive (deleted with its connection), bounded by ``x-max-length``
(oldest dropped) and ``x-expires``; after a reconnection it is declared again, and the time
without a queue is recorded as a gap (events published then are not seen). The transport
consumes the queues on a connection of their own (see event_connection.py) and hands the
deliveries to :meth:`Subscription.take`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, NamedTuple

from aiormq.abc import DeliveredMessage

from . import codec
from .amqp.reader import Delivery
from .errors import NuropbException, NuropbMessageError

__all__ = [
    "TAIL_QUEUE_PATTERN",
    "MeshEvent",
    "Subscription",
    "decode_event",
    "event_from",
    "tail_queue_name",
]

log = logging.getLogger(__name__)

#: The queues of tails and taps end in ``-tq``; with nuropb's own response queues (``-rq``)
#: one configure permission covers everything a least-privilege notebook user declares.
TAIL_QUEUE_PATTERN = "^nuropb-.*-(rq|tq)$"


def tail_queue_name(kind: str) -> str:
    """A fresh queue name for a tail or a tap: ``nuropb-lab-{kind}-{12 hex}-tq``."""
    return f"nuropb-lab-{kind}-{uuid.uuid4().hex[:12]}-tq"


class MeshEvent(NamedTuple):
    """An event as received: the body's fields plus where and when it arrived."""

    received_at: float  # time.time()
    topic: str
    event: Any
    context: dict[str, Any]
    trace_id: str | None
    correlation_id: str | None
    target: list[Any] | None
    bytes: int = 0  # the body's size


def decode_event(
    message: DeliveredMessage, limits: codec.DecodeLimits = codec.DEFAULT_LIMITS
) -> MeshEvent:
    """Decode a delivered event; raises a NuropbException for anything else."""
    return event_from(message.header.properties.headers, message.body, limits)


def event_from(
    headers: Mapping[str, Any] | None,
    raw: bytes,
    limits: codec.DecodeLimits = codec.DEFAULT_LIMITS,
) -> MeshEvent:
    """The event in a message's headers and body; raises a NuropbException for anything else."""
    nuropb_type, encrypted = codec.check_headers(headers)
    if nuropb_type != "event":
        raise NuropbMessageError(f"expected an event, got a {nuropb_type}")
    if encrypted:
        raise NuropbMessageError("events are not encrypted in nuropb")
    body = codec.check_body("event", codec.decode_json(raw, limits))
    context = body.get("context")
    target = body.get("target")
    trace_id = body.get("trace_id")
    correlation_id = body.get("correlation_id")
    return MeshEvent(
        time.time(),
        body["topic"],
        body["event"],
        context if isinstance(context, dict) else {},
        trace_id if isinstance(trace_id, str) else None,
        correlation_id if isinstance(correlation_id, str) else None,
        target if isinstance(target, list) else None,
        len(raw),
    )


@dataclasses.dataclass(eq=False)
class Subscription:
    """What a subscription asked for and what happened to it."""

    patterns: list[str]
    on_event: Callable[[MeshEvent], None]
    max_length: int = 100_000
    expires_ms: int = 60_000
    queue: str = dataclasses.field(default_factory=lambda: tail_queue_name("tail"))
    received: int = 0
    undecodable: int = 0
    #: (lost_at, resumed_at or None) for each time the queue was gone
    gaps: list[tuple[float, float | None]] = dataclasses.field(default_factory=list)
    active: bool = False
    limits: codec.DecodeLimits = codec.DEFAULT_LIMITS
    #: deliveries come with their header table undecoded (Delivery.raw_headers), for a
    #: subscription that reads a few fields of large tables itself (a wire tap's)
    raw_headers: ClassVar[bool] = False

    def bindings(self, events_exchange: str) -> list[tuple[str, str]]:
        """(exchange, routing key) of each binding of the queue: the patterns on the events
        exchange."""
        return [(events_exchange, pattern) for pattern in self.patterns]

    @property
    def arguments(self) -> dict[str, Any]:
        return {"x-max-length": int(self.max_length), "x-expires": int(self.expires_ms)}

    def take(self, deliveries: Iterable[Delivery]) -> None:
        """Decode deliveries of the queue and pass each event on (in the loop, nothing here
        waits): the event connection calls this with what each read from the socket held."""
        limits, on_event = self.limits, self.on_event
        for delivery in deliveries:
            try:
                if delivery.problem is not None:
                    raise NuropbMessageError(delivery.problem)
                event = event_from(delivery.headers, delivery.body, limits)
            except NuropbException as exc:
                self.undecodable += 1
                log.debug("%s: undecodable event: %s", self.queue, exc)
                continue
            self.received += 1
            try:
                on_event(event)
            except Exception:
                log.exception("%s: event handler failed", self.queue)

    def lost(self) -> None:
        if self.active:
            self.active = False
            self.gaps.append((time.time(), None))

    def resumed(self) -> None:
        self.active = True
        if self.gaps and self.gaps[-1][1] is None:
            self.gaps[-1] = (self.gaps[-1][0], time.time())
