"""AMQP 0-9-1 frames of the hot path, encoded directly.

pamqp's generic marshalling (which aiormq uses) costs ~30 us for a basic.publish with its
content header; the transport writes one per request and per response, so the few frames it
writes per message are encoded here with ``struct`` (~3 us). The bytes are the ones pamqp
writes (the unit tests check it): properties that are None or "" are left out, header tables
are sorted by key, and a body longer than a frame is split.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.header import ContentHeader

from .constants import BODY, CONTENT_HEADER, FRAME_END, FRAME_HEAD, HEADER, METHOD
from .table import encode_short_string, encode_table

__all__ = ["Properties", "ack", "nack", "publish", "reject"]

_FRAME_END: Final = bytes((FRAME_END,))
_PUBLISH: Final = struct.pack(">HHH", 60, 40, 0)  # basic.publish, ticket 0
# basic.ack / basic.reject / basic.nack: a whole method frame (delivery tag, one bits octet)
_TAG_FRAME: Final = struct.Struct(">BHIHHQBB")


class Properties(NamedTuple):
    """The message properties nuropb uses; "" (or None headers) means absent."""

    content_type: str = ""
    correlation_id: str = ""
    reply_to: str = ""
    expiration: str = ""
    message_id: str = ""
    headers: Mapping[str, Any] | None = None

    @classmethod
    def from_pamqp(cls, properties: spec.Basic.Properties) -> Properties | None:
        """The same properties, or None when one outside this set is used."""
        if any(
            getattr(properties, name) not in (None, "")
            for name in (
                "content_encoding",
                "delivery_mode",
                "priority",
                "timestamp",
                "message_type",
                "user_id",
                "app_id",
                "cluster_id",
            )
        ):
            return None
        return cls(
            properties.content_type or "",
            properties.correlation_id or "",
            properties.reply_to or "",
            properties.expiration or "",
            properties.message_id or "",
            properties.headers,
        )


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return FRAME_HEAD.pack(kind, channel, len(payload)) + payload + _FRAME_END


def _content_header(body_size: int, p: Properties) -> bytes:
    flags = 0
    parts: list[bytes] = []
    if p.content_type:
        flags |= 0x8000
        parts.append(encode_short_string(p.content_type))
    if p.headers is not None:
        flags |= 0x2000
        parts.append(encode_table(p.headers))
    if p.correlation_id:
        flags |= 0x0400
        parts.append(encode_short_string(p.correlation_id))
    if p.reply_to:
        flags |= 0x0200
        parts.append(encode_short_string(p.reply_to))
    if p.expiration:
        flags |= 0x0100
        parts.append(encode_short_string(p.expiration))
    if p.message_id:
        flags |= 0x0080
        parts.append(encode_short_string(p.message_id))
    return CONTENT_HEADER.pack(60, 0, body_size, flags) + b"".join(parts)


def publish(
    channel: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: Properties | spec.Basic.Properties,
    mandatory: bool,
    max_body: int,
) -> bytes:
    """basic.publish, its content header and body frames (each at most ``max_body`` bytes)."""
    method = (
        _PUBLISH
        + encode_short_string(exchange)
        + encode_short_string(routing_key)
        + (b"\x01" if mandatory else b"\x00")
    )
    fast = properties if isinstance(properties, Properties) else Properties.from_pamqp(properties)
    if fast is not None:
        header = _frame(HEADER, channel, _content_header(len(body), fast))
    else:
        assert isinstance(properties, spec.Basic.Properties)
        header = pamqp_frame.marshal(ContentHeader(0, len(body), properties), channel)
    frames = [_frame(METHOD, channel, method), header]
    for start in range(0, len(body), max_body):
        frames.append(_frame(BODY, channel, body[start : start + max_body]))
    return b"".join(frames)


def _tag_frame(channel: int, method_id: int, delivery_tag: int, bits: int) -> bytes:
    return _TAG_FRAME.pack(METHOD, channel, 13, 60, method_id, delivery_tag, bits, 0xCE)


def ack(channel: int, delivery_tag: int, multiple: bool = False) -> bytes:
    return _tag_frame(channel, 80, delivery_tag, 1 if multiple else 0)


def reject(channel: int, delivery_tag: int, requeue: bool) -> bytes:
    return _tag_frame(channel, 90, delivery_tag, 1 if requeue else 0)


def nack(channel: int, delivery_tag: int, requeue: bool, multiple: bool = False) -> bytes:
    return _tag_frame(channel, 120, delivery_tag, (1 if multiple else 0) | (2 if requeue else 0))
