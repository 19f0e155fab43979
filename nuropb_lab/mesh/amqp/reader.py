"""AMQP 0-9-1 frames read from a byte stream, for a connection that only consumes.

aiormq reads each frame with two awaits under a lock, unmarshals it with pamqp's generic code
(~15 us for a content header with nuropb's header table), queues it for its channel's task
and starts a task per delivered message: most of what a delivered event costs. Here the three
frames of a delivery (basic.deliver, content header, body) are parsed with ``struct`` from the
bytes as they arrive, with no await and no task, into one :class:`Delivery`. Every other
method frame (connection setup, closes, consume-ok ...) is rare and decoded by pamqp.

Of the content header's properties, ``headers`` is decoded (what a nuropb event needs; with
strings, voids, integers, booleans, nested tables and arrays decoded here, as the firehose's
trace records carry them, and any other table by pamqp with the decoders of connect.py that
tolerate strings that are not UTF-8), and so are ``correlation_id``, ``reply_to``,
``expiration`` and ``timestamp`` (what a wire tap needs to pair and name the messages it
copies); the others are skipped. For the consumers named in ``FrameReader.raw_headers`` the
header table is not decoded but kept as its bytes (``Delivery.raw_headers``): a consumer that
needs a few fields of a large table (a firehose trace record's) reads just those.
"""

from __future__ import annotations

import struct
from typing import Any, Final, NamedTuple

from pamqp import base as pamqp_base
from pamqp import frame as pamqp_frame
from pamqp import heartbeat as pamqp_heartbeat

from ..connect import field_table

__all__ = ["DEFAULT_FRAME_MAX", "Delivery", "FrameError", "FrameReader", "MethodFrame"]

_METHOD, _HEADER, _BODY, _HEARTBEAT = 1, 2, 3, 8
_FRAME_END: Final = 0xCE
_HEAD: Final = struct.Struct(">BHI")  # frame type, channel, payload size
_METHOD_ID: Final = struct.Struct(">HH")
_DELIVER: Final = (60, 60)
_TAG: Final = struct.Struct(">QB")  # delivery tag, redelivered (bit)
_CONTENT_HEADER: Final = struct.Struct(">HHQH")  # class, weight, body size, property flags
_LONG: Final = struct.Struct(">I")
_SHORT: Final = struct.Struct(">H")
_LONGLONG: Final = struct.Struct(">Q")
# field-table value types decoded here: type octet -> (struct, size)
_NUMBERS: Final = {
    0x49: (struct.Struct(">i"), 4),  # I
    0x69: (struct.Struct(">I"), 4),  # i
    0x6C: (struct.Struct(">q"), 8),  # l
    0x4C: (struct.Struct(">q"), 8),  # L (pamqp reads it signed too)
    0x73: (struct.Struct(">h"), 2),  # s
    0x75: (struct.Struct(">H"), 2),  # u
    0x62: (struct.Struct(">b"), 1),  # b
    0x42: (struct.Struct(">B"), 1),  # B
}
_PROTOCOL_HEADER: Final = b"AMQP"
#: The frame size before connection.tune says otherwise (RabbitMQ's default frame_max).
DEFAULT_FRAME_MAX: Final = 131_072


class FrameError(ValueError):
    """The bytes are not AMQP 0-9-1 as a broker sends it: the connection cannot go on."""


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
    #: why ``headers`` could not be decoded (then None), for the consumer to count it
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
        if self.properties is None and self.raw_headers is None:
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
            )
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


def _shortstr(data: bytes, at: int) -> tuple[str, int]:
    end = at + 1 + data[at]
    # not UTF-8: decoded lossily rather than raising (see connect.tolerate_non_utf8)
    return data[at + 1 : end].decode("utf-8", "replace"), end


# Header names seen, decoded once: the same few names come in every message.
_KEYS: dict[bytes, str] = {}
_KEYS_MAX = 1024
_unpack_long = _LONG.unpack_from


class _Unusual(Exception):
    """A field-table value of a type decoded by pamqp instead (floats, decimals, timestamps,
    byte arrays)."""


def _headers(data: bytes, at: int, limit: int) -> dict[str, Any]:
    """The field table at ``at``: decoded here unless a value is of an unusual type, then by
    pamqp (the whole table, so that both give the same)."""
    (size,) = _LONG.unpack_from(data, at)
    start = at + 4
    end = start + size
    if end > limit:
        raise ValueError("the header table runs past its frame")
    try:
        return _table(data, start, end)
    except _Unusual:
        return field_table(data[start - 4 : end])[1]


def _table(data: bytes, at: int, end: int) -> dict[str, Any]:
    """The entries of a field table from ``at`` to ``end``; strings and voids (all a nuropb
    message's headers hold) inline, other values by :func:`_value`."""
    table: dict[str, Any] = {}
    keys = _KEYS
    unpack = _unpack_long
    while at < end:
        key_end = at + 1 + data[at]
        raw_key = data[at + 1 : key_end]
        key = keys.get(raw_key)
        if key is None:
            key = raw_key.decode("utf-8", "replace")
            if len(keys) < _KEYS_MAX:
                keys[raw_key] = key
        kind = data[key_end]
        if kind == 0x53:  # "S", a long string
            at = key_end + 5 + unpack(data, key_end + 1)[0]
            raw = data[key_end + 5 : at]
            try:
                table[key] = raw.decode("utf-8")
            except UnicodeDecodeError:  # as pamqp: bytes
                table[key] = raw
        elif kind == 0x56:  # "V", void
            table[key] = None
            at = key_end + 1
        else:
            table[key], at = _value(data, key_end, end)
    if at != end:
        raise ValueError("the header table's values run past its end")
    return table


def _value(data: bytes, at: int, end: int) -> tuple[Any, int]:
    """The typed value at ``at`` (its type octet) and where the next one begins."""
    kind = data[at]
    at += 1
    if kind == 0x53:  # "S"
        (length,) = _LONG.unpack_from(data, at)
        stop = at + 4 + length
        raw = data[at + 4 : stop]
        try:
            return raw.decode("utf-8"), stop
        except UnicodeDecodeError:
            return raw, stop
    if kind == 0x46:  # "F", a table
        (size,) = _LONG.unpack_from(data, at)
        stop = at + 4 + size
        if stop > end:
            raise ValueError("a nested table runs past its table")
        return _table(data, at + 4, stop), stop
    if kind == 0x41:  # "A", an array
        (size,) = _LONG.unpack_from(data, at)
        stop = at + 4 + size
        if stop > end:
            raise ValueError("an array runs past its table")
        items = []
        at += 4
        while at < stop:
            item, at = _value(data, at, stop)
            items.append(item)
        if at != stop:
            raise ValueError("an array's values run past its end")
        return items, stop
    if kind == 0x74:  # "t"
        return data[at] != 0, at + 1
    if kind == 0x56:  # "V"
        return None, at
    number = _NUMBERS.get(kind)
    if number is None:
        raise _Unusual
    return number[0].unpack_from(data, at)[0], at + number[1]


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
            if self._have >= _HEAD.size:
                self._need = _HEAD.size + _HEAD.unpack_from(rest)[2] + 1
            else:
                self._need = _HEAD.size
        return out

    def _parse(self, data: bytes, out: list[Incoming]) -> int:
        """Parse the whole frames in ``data`` into ``out``; returns where the rest begins."""
        at = 0
        available = len(data)
        frame_max = self.frame_max
        contents = self._content
        while available - at >= _HEAD.size:
            kind, channel, size = _HEAD.unpack_from(data, at)
            if size + 8 > frame_max:
                if data.startswith(_PROTOCOL_HEADER, at):
                    raise FrameError("the broker does not speak AMQP 0-9-1")
                raise FrameError(f"a frame of {size} bytes, over frame_max ({frame_max})")
            start = at + _HEAD.size
            end = start + size
            if end >= available:
                break  # the frame end octet is still to come
            if data[end] != _FRAME_END:
                raise FrameError(f"frame of type {kind} does not end with 0xCE")
            try:
                if kind == _METHOD:
                    if _METHOD_ID.unpack_from(data, start) == _DELIVER:
                        if channel in contents:
                            raise FrameError("basic.deliver before the previous one's content")
                        consumer_tag, pos = _shortstr(data, start + 4)
                        delivery_tag, redelivered = _TAG.unpack_from(data, pos)
                        exchange, pos = _shortstr(data, pos + 9)
                        key, pos = _shortstr(data, pos)
                        if pos > end:
                            raise FrameError("basic.deliver runs past its frame")
                        contents[channel] = _Content(
                            consumer_tag, delivery_tag, bool(redelivered & 1), exchange, key
                        )
                    else:
                        out.append(self._method(channel, data[at : end + 1]))
                elif kind == _HEADER:
                    content = contents.get(channel)
                    if content is None or content.body_size >= 0:
                        raise FrameError(f"a content header out of place on channel {channel}")
                    self._content_header(
                        content, data, start, end, content.consumer_tag in self.raw_headers
                    )
                    if content.body_size == 0:
                        del contents[channel]
                        out.append(content.delivery(channel, b""))
                elif kind == _BODY:
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
                elif kind == _HEARTBEAT:
                    out.append(MethodFrame(channel, pamqp_heartbeat.Heartbeat()))
                else:
                    raise FrameError(f"unknown frame type {kind}")
            except (struct.error, IndexError) as exc:
                raise FrameError(f"a frame of type {kind} is cut short: {exc}") from None
            at = end + 1
        return at

    @staticmethod
    def _method(channel: int, raw: bytes) -> MethodFrame:
        try:
            frame = pamqp_frame.unmarshal(raw)[2]
        except Exception as exc:  # pamqp raises several kinds
            raise FrameError(f"a method frame pamqp cannot read: {exc}") from None
        assert isinstance(frame, pamqp_base.Frame)
        return MethodFrame(channel, frame)

    @staticmethod
    def _content_header(
        content: _Content, data: bytes, start: int, end: int, raw: bool = False
    ) -> None:
        class_id, _weight, body_size, flags = _CONTENT_HEADER.unpack_from(data, start)
        if class_id != 60:
            raise FrameError(f"a content header of class {class_id}, not basic")
        content.body_size = body_size
        at = start + _CONTENT_HEADER.size
        word = flags
        while word & 0x0001:  # more flag words (none in 0-9-1's basic class): skipped
            (word,) = _SHORT.unpack_from(data, at)
            at += 2
        # content_type and content_encoding come before headers
        if flags & 0x8000:
            at += 1 + data[at]
        if flags & 0x4000:
            at += 1 + data[at]
        if at > end:
            raise FrameError("the content header's properties run past its frame")
        if flags & 0x2000:
            (size,) = _LONG.unpack_from(data, at)
            if raw:
                if at + 4 + size > end:
                    content.problem = "its header table runs past its frame"
                else:
                    content.raw_headers = data[at : at + 4 + size]
            else:
                try:
                    content.headers = _headers(data, at, end)
                except (ValueError, struct.error, IndexError) as exc:
                    # the frame's bounds are known, so the connection goes on: one bad message
                    content.problem = f"its header table cannot be decoded: {exc}"
            at += 4 + size
        if not flags & 0x07C0:  # none of the properties a tap reads (as on most events)
            return
        if flags & 0x1000:  # delivery_mode
            at += 1
        if flags & 0x0800:  # priority
            at += 1
        correlation_id = reply_to = expiration = None
        timestamp = None
        # short strings, inline (as _shortstr): one of them is on nearly every message
        if flags & 0x0400:
            stop = at + 1 + data[at]
            correlation_id = data[at + 1 : stop].decode("utf-8", "replace")
            at = stop
        if flags & 0x0200:
            stop = at + 1 + data[at]
            reply_to = data[at + 1 : stop].decode("utf-8", "replace")
            at = stop
        if flags & 0x0100:
            stop = at + 1 + data[at]
            expiration = data[at + 1 : stop].decode("utf-8", "replace")
            at = stop
        if flags & 0x0080:  # message_id
            at += 1 + data[at]
        if flags & 0x0040:
            (timestamp,) = _LONGLONG.unpack_from(data, at)
            at += 8
        if at > end:
            raise FrameError("the content header's properties run past its frame")
        content.properties = (correlation_id, reply_to, expiration, timestamp)
