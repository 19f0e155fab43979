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
    unpack = _unpack_long
    end = 4 + unpack(data, 0)[0]
    if end > len(data):
        raise _Bad("the header table runs past its bytes")
    routing_key = ""
    correlation_id = reply_to = nuropb_type = trace_id = connection = None
    encrypted = False
    routed: list[str] | None = None
    at = 4
    while at < end:
        key_end = at + 1 + data[at]
        key = data[at + 1 : key_end]
        at = key_end
        if key == b"properties" and data[at] == 0x46:
            stop = at + 5 + unpack(data, at + 1)[0]
            at += 5
            while at < stop:
                key_end = at + 1 + data[at]
                key = data[at + 1 : key_end]
                at = key_end
                if key == b"correlation_id":
                    correlation_id, at = _string(data, at)
                elif key == b"reply_to":
                    reply_to, at = _string(data, at)
                elif key == b"headers" and data[at] == 0x46:
                    inner = at + 5 + unpack(data, at + 1)[0]
                    at += 5
                    while at < inner:
                        key_end = at + 1 + data[at]
                        key = data[at + 1 : key_end]
                        at = key_end
                        if key == b"nuropb_type":
                            nuropb_type, at = _string(data, at)
                        elif key == b"trace_id":
                            trace_id, at = _string(data, at)
                        elif key == b"encrypted":
                            value, at = _string(data, at)
                            encrypted = value == "yes"
                        elif data[at] == 0x53:  # a string not used: skipped here, most are
                            at += 5 + unpack(data, at + 1)[0]
                        else:
                            at = _skip(data, at)
                    if at != inner:
                        raise _Bad("the nuropb headers run past their table")
                elif data[at] == 0x53:
                    at += 5 + unpack(data, at + 1)[0]
                else:
                    at = _skip(data, at)
            if at != stop:
                raise _Bad("the properties run past their table")
        elif key == b"routing_keys" and data[at] == 0x41:
            keys, at = _strings(data, at)
            routing_key = keys[0] if keys else ""
        elif key == b"connection":
            connection, at = _string(data, at)
        elif key == b"routed_queues" and data[at] == 0x41:
            routed, at = _strings(data, at)
        elif data[at] == 0x53:
            at += 5 + unpack(data, at + 1)[0]
        else:
            at = _skip(data, at)
    if at != end:
        raise _Bad("the header table's values run past its end")
    return TraceRecord(
        nuropb_type, routing_key, correlation_id, reply_to, trace_id, encrypted, connection, routed
    )
