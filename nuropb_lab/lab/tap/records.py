"""Firehose trace records, read from their undecoded header tables.

A trace record's header table holds the original message's properties (a nested table, with
its own nested ``headers``), the routing keys, the connection, the routed queues ... some 25
values. Decoding them all into dicts was most of what a record cost the tap; here only what
the tap uses is read (mesh.amqp.table.pick walks the rest by its sizes): the first routing
key, the correlation id, reply_to, nuropb_type, trace_id, encrypted, the connection and (for
events) the routed queues.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from ...mesh.amqp.table import TEXT, TEXTS, Pick, pick

__all__ = ["TraceRecord", "read_trace"]

_TRACE: Final = Pick(
    {
        "properties": Pick(
            {
                "correlation_id": TEXT,
                "reply_to": TEXT,
                "headers": Pick({"nuropb_type": TEXT, "trace_id": TEXT, "encrypted": TEXT}),
            }
        ),
        "routing_keys": TEXTS,
        "routed_queues": TEXTS,
        "connection": TEXT,
    }
)


class TraceRecord(NamedTuple):
    """What the tap needs of one trace record."""

    nuropb_type: str | None
    routing_key: str  # the original message's (first) routing key
    correlation_id: str | None
    reply_to: str | None
    trace_id: str | None
    encrypted: bool
    connection: str | None
    routed_queues: list[str] | None  # publish records only


def read_trace(raw: bytes) -> TraceRecord:
    """The fields of a trace record's header table (``raw``: its size, then its entries).
    Raises ValueError when the bytes are not a field table."""
    (
        correlation_id,
        reply_to,
        nuropb_type,
        trace_id,
        encrypted,
        routing_keys,
        routed_queues,
        connection,
    ) = pick(raw, _TRACE)
    return TraceRecord(
        nuropb_type,
        routing_keys[0] if routing_keys else "",
        correlation_id,
        reply_to,
        trace_id,
        encrypted == "yes",
        connection,
        routed_queues,
    )
