"""The dead-letter queue, read without consuming it (unless asked).

Messages are fetched with basic.get and put back with one ``nack(multiple, requeue)``, so the
queue is left as it was (the messages are marked redelivered). Why each one is there comes
from the broker's ``x-death`` header (rejected, expired, maxlen) and, for a call this session
made, from the error in its history.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Mapping
from typing import Any, cast

import pandas as pd
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from ..mesh import RMQAPI, ManagementAPI, ManagementUnavailable, Topology, codec
from ..mesh.errors import NuropbHandlingError, NuropbMessageError
from ..mesh.limits import DEAD_LETTER_BODY, clip_text
from .connections import Connections
from .errors import OptionError
from .history import CallRecord, History
from .redact import Redaction, Redactor, redactor

__all__ = [
    "DLQ_COLUMNS",
    "DeadLetters",
    "dead_letter_queue",
    "dead_letter_rows",
    "read_dead_letters",
]

DLQ_COLUMNS = [
    "dead_at",
    "reason",
    "queue",
    "service",
    "nuropb_type",
    "method",
    "correlation_id",
    "trace_id",
    "encrypted",
    "error",
    "body",
]


def _text(value: Any) -> Any:
    """A header's value as text, bounded (any peer may put anything in a dead letter)."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    return clip_text(text) if isinstance(text, str) else text


async def dead_letter_queue(api: RMQAPI, management: ManagementAPI | None) -> str:
    """The queue dead letters land in. nuropb names it ``nuropb-dl-queue`` (configure_mesh) or
    ``nuropb-{service}-dl`` (a transport left to itself): the management API tells which
    queues the DLX feeds (the configured name first, when it is one of them); without it,
    the configured name."""
    topology = api.topology
    if management is not None:
        with contextlib.suppress(ManagementUnavailable):
            bindings = await management.exchange_bindings(api.mesh_name, topology.dl_exchange)
            queues = [b["destination"] for b in bindings if b.get("destination_type") == "queue"]
            if queues:
                return topology.dl_queue if topology.dl_queue in queues else sorted(queues)[0]
    return topology.dl_queue


async def read_dead_letters(
    api: RMQAPI, queue: str, limit: int, consume: bool
) -> list[DeliveredMessage]:
    """Up to ``limit`` messages of ``queue``; left in place unless ``consume``."""
    if limit < 1:
        raise OptionError(f"limit must be at least 1, got {limit!r}")
    if await api.queue_info(queue) is None:
        raise NuropbHandlingError(f"the mesh has no dead-letter queue {queue!r}")
    messages: list[DeliveredMessage] = []
    async with api.transport.temp_channel() as channel:
        for _ in range(limit):
            message = await channel.basic_get(queue, no_ack=False)
            if not isinstance(message.delivery, spec.Basic.GetOk):
                break
            messages.append(message)
        if messages:
            last = cast(spec.Basic.GetOk, messages[-1].delivery).delivery_tag or 0
            if consume:
                await channel.basic_ack(last, multiple=True)
            else:
                await channel.basic_nack(last, multiple=True, requeue=True)
    return messages


def _first_death(headers: Mapping[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death") or []
    return dict(deaths[0]) if deaths and isinstance(deaths[0], Mapping) else {}


def dead_letter_rows(
    messages: list[DeliveredMessage], history: list[CallRecord], redact: Redactor | None = None
) -> pd.DataFrame:
    """A row per dead letter, what is sensitive in its body redacted (``redact``; default:
    the default redaction, redact.py): ``attrs["redacted"]`` counts the values."""
    redact = redactor() if redact is None else redact
    redacted = 0
    errors = {
        r.correlation_id: f"{r.error}: {r.description}"
        for r in history
        if r.correlation_id and not r.ok
    }
    rows = []
    for message in messages:
        properties = message.header.properties
        headers = dict(properties.headers or {})
        death = _first_death(headers)
        encrypted = _text(headers.get("encrypted")) == "yes"
        method, shown = None, "(encrypted)"
        if not encrypted:
            try:
                decoded = codec.decode_json(message.body)
            except NuropbMessageError as exc:
                shown = f"(not decoded: {exc.description}) {message.body[:DEAD_LETTER_BODY]!r}"
                shown, n = redact.text(shown)
                redacted += n
            else:
                decoded, n = redact.raw(message.body, decoded)
                redacted += n
                method = decoded.get("method") if isinstance(decoded, dict) else None
                method = clip_text(method) if isinstance(method, str) else None
                shown = json.dumps(decoded, default=str)[:DEAD_LETTER_BODY]
        dead_at = death.get("time")
        if isinstance(dead_at, (int, float)):
            dead_at = datetime.datetime.fromtimestamp(dead_at, datetime.UTC)
        queue = _text(death.get("queue"))
        rows.append(
            [
                dead_at,
                _text(death.get("reason")),
                queue,
                Topology.service_from_queue(queue) if isinstance(queue, str) else None,
                _text(headers.get("nuropb_type")),
                method,
                properties.correlation_id,
                _text(headers.get("trace_id")),
                encrypted,
                errors.get(properties.correlation_id or ""),
                shown,
            ]
        )
    frame = pd.DataFrame(rows, columns=DLQ_COLUMNS)
    frame.attrs["redaction"] = redact.describe()
    frame.attrs["redacted"] = redacted
    return frame


class DeadLetters:
    """The mesh's dead-letter queue, read (and, when asked, consumed)."""

    def __init__(self, connections: Connections, history: History, redaction: Redaction) -> None:
        self._connections = connections
        self._history = history
        self._redaction = redaction

    async def dead_letters(
        self,
        limit: int = 50,
        consume: bool = False,
        alias: str | None = None,
        queue: str | None = None,
    ) -> pd.DataFrame:
        """What was rejected to the mesh's dead-letter queue, and why (the broker's reason;
        the error, for a call of this session). Read without consuming unless ``consume``.
        ``queue``: default the one the dead-letter exchange feeds (see dead_letter_queue)."""
        connection = self._connections.connection(alias)
        if consume:  # reading puts every message back; consuming removes them from the mesh
            self._connections.may_send(connection, "consuming dead letters")
        queue = queue or await dead_letter_queue(connection.api, connection.management)
        messages = await read_dead_letters(connection.api, queue, limit, consume)
        frame = dead_letter_rows(messages, self._history.records(), self._redaction.current)
        frame.attrs["queue"] = queue
        return frame
