"""A content header's properties (the basic class's, all there is in 0-9-1): one decoder, for
the frames aiormq hands on (unmarshal.py) and the lab's own reader (reader.py)."""

from __future__ import annotations

import struct
from typing import Any, Final

from pamqp import commands as spec

from .constants import LONG, LONGLONG, SHORT, FrameError
from .table import table_entries

__all__ = [
    "ALL",
    "CLUSTER_ID",
    "CORRELATION_ID",
    "EXPIRATION",
    "HEADERS",
    "NAMES",
    "REPLY_TO",
    "TIMESTAMP",
    "decode_properties",
    "wanted",
]

#: the properties in wire order (and pamqp's), as their values come from decode_properties
NAMES: Final = tuple(spec.Basic.Properties.__slots__)
HEADERS: Final = NAMES.index("headers")
CORRELATION_ID: Final = NAMES.index("correlation_id")
REPLY_TO: Final = NAMES.index("reply_to")
EXPIRATION: Final = NAMES.index("expiration")
TIMESTAMP: Final = NAMES.index("timestamp")
CLUSTER_ID: Final = NAMES.index("cluster_id")

_SHORTSTR, _OCTET, _TABLE, _TIMESTAMP = range(4)
_SKIP: Final = 4  # added to a kind: the property is skipped, not decoded
_KINDS: Final = {"shortstr": _SHORTSTR, "octet": _OCTET, "table": _TABLE, "timestamp": _TIMESTAMP}
_LAYOUT: Final = tuple(
    (spec.Basic.Properties.flags[name], _KINDS[spec.Basic.Properties.amqp_type(name)])
    for name in NAMES
)
#: every property
ALL: Final = sum(flag for flag, _ in _LAYOUT)
# (property flags, wanted) -> (index, kind) of the properties present, in order: a
# publisher's messages share them
_PLANS: dict[int, tuple[tuple[int, int], ...]] = {}
_PLANS_MAX: Final = 256


def wanted(*names: str) -> int:
    """The properties ``names``, for decode_properties' ``wanted``."""
    return sum(spec.Basic.Properties.flags[name] for name in names)


def decode_properties(
    data: bytes, at: int, end: int, wanted: int = ALL, raw_headers: bool = False
) -> list[Any]:
    """The values of the properties whose flags are at ``at`` (a content header's payload, 12
    bytes in) and which end by ``end``, in :data:`NAMES` order: None for those absent, and
    for those not ``wanted`` (skipped).

    Short strings are str, or bytes when not UTF-8 (as a long string in pamqp); ``headers``
    is decoded as table.decode_table decodes it, or with ``raw_headers`` left as its bytes
    (its 4-byte size, then its entries); ``timestamp`` is the int on the wire (seconds, see
    table.timestamp).
    """
    try:
        flags = data[at] << 8 | data[at + 1]
        at += 2
        if flags & 0x0001:  # more flag words (none in 0-9-1's basic class): skipped
            word = flags
            while word & 0x0001:
                (word,) = SHORT.unpack_from(data, at)
                at += 2
        plan = _PLANS.get(flags | wanted << 16)
        if plan is None:
            plan = tuple(
                (i, kind if wanted & flag else kind + _SKIP)
                for i, (flag, kind) in enumerate(_LAYOUT)
                if flags & flag
            )
            if len(_PLANS) < _PLANS_MAX:
                _PLANS[flags | wanted << 16] = plan
        values: list[Any] = [None] * len(NAMES)
        for index, kind in plan:
            if kind == _SHORTSTR:  # as table.text, inline: most properties are short strings
                stop = at + 1 + data[at]
                raw = data[at + 1 : stop]
                try:
                    values[index] = raw.decode()
                except UnicodeDecodeError:
                    values[index] = raw
                at = stop
            elif kind == _SHORTSTR + _SKIP:
                at += 1 + data[at]
            elif kind == _TABLE:
                stop = at + 4 + LONG.unpack_from(data, at)[0]
                if stop > end:
                    raise FrameError("the header table runs past its frame")
                values[index] = data[at:stop] if raw_headers else table_entries(data, at + 4, stop)
                at = stop
            elif kind == _OCTET:
                values[index] = data[at]
                at += 1
            elif kind == _TIMESTAMP:
                values[index] = LONGLONG.unpack_from(data, at)[0]
                at += 8
            elif kind == _TABLE + _SKIP:
                at += 4 + LONG.unpack_from(data, at)[0]
            else:
                at += 1 if kind == _OCTET + _SKIP else 8
    except (IndexError, struct.error) as exc:
        raise FrameError(f"the properties are cut short: {exc}") from None
    except RecursionError:
        raise FrameError("the header table is nested too deep") from None
    if at > end:
        raise FrameError("the properties run past their frame")
    return values
