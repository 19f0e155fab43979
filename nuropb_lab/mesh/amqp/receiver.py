"""The frames of the lab's aio-pika connections: read in chunks, decoded by this package.

aiormq reads every frame with three ``readexactly`` awaits under a lock into a BytesIO, then
unmarshals it with pamqp; a delivered message is three frames. That reading was the largest
single cost of a one-way message (a command or an event) in a lab service: more than its
handling. :class:`ChunkedFrameReceiver` reads what the socket has (up to 64 KiB at a time)
into a buffer and cuts the frames out of it, with no await while a whole frame is buffered;
they are decoded into the pamqp objects aiormq expects by unmarshal.py (struct on the bytes,
and a string that is not UTF-8 does not cost the connection). Its errors are aiormq's own.

:class:`ChunkedConnection` is the aiormq connection that reads with it; the lab's aio-pika
connections are made of it (connect.py). Only those connections read so: aiormq's
``FrameReceiver`` and pamqp's decoders stay as they are for every other connection in the
process. Likewise only aiormq's records about these connections are kept quiet (the lab's
transport reports a lost connection in one line, where aiormq logs an error, a warning and a
traceback): :class:`OwnRecords` drops the records logged in a ChunkedConnection's context.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Final

import aiormq.connection
from aiormq.abc import FieldTable
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError, ProtocolSyntaxError

from .constants import FRAME_HEAD, PROTOCOL_HEADER, FrameError
from .unmarshal import unmarshal

__all__ = ["ChunkedConnection", "ChunkedFrameReceiver"]

CHUNK: Final = 1 << 16
_HEAD: Final = FRAME_HEAD.size


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
                    # the broker refused our protocol version, answering with its own
                    if buffer.startswith(PROTOCOL_HEADER[:4], at):
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
                        return unmarshal(raw)
                    except FrameError as e:
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


# True in the context of a lab connection: its reader, writer and callbacks, which aiormq
# makes while it connects, copy the context it connects in
_OWN: contextvars.ContextVar[bool] = contextvars.ContextVar("nuropb_lab_connection", default=False)


class OwnRecords(logging.Filter):
    """Drops aiormq's records logged in a lab connection's context, and no others."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _OWN.get()


_QUIET = OwnRecords()


class ChunkedConnection(aiormq.Connection):
    """aiormq's connection, reading with a :class:`ChunkedFrameReceiver` once it is open.

    aiormq opens the connection with its own receiver (the handshake's few frames, read one
    by one: nothing is left buffered in it) and then hands that receiver to its reader loop;
    this class hands the loop a ChunkedFrameReceiver of the same stream instead. The loop is
    aiormq 7's private ``__reader`` (aiormq is pinned below 8; tests/test_isolation.py fails
    if a lab connection stops reading with this receiver).
    """

    async def connect(self, client_properties: FieldTable | None = None) -> bool:
        logger = logging.getLogger(aiormq.connection.__name__)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)  # what it drops is only ever this connection's
        token = _OWN.set(True)
        try:
            return bool(await super().connect(client_properties))
        finally:
            _OWN.reset(token)

    async def _Connection__reader(self, frame_receiver: aiormq.connection.FrameReceiver) -> None:
        reader = super()._Connection__reader  # type: ignore[misc]
        await reader(ChunkedFrameReceiver(frame_receiver.reader))
