"""AMQP 0-9-1 framing: the numbers and layouts the lab's readers and writers share."""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "BODY",
    "CONTENT_HEADER",
    "DEFAULT_FRAME_MAX",
    "DELIVER",
    "FRAME_END",
    "FRAME_HEAD",
    "FRAME_OVERHEAD",
    "HEADER",
    "HEARTBEAT",
    "LONG",
    "LONGLONG",
    "METHOD",
    "METHOD_ID",
    "PROTOCOL_HEADER",
    "SHORT",
    "FrameError",
]

# frame types
METHOD: Final = 1
HEADER: Final = 2
BODY: Final = 3
HEARTBEAT: Final = 8

FRAME_HEAD: Final = struct.Struct(">BHI")  # frame type, channel, payload size
FRAME_END: Final = 0xCE
FRAME_OVERHEAD: Final = FRAME_HEAD.size + 1  # what a frame adds to its payload
#: what a client sends first (AMQP 0-9-1); a broker that refuses the version answers with its own
PROTOCOL_HEADER: Final = b"AMQP\x00\x00\x09\x01"
#: The frame size before connection.tune says otherwise (RabbitMQ's default frame_max).
DEFAULT_FRAME_MAX: Final = 131_072

METHOD_ID: Final = struct.Struct(">HH")  # class, method
DELIVER: Final = (60, 60)  # basic.deliver
CONTENT_HEADER: Final = struct.Struct(">HHQH")  # class, weight, body size, property flags

SHORT: Final = struct.Struct(">H")
LONG: Final = struct.Struct(">I")
LONGLONG: Final = struct.Struct(">Q")


class FrameError(ValueError):
    """Bytes that are not AMQP 0-9-1 as a broker sends it. From a frame reader: the connection
    cannot go on; from a field table whose frame is whole: that one message is bad."""
