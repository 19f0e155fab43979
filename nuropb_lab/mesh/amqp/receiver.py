"""aiormq's frame receiver, reading the socket in chunks.

aiormq reads every frame with three ``readexactly`` awaits under a lock into a BytesIO, then
unmarshals it with pamqp; a delivered message is three frames. That reading was the largest
single cost of a one-way message (a command or an event) in a lab service: more than its
handling. :class:`ChunkedFrameReceiver` reads what the socket has (up to 64 KiB at a time)
into a buffer and cuts the frames out of it, with no await while a whole frame is buffered;
the frames, their unmarshalling (pamqp, with connect.py's tolerant decoders) and every error
are aiormq's own. :func:`read_frames_in_chunks` puts it in aiormq's place.

A content header is the other large cost: pamqp decodes each property and header value
generically (~15 us with nuropb's header table). :func:`content_header` decodes what nuropb
sends (short strings, octets, a table of strings and voids) with ``struct`` into the same
pamqp objects, and leaves anything else (a timestamp, other table values, a string that is
not UTF-8) to pamqp, so that the result is always what pamqp would make.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, Final

import aiormq.connection
import pamqp.frame
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError, ProtocolSyntaxError
from pamqp.commands import Basic
from pamqp.exceptions import PAMQPException
from pamqp.header import ContentHeader

__all__ = ["ChunkedFrameReceiver", "content_header", "read_frames_in_chunks"]

CHUNK: Final = 1 << 16
_HEAD: Final = 7  # frame type (1), channel (2), payload size (4); then payload and 0xCE
_HEADER_FRAME: Final = 2
_FRAME_END: Final = 0xCE
_CONTENT: Final = struct.Struct(">HHQH")  # class, weight, body size, property flags
_LONG: Final = struct.Struct(">I")
# (name, flag, type) of Basic.Properties in wire order
_PROPERTIES: Final = [
    (name, Basic.Properties.flags[name], getattr(Basic.Properties, "_" + name))
    for name in Basic.Properties.__slots__
]


def _table(raw: bytes, at: int, end: int) -> dict[str, Any] | None:
    """A field table of strings and voids; None for anything else (pamqp decodes it)."""
    table: dict[str, Any] = {}
    while at < end:
        key_end = at + 1 + raw[at]
        key = raw[at + 1 : key_end].decode()
        kind = raw[key_end]
        if kind == 0x53:  # "S", a long string
            (length,) = _LONG.unpack_from(raw, key_end + 1)
            at = key_end + 5 + length
            table[key] = raw[key_end + 5 : at].decode()
        elif kind == 0x56:  # "V", void
            table[key] = None
            at = key_end + 1
        else:
            return None
    return table if at == end else None


def content_header(raw: bytes) -> aiormq.connection.ReceivedFrame | None:
    """A whole content header frame decoded as pamqp would, or None to let pamqp do it."""
    if raw[0] != _HEADER_FRAME or raw[-1] != _FRAME_END:
        return None
    end = len(raw) - 1
    class_id, weight, body_size, flags = _CONTENT.unpack_from(raw, _HEAD)
    if flags & 1:  # more property flags follow: not Basic's
        return None
    at = _HEAD + _CONTENT.size
    properties = Basic.Properties.__new__(Basic.Properties)
    try:
        for name, flag, kind in _PROPERTIES:
            value: Any
            if not flags & flag:
                value = "" if name == "cluster_id" else None  # Basic.Properties() defaults
            elif kind == "shortstr":
                start = at + 1
                at = start + raw[at]
                value = raw[start:at].decode()
            elif kind == "octet":
                value = raw[at]
                at += 1
            elif kind == "table":
                (length,) = _LONG.unpack_from(raw, at)
                start = at + 4
                at = start + length
                value = _table(raw, start, at)
                if value is None:
                    return None
            else:  # a timestamp
                return None
            setattr(properties, name, value)
    except (UnicodeDecodeError, IndexError, struct.error):
        return None
    if at != end:
        return None
    header = ContentHeader.__new__(ContentHeader)
    header.class_id = class_id
    header.weight = weight
    header.body_size = body_size
    header.properties = properties
    return len(raw), int.from_bytes(raw[1:3], "big"), header


class ChunkedFrameReceiver(aiormq.connection.FrameReceiver):
    """Frames cut out of chunks read from the stream (see the module's doc)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader)
        self._buffer = bytearray()
        self._at = 0  # where the next frame starts in the buffer

    async def get_frame(self) -> aiormq.connection.ReceivedFrame:
        buffer = self._buffer
        while True:
            at = self._at
            if len(buffer) - at >= _HEAD:
                if not self.started:
                    if buffer.startswith(b"AMQP", at):  # the broker refused our protocol
                        raise ProtocolSyntaxError("Unexpected AMQP protocol header")
                    self.started = True
                end = at + _HEAD + int.from_bytes(buffer[at + 3 : at + _HEAD], "big") + 1
                if len(buffer) >= end:
                    raw = bytes(memoryview(buffer)[at:end])
                    if end == len(buffer):
                        buffer.clear()
                        self._at = 0
                    else:
                        self._at = end
                    try:
                        return content_header(raw) or pamqp.frame.unmarshal(raw)
                    except PAMQPException as e:
                        raise InvalidFrameError(str(e)) from e
            if self._at:  # keep only the partial frame before reading on
                del buffer[: self._at]
                self._at = 0
            await self._read_more(buffer)

    async def _read_more(self, buffer: bytearray) -> None:
        reader = self.reader
        if reader.at_eof():
            raise (
                StopAsyncIteration
                if not buffer
                else AMQPConnectionError(
                    f"Server connection unexpectedly closed with {len(buffer)} bytes of a frame"
                )
            )
        try:
            chunk = await reader.read(CHUNK)
        except ConnectionRefusedError as e:
            raise AMQPConnectionError(f"Server connection refused: {e!r}") from e
        except ConnectionResetError as e:
            raise AMQPConnectionError(f"Server connection reset: {e!r}") from e
        except ConnectionError as e:
            raise AMQPConnectionError(f"Server connection error: {e!r}") from e
        except OSError as e:
            raise AMQPConnectionError(f"Server communication error: {e!r}") from e
        if not chunk:
            if not buffer:
                raise StopAsyncIteration
            raise AMQPConnectionError(
                f"Server connection unexpectedly closed with {len(buffer)} bytes of a frame"
            )
        buffer += chunk

    async def __anext__(self) -> aiormq.connection.ReceivedFrame:
        return await self.get_frame()


def read_frames_in_chunks() -> None:
    """Have aiormq's connections (made from now on) read their frames in chunks."""
    aiormq.connection.FrameReceiver = ChunkedFrameReceiver  # type: ignore[misc]
