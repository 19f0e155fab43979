"""Frames into pamqp's objects, as aiormq hands them on, decoded by this package.

pamqp decodes a short string (a correlation_id, a reply_to, a routing key) or a field-table
key that is not UTF-8, or a timestamp past what a datetime holds, by raising; in aiormq's
reader that drops the whole connection, the broker redelivers the message to the next
connection, which drops too: one such message keeps a service off the mesh for good. Here
every value comes out as pamqp gives it, except those: a short string that is not UTF-8 is
bytes (as pamqp gives a long string, and pika both), a key is decoded lossily, a timestamp
stays the int on the wire (table.py); the message reaches the API, which handles it or
rejects it to the dead-letter queue. Only the lab's own connections read with this
(receiver.py): pamqp's decoders are left as they are for everybody else.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from pamqp import commands as spec
from pamqp.base import Frame
from pamqp.body import ContentBody
from pamqp.frame import FrameTypes
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from .constants import (
    BODY,
    CONTENT_HEADER,
    FRAME_END,
    FRAME_HEAD,
    HEADER,
    HEARTBEAT,
    LONG,
    METHOD,
    SHORT,
    FrameError,
)
from .properties import CLUSTER_ID, TIMESTAMP, decode_properties
from .table import decode_table, short_string, text, timestamp

__all__ = ["content_header", "method_frame", "unmarshal"]

_BIT, _OCTET, _SHORT, _LONG, _LONGLONG, _SHORTSTR, _LONGSTR, _TABLE = range(8)
_KINDS: Final = {
    "bit": _BIT,
    "octet": _OCTET,
    "short": _SHORT,
    "long": _LONG,
    "longlong": _LONGLONG,
    "shortstr": _SHORTSTR,
    "longstr": _LONGSTR,
    "table": _TABLE,
}
_SIGNED_LONGLONG: Final = struct.Struct(">q")  # pamqp reads a method's longlong signed
# method index -> its pamqp class and (attribute, kind) in wire order, for the methods seen
_METHODS: dict[int, tuple[type[Frame], tuple[tuple[str, int], ...]]] = {}


def unmarshal(raw: bytes) -> tuple[int, int, FrameTypes]:
    """One whole frame (head, payload, frame end): its size, channel and pamqp object, as
    ``pamqp.frame.unmarshal`` returns them (but see the module's doc)."""
    kind, channel, size = FRAME_HEAD.unpack_from(raw)
    end = FRAME_HEAD.size + size
    if end + 1 != len(raw) or raw[end] != FRAME_END:
        raise FrameError(f"a frame of type {kind} does not end with 0xCE where its size says")
    if kind == HEARTBEAT and size == 0:
        return len(raw), channel, Heartbeat()
    if size == 0:
        raise FrameError(f"a frame of type {kind} is empty")
    if kind == METHOD:
        return len(raw), channel, method_frame(raw, FRAME_HEAD.size, end)
    if kind == HEADER:
        return len(raw), channel, content_header(raw, FRAME_HEAD.size, end)
    if kind == BODY:
        return len(raw), channel, ContentBody(raw[FRAME_HEAD.size : end])
    raise FrameError(f"unknown frame type {kind}")


def method_frame(data: bytes, at: int, end: int) -> Frame:
    """The method frame whose payload runs from ``at`` to ``end``."""
    try:
        (index,) = LONG.unpack_from(data, at)
        method = _METHODS.get(index)
        if method is None:
            cls: type[Frame] | None = spec.INDEX_MAPPING.get(index)
            if cls is None:
                raise FrameError(f"unknown method {index:#010x}")
            fields = tuple((name, _KINDS[cls.amqp_type(name)]) for name in cls.__slots__)
            method = _METHODS[index] = (cls, fields)
        frame_class, fields = method
        frame = frame_class.__new__(frame_class)  # every attribute is set below
        at += 4
        bit = -1  # the next bit's place in the octet at ``at``; -1: not in bits
        value: Any
        for name, kind in fields:
            if kind == _BIT:  # consecutive bits share octets
                if bit == 8:
                    at += 1
                    bit = 0
                elif bit < 0:
                    bit = 0
                value = bool(data[at] >> bit & 1)
                bit += 1
            else:
                if bit >= 0:
                    at += 1
                    bit = -1
                if kind == _SHORTSTR:
                    value, at = short_string(data, at)
                elif kind == _LONGLONG:
                    (value,) = _SIGNED_LONGLONG.unpack_from(data, at)
                    at += 8
                elif kind == _OCTET:
                    value = data[at]
                    at += 1
                elif kind == _SHORT:
                    (value,) = SHORT.unpack_from(data, at)
                    at += 2
                elif kind == _LONG:
                    (value,) = LONG.unpack_from(data, at)
                    at += 4
                elif kind == _LONGSTR:
                    stop = at + 4 + LONG.unpack_from(data, at)[0]
                    value = text(data[at + 4 : stop])
                    at = stop
                else:
                    stop = at + 4 + LONG.unpack_from(data, at)[0]
                    if stop > end:
                        raise FrameError("a table runs past its frame")
                    value = decode_table(data, at + 4, stop)
                    at = stop
            setattr(frame, name, value)
    except (IndexError, struct.error) as exc:
        raise FrameError(f"a method frame is cut short: {exc}") from None
    if (at + 1 if bit >= 0 else at) > end:
        raise FrameError(f"{frame.name} runs past its frame")
    return frame


def content_header(data: bytes, at: int, end: int) -> ContentHeader:
    """The content header whose payload runs from ``at`` to ``end``."""
    try:
        class_id, weight, body_size, _flags = CONTENT_HEADER.unpack_from(data, at)
    except struct.error as exc:
        raise FrameError(f"a content header is cut short: {exc}") from None
    values = decode_properties(data, at + 12, end)
    if values[TIMESTAMP] is not None:
        values[TIMESTAMP] = timestamp(values[TIMESTAMP])
    if values[CLUSTER_ID] is None:
        values[CLUSTER_ID] = ""  # pamqp's default
    properties = spec.Basic.Properties.__new__(spec.Basic.Properties)
    (
        properties.content_type,
        properties.content_encoding,
        properties.headers,
        properties.delivery_mode,
        properties.priority,
        properties.correlation_id,
        properties.reply_to,
        properties.expiration,
        properties.message_id,
        properties.timestamp,
        properties.message_type,
        properties.user_id,
        properties.app_id,
        properties.cluster_id,
    ) = values
    header = ContentHeader.__new__(ContentHeader)
    header.class_id = class_id
    header.weight = weight
    header.body_size = body_size
    header.properties = properties
    return header
