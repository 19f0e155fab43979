"""Firehose trace records, read from their undecoded header tables.

A trace record's header table holds the original message's properties (a nested table, with
its own nested ``headers``), the routing keys, the connection, the routed queues ... some 25
values. Decoding them all into dicts was most of what a record cost the tap; here the table is
walked by its lengths and only what the tap uses is decoded: the first routing key, the
correlation id, reply_to, nuropb_type, trace_id, encrypted, the connection and (for events) the
routed queues. Keys are compared as bytes; everything else is skipped by its size.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

__all__ = ["TraceRecord", "read_trace"]

_unpack_long = struct.Struct(">I").unpack_from
# field-table value type octet -> fixed size (strings, tables, arrays and byte arrays have a
# 4-byte length instead; see _skip)
_FIXED: Final = {
    0x74: 1,  # t
    0x62: 1,  # b
    0x42: 1,  # B
    0x73: 2,  # s
    0x75: 2,  # u
    0x49: 4,  # I
    0x69: 4,  # i
    0x66: 4,  # f
    0x6C: 8,  # l
    0x4C: 8,  # L
    0x64: 8,  # d
    0x54: 8,  # T
    0x44: 5,  # D
    0x56: 0,  # V
}
_SIZED: Final = frozenset((0x53, 0x46, 0x41, 0x78))  # S F A x


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


class _Bad(ValueError):
    pass


def _skip(data: bytes, at: int) -> int:
    """Past the value whose type octet is at ``at``."""
    kind = data[at]
    if kind in _SIZED:
        length: int = _unpack_long(data, at + 1)[0]
        return at + 5 + length
    size = _FIXED.get(kind)
    if size is None:
        raise _Bad(f"unknown field type {kind!r}")
    return at + 1 + size


def _string(data: bytes, at: int) -> tuple[str | None, int]:
    if data[at] != 0x53:  # not a long string: not what the broker writes here
        return None, _skip(data, at)
    stop = at + 5 + _unpack_long(data, at + 1)[0]
    return data[at + 5 : stop].decode("utf-8", "replace"), stop


def _strings(data: bytes, at: int) -> tuple[list[str], int]:
    """An array of strings (others skipped)."""
    stop = at + 5 + _unpack_long(data, at + 1)[0]
    items: list[str] = []
    at += 5
    while at < stop:
        item, at = _string(data, at)
        if item is not None:
            items.append(item)
    return items, stop


def read_trace(raw: bytes) -> TraceRecord:
    """The fields of a trace record's header table (``raw``: its size, then its entries).
    Raises ValueError when the bytes are not a field table."""
    try:
        return _read(raw)
    except (IndexError, struct.error) as exc:
        raise _Bad(f"a trace record's header table is cut short: {exc}") from None


def _read(data: bytes) -> TraceRecord:
    # A key's length is looked at first: most entries are skipped without their key being
    # sliced or compared (about half of a record's cost went there).
    unpack = _unpack_long
    starts = data.startswith
    end = 4 + unpack(data, 0)[0]
    if end > len(data):
        raise _Bad("the header table runs past its bytes")
    routing_key = ""
    correlation_id = reply_to = nuropb_type = trace_id = connection = None
    encrypted = False
    routed: list[str] | None = None
    at = 4
    while at < end:
        size = data[at]
        key = at + 1
        at = key + size
        kind = data[at]
        if size == 10 and kind == 0x46 and starts(b"properties", key):
            stop = at + 5 + unpack(data, at + 1)[0]
            at += 5
            while at < stop:
                size = data[at]
                key = at + 1
                at = key + size
                kind = data[at]
                if size == 14 and kind == 0x53 and starts(b"correlation_id", key):
                    length = unpack(data, at + 1)[0]
                    correlation_id = data[at + 5 : at + 5 + length].decode("utf-8", "replace")
                    at += 5 + length
                elif size == 8 and kind == 0x53 and starts(b"reply_to", key):
                    length = unpack(data, at + 1)[0]
                    reply_to = data[at + 5 : at + 5 + length].decode("utf-8", "replace")
                    at += 5 + length
                elif size == 7 and kind == 0x46 and starts(b"headers", key):
                    inner = at + 5 + unpack(data, at + 1)[0]
                    at += 5
                    while at < inner:
                        size = data[at]
                        key = at + 1
                        at = key + size
                        if data[at] != 0x53:  # voids (a trace id of None), or others
                            at = _skip(data, at)
                            continue
                        length = unpack(data, at + 1)[0]
                        if size == 11 and starts(b"nuropb_type", key):
                            nuropb_type = data[at + 5 : at + 5 + length].decode("utf-8", "replace")
                        elif size == 8 and starts(b"trace_id", key):
                            trace_id = data[at + 5 : at + 5 + length].decode("utf-8", "replace")
                        elif size == 9 and starts(b"encrypted", key):
                            encrypted = data[at + 5 : at + 5 + length] == b"yes"
                        at += 5 + length
                    if at != inner:
                        raise _Bad("the nuropb headers run past their table")
                elif kind == 0x53:
                    at += 5 + unpack(data, at + 1)[0]
                else:
                    at = _skip(data, at)
            if at != stop:
                raise _Bad("the properties run past their table")
        elif kind == 0x41 and (
            (size == 12 and starts(b"routing_keys", key))
            or (size == 13 and starts(b"routed_queues", key))
        ):
            items, at = _strings(data, at)
            if size == 12:
                routing_key = items[0] if items else ""
            else:
                routed = items
        elif size == 10 and kind == 0x53 and starts(b"connection", key):
            length = unpack(data, at + 1)[0]
            connection = data[at + 5 : at + 5 + length].decode("utf-8", "replace")
            at += 5 + length
        elif kind == 0x53:
            at += 5 + unpack(data, at + 1)[0]
        else:
            at = _skip(data, at)
    if at != end:
        raise _Bad("the header table's values run past its end")
    return TraceRecord(
        nuropb_type, routing_key, correlation_id, reply_to, trace_id, encrypted, connection, routed
    )
