"""How much the lab keeps of what the mesh sends: every limit in one place (README, Limits).

Any peer on a mesh may send anything, as large and as many as the broker lets it. What the lab
keeps of it (taps, tails and their rates, discovery, remote error classes, the history, dead
letters) is bounded in bytes as well as in rows: a field over its limit is kept as a preview,
its first bytes and its full size (``"abc… (2,900,000 bytes)"``), and a tap or a tail drops its
oldest rows past its byte budget, counting them.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = [
    "CONTEXT_BYTES",
    "DEAD_LETTER_BODY",
    "DECODE_BYTES",
    "DECODE_DEPTH",
    "DISCOVERY_PROBES",
    "ERROR_BYTES",
    "EVENT_BYTES",
    "HISTORY_PARAMS",
    "NAMES_KEPT",
    "OTHER_TOPICS",
    "PAYLOAD_BYTES",
    "RATE_TOPICS",
    "ROUTED_QUEUES",
    "ROW_BYTES",
    "TAIL_BYTES",
    "TAP_BYTES",
    "TAP_DECODE_BYTES",
    "TEXT_BYTES",
    "clip_text",
    "clip_value",
]

MiB: Final = 1024 * 1024

#: a JSON body is decoded at most this large and this deeply nested (the codec's defaults)
DECODE_BYTES: Final = 16 * MiB
DECODE_DEPTH: Final = 100
#: a tap decodes bodies at most this large; a larger one is shown by its size only
TAP_DECODE_BYTES: Final = 4 * MiB

#: a name or an id kept from the mesh: method, service, topic, trace and correlation ids, an
#: error's class (AMQP's own short strings, routing keys among them, stop at 255)
TEXT_BYTES: Final = 256
#: an error's text (a tap's error column, a call's description in the history)
ERROR_BYTES: Final = 4096
#: a message's context
CONTEXT_BYTES: Final = 4096
#: a tap's params, result or event (its default ``body_limit``)
PAYLOAD_BYTES: Final = 2048
#: a tail's event (and its target)
EVENT_BYTES: Final = 64 * 1024
#: the queues an event was routed to, named in a tap's row
ROUTED_QUEUES: Final = 100
#: what a row costs beside its fields, in a byte budget
ROW_BYTES: Final = 512
#: all the rows a tap keeps, and all a tail keeps (beside their row limits)
TAP_BYTES: Final = 32 * MiB
TAIL_BYTES: Final = 32 * MiB
#: distinct topics a tail's rates count in their window; the rest are counted as one
RATE_TOPICS: Final = 1000
OTHER_TOPICS: Final = "(other)"
#: services one discovery asks to describe themselves; the rest are listed, not probed
DISCOVERY_PROBES: Final = 200
#: queue and connection names a tap remembers who they stand for
NAMES_KEPT: Final = 10_000
#: characters of a call's params in the history, of a dead letter's body in its row
HISTORY_PARAMS: Final = 80
DEAD_LETTER_BODY: Final = 200


def _preview(data: bytes, limit: int) -> str:
    return data[:limit].decode("utf-8", "ignore") + f"… ({len(data):,} bytes)"


def clip_text(text: str, limit: int = TEXT_BYTES) -> str:
    """``text`` as it is when it is at most ``limit`` bytes (UTF-8), else its preview."""
    if len(text) <= limit // 4:  # at most 4 bytes a character: no need to count
        return text
    data = text.encode("utf-8", "surrogatepass")
    return text if len(data) <= limit else _preview(data, limit)


def clip_value(value: Any, limit: int) -> tuple[Any, bool]:
    """A decoded JSON value as it is when its JSON is at most ``limit`` bytes, else its
    preview (a str); and whether it was cut. Costs a JSON encoding for a list or dict: call it
    when the body it came from is over ``limit``."""
    if isinstance(value, str):
        clipped = clip_text(value, limit)
        return clipped, clipped is not value
    if not isinstance(value, (dict, list)):
        return value, False  # None, a bool or a number (ints have at most 4,300 digits)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, RecursionError) as exc:
        return f"(not kept: {exc})", True
    if len(text) <= limit // 4:
        return value, False
    data = text.encode("utf-8", "surrogatepass")
    return (value, False) if len(data) <= limit else (_preview(data, limit), True)
