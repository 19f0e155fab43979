"""AMQP 0-9-1 frames read from a byte stream, for a connection that only consumes.

aiormq reads each frame with two awaits under a lock, unmarshals it with pamqp's generic code
(~15 us for a content header with nuropb's header table), queues it for its channel's task
and starts a task per delivered message: most of what a delivered event costs. Here the three
frames of a delivery (basic.deliver, content header, body) are parsed with ``struct`` from the
bytes as they arrive, with no await and no task, into one :class:`Delivery`. Every other
method frame (connection setup, closes, consume-ok ...) is rare and decoded by unmarshal.py.

Of the content header's properties (properties.py), ``headers`` is decoded (what a nuropb
event needs; by table.py), and so are ``correlation_id``, ``reply_to``, ``expiration`` and
``timestamp`` (what a wire tap needs to pair and name the messages it copies); names and
strings that are not UTF-8 are decoded lossily (U+FFFD), and a content header whose
properties cannot be decoded is one bad message (``Delivery.problem``), not a lost
connection: its frame's bounds are known. For the consumers named in
``FrameReader.raw_headers`` the header table is not decoded but kept as its bytes
(``Delivery.raw_headers``): a consumer that needs a few fields of a large table (a firehose
trace record's) reads just those (table.pick).
"""

from __future__ import annotations

import struct
from typing import Any, Final, NamedTuple

from pamqp import base as pamqp_base
from pamqp import heartbeat as pamqp_heartbeat

from .constants import (
    BODY,
    CONTENT_HEADER,
    DEFAULT_FRAME_MAX,
    DELIVER,
    FRAME_END,
    FRAME_HEAD,
    HEADER,
    HEARTBEAT,
    METHOD,
    METHOD_ID,
    PROTOCOL_HEADER,
    FrameError,
)
from .properties import HEADERS, decode_properties, wanted
from .table import lossy, short_text
from .unmarshal import method_frame

__all__ = ["DEFAULT_FRAME_MAX", "Delivery", "FrameError", "FrameReader", "MethodFrame"]

_TAG: Final = struct.Struct(">QB")  # delivery tag, redelivered (bit)
# the properties a delivery carries (the others are skipped)
_WANTED: Final = wanted("headers", "correlation_id", "reply_to", "expiration", "timestamp")


class Delivery(NamedTuple):
    """One delivered message, whole."""

    channel: int
    consumer_tag: str
    delivery_tag: int
    redelivered: bool
    exchange: str
    routing_key: str
    headers: dict[str, Any] | None
    body: bytes
    #: why ``headers`` (or the other properties) could not be decoded (then None), for the
    #: consumer to count it
    problem: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    #: the ``timestamp`` property (seconds since the epoch), when the publisher set one
    timestamp: int | None = None
    #: the header table undecoded (its 4-byte size, then its entries), for a consumer in
    #: ``FrameReader.raw_headers``; ``headers`` is None then
    raw_headers: bytes | None = None


class MethodFrame(NamedTuple):
    """Any other frame (a pamqp method frame, or a heartbeat) and its channel."""

    channel: int
    frame: pamqp_base.Frame | pamqp_heartbeat.Heartbeat


Incoming = Delivery | MethodFrame


class _Content:
    """A delivery whose content header or body frames are still to come."""

    __slots__ = (
        "body_size",
        "consumer_tag",
        "delivery_tag",
        "exchange",
        "headers",
        "parts",
        "problem",
        "properties",
        "raw_headers",
        "received",
        "redelivered",
        "routing_key",
    )

    def __init__(
        self, consumer_tag: str, delivery_tag: int, redelivered: bool, exchange: str, key: str
    ) -> None:
        self.consumer_tag = consumer_tag
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routing_key = key
        self.body_size = -1  # until the content header
        self.headers: dict[str, Any] | None = None
        self.problem: str | None = None
        # (correlation_id, reply_to, expiration, timestamp), when any is set
        self.properties: tuple[str | None, str | None, str | None, int | None] | None = None
        self.raw_headers: bytes | None = None
        self.parts: list[bytes] = []
        self.received = 0

    def delivery(self, channel: int, body: bytes) -> Delivery:
        return Delivery(
            channel,
            self.consumer_tag,
            self.delivery_tag,
            self.redelivered,
            self.exchange,
            self.routing_key,
            self.headers,
            body,
            self.problem,
            *(self.properties or _NO_PROPERTIES),
            self.raw_headers,
        )


_NO_PROPERTIES: Final = (None, None, None, None)


class FrameReader:
    """Frames from bytes fed in chunks of any size (several frames, or part of one, each).

    ``feed`` returns what the bytes completed, in order: a :class:`Delivery` once its body is
    whole, a :class:`MethodFrame` for anything else. A frame over ``frame_max`` or bytes that
    are not frames raise :class:`FrameError`.
    """

    __slots__ = ("_content", "_have", "_need", "_parts", "frame_max", "raw_headers")

    def __init__(self, frame_max: int = DEFAULT_FRAME_MAX) -> None:
        self.frame_max = frame_max
        #: consumer tags whose deliveries keep their header table as bytes
        self.raw_headers: set[str] = set()
        self._parts: list[bytes] = []  # bytes of an incomplete frame
        self._have = 0  # their length
        self._need = 0  # the length that completes it (or its 7-byte head, not yet whole)
        self._content: dict[int, _Content] = {}  # by channel

    def feed(self, data: bytes) -> list[Incoming]:
        if self._parts:
            # Joined only once the frame is complete: a large frame arriving in small reads
            # is copied once, not once per read.
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._parts)
            self._parts.clear()
        out: list[Incoming] = []
        at = self._parse(data, out)
        if at < len(data):
            rest = data[at:]
            self._parts.append(rest)
            self._have = len(rest)
            if self._have >= FRAME_HEAD.size:
                self._need = FRAME_HEAD.size + FRAME_HEAD.unpack_from(rest)[2] + 1
            else:
                self._need = FRAME_HEAD.size
        return out

    def _parse(self, data: bytes, out: list[Incoming]) -> int:
        """Parse the whole frames in ``data`` into ``out``; returns where the rest begins."""
        at = 0
        available = len(data)
        frame_max = self.frame_max
        contents = self._content
        while available - at >= FRAME_HEAD.size:
            kind, channel, size = FRAME_HEAD.unpack_from(data, at)
            if size + 8 > frame_max:
                if data.startswith(PROTOCOL_HEADER[:4], at):
                    raise FrameError("the broker does not speak AMQP 0-9-1")
                raise FrameError(f"a frame of {size} bytes, over frame_max ({frame_max})")
            start = at + FRAME_HEAD.size
            end = start + size
            if end >= available:
                break  # the frame end octet is still to come
            if data[end] != FRAME_END:
                raise FrameError(f"frame of type {kind} does not end with 0xCE")
            try:
                if kind == METHOD:
                    if METHOD_ID.unpack_from(data, start) == DELIVER:
                        if channel in contents:
                            raise FrameError("basic.deliver before the previous one's content")
                        consumer_tag, pos = short_text(data, start + 4)
                        delivery_tag, redelivered = _TAG.unpack_from(data, pos)
                        exchange, pos = short_text(data, pos + 9)
                        key, pos = short_text(data, pos)
                        if pos > end:
                            raise FrameError("basic.deliver runs past its frame")
                        contents[channel] = _Content(
                            consumer_tag, delivery_tag, bool(redelivered & 1), exchange, key
                        )
                    else:
                        out.append(self._method(channel, data, start, end))
                elif kind == HEADER:
                    content = contents.get(channel)
                    if content is None or content.body_size >= 0:
                        raise FrameError(f"a content header out of place on channel {channel}")
                    self._content_header(
                        content, data, start, end, content.consumer_tag in self.raw_headers
                    )
                    if content.body_size == 0:
                        del contents[channel]
                        out.append(content.delivery(channel, b""))
                elif kind == BODY:
                    content = contents.get(channel)
                    if content is None or content.body_size < 0:
                        raise FrameError(f"a content body out of place on channel {channel}")
                    received = content.received + size
                    if received > content.body_size:
                        raise FrameError("content body frames longer than the header's size")
                    if received == content.body_size:
                        del contents[channel]
                        if content.parts:
                            content.parts.append(data[start:end])
                            body = b"".join(content.parts)
                        else:
                            body = data[start:end]
                        out.append(content.delivery(channel, body))
                    else:
                        content.parts.append(data[start:end])
                        content.received = received
                elif kind == HEARTBEAT:
                    out.append(MethodFrame(channel, pamqp_heartbeat.Heartbeat()))
                else:
                    raise FrameError(f"unknown frame type {kind}")
            except (struct.error, IndexError) as exc:
                raise FrameError(f"a frame of type {kind} is cut short: {exc}") from None
            at = end + 1
        return at

    @staticmethod
    def _method(channel: int, data: bytes, start: int, end: int) -> MethodFrame:
        try:
            return MethodFrame(channel, method_frame(data, start, end))
        except FrameError as exc:
            raise FrameError(f"a method frame that cannot be read: {exc}") from None

    @staticmethod
    def _content_header(
        content: _Content, data: bytes, start: int, end: int, raw: bool = False
    ) -> None:
        class_id, _weight, body_size, _flags = CONTENT_HEADER.unpack_from(data, start)
        if class_id != 60:
            raise FrameError(f"a content header of class {class_id}, not basic")
        content.body_size = body_size
        # the frame's bounds are known, so the connection goes on: one bad message
        try:
            values = decode_properties(data, start + 12, end, _WANTED, raw)
        except FrameError as exc:
            try:  # the header table, or the properties themselves?
                values = decode_properties(data, start + 12, end, _WANTED, True)
            except FrameError:
                content.problem = f"its properties cannot be decoded: {exc}"
                return
            content.problem = f"its header table cannot be decoded: {exc}"
            values[HEADERS] = None
        # the properties in wire order (0-9-1's basic class; properties.NAMES)
        (_, _, headers, _, _, correlation_id, reply_to, expiration, _, timestamp, _, _, _, _) = (
            values
        )
        if raw:
            content.raw_headers = headers
        else:
            content.headers = headers
        if correlation_id is None and reply_to is None and expiration is None:
            if timestamp is not None:
                content.properties = (None, None, None, timestamp)
            return
        if bytes in (correlation_id.__class__, reply_to.__class__, expiration.__class__):
            correlation_id, reply_to, expiration = (
                lossy(correlation_id),
                lossy(reply_to),
                lossy(expiration),
            )
        content.properties = (correlation_id, reply_to, expiration, timestamp)
