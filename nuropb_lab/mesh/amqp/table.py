"""AMQP field tables and the values in them: the one codec of the lab's wire code.

:func:`decode_table` decodes a whole table as pamqp does, with differences that keep a
connection alive: a key that is not UTF-8 is decoded lossily (U+FFFD) and a timestamp past
what a datetime holds stays an int, where pamqp raises; any malformed table raises
:class:`FrameError` (a ValueError). A long string that is not UTF-8 is bytes, as in pamqp.
Strings and voids, all a nuropb message's headers hold, are decoded inline; header names seen
are decoded once.

:func:`pick` reads only the values of some keys, skipping the others by their sizes: a
firehose trace record's table holds some 25 values, a wire tap uses eight of them.

:func:`encode_table` writes a table as pamqp does (keys sorted).
"""

from __future__ import annotations

import datetime
import decimal
import struct
from collections.abc import Mapping
from typing import Any, Final, Literal

from pamqp import encode as pamqp_encode

from .constants import LONG, LONGLONG, FrameError

__all__ = [
    "TEXT",
    "TEXTS",
    "Pick",
    "decode_table",
    "encode_short_string",
    "encode_table",
    "lossy",
    "pick",
    "short_string",
    "short_text",
    "table_entries",
    "text",
    "timestamp",
]

_unpack_long = LONG.unpack_from
# value type octet -> (struct, size) of the numbers
_NUMBERS: Final = {
    0x49: (struct.Struct(">i"), 4),  # I
    0x69: (struct.Struct(">I"), 4),  # i
    0x6C: (struct.Struct(">q"), 8),  # l
    0x4C: (struct.Struct(">q"), 8),  # L (pamqp reads it signed too)
    0x73: (struct.Struct(">h"), 2),  # s
    0x75: (struct.Struct(">H"), 2),  # u
    0x62: (struct.Struct(">b"), 1),  # b
    0x42: (struct.Struct(">B"), 1),  # B
    0x66: (struct.Struct(">f"), 4),  # f
    0x64: (struct.Struct(">d"), 8),  # d
}
_DECIMAL: Final = struct.Struct(">Bi")  # D: decimal places, then a signed value
# value type octet -> its size, for the types of a fixed size (see _skip)
_FIXED: Final = {
    **{kind: size for kind, (_, size) in _NUMBERS.items()},
    0x74: 1,  # t
    0x54: 8,  # T
    0x44: 5,  # D
    0x56: 0,  # V
    0x00: 0,  # a void as some clients write it (pamqp reads it so)
}
_SIZED: Final = frozenset((0x53, 0x46, 0x41, 0x78))  # S F A x: a 4-byte length, then the value

# Header names seen, decoded once: the same few names come in every message.
_KEYS: dict[bytes, str] = {}
_KEYS_MAX: Final = 1024


def text(raw: bytes) -> str | bytes:
    """UTF-8 text, or the bytes themselves when they are not (as pamqp reads a long string)."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def short_string(data: bytes, at: int) -> tuple[str | bytes, int]:
    """The short string at ``at`` (see :func:`text`) and where the next value begins."""
    stop = at + 1 + data[at]
    return text(data[at + 1 : stop]), stop


def short_text(data: bytes, at: int) -> tuple[str, int]:
    """The short string at ``at`` as text, decoded lossily (U+FFFD) when it is not UTF-8 (a
    name the lab shows or pairs messages by), and where the next value begins."""
    stop = at + 1 + data[at]
    return data[at + 1 : stop].decode("utf-8", "replace"), stop


def lossy(value: str | bytes | None) -> str | None:
    """A decoded string as text: bytes (one that is not UTF-8) decoded lossily."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def timestamp(seconds: int) -> datetime.datetime | int:
    """An AMQP timestamp as pamqp reads it: one past the year 2106 is taken as milliseconds.
    One past what a datetime holds stays the int on the wire, where pamqp raises (and aiormq
    then drops the connection, as for a string that is not UTF-8)."""
    try:
        return datetime.datetime.fromtimestamp(
            seconds / 1000.0 if seconds > 0xFFFFFFFF else seconds, tz=datetime.UTC
        )
    except (OverflowError, OSError, ValueError):
        return seconds


def decode_table(data: bytes, at: int, end: int) -> dict[str, Any]:
    """The entries of a field table, from ``at`` (past its 4-byte size) to ``end``."""
    try:
        return table_entries(data, at, end)
    except (IndexError, struct.error) as exc:
        raise FrameError(f"a field table is cut short: {exc}") from None
    except RecursionError:
        raise FrameError("a field table is nested too deep") from None


def table_entries(data: bytes, at: int, end: int) -> dict[str, Any]:
    """:func:`decode_table` for a caller that reads more than the table and catches, once for
    all it reads, what bytes cut short raise (IndexError, struct.error) and a table nested
    past the stack (RecursionError)."""
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
                table[key] = raw.decode()
            except UnicodeDecodeError:
                table[key] = raw
        elif kind == 0x56:  # "V", void
            table[key] = None
            at = key_end + 1
        else:
            table[key], at = _value(data, key_end, end)
    if at != end:
        raise FrameError("a field table's values run past its end")
    return table


def _value(data: bytes, at: int, end: int) -> tuple[Any, int]:
    """The value whose type octet is at ``at``, and where the next one begins."""
    kind = data[at]
    at += 1
    if kind == 0x53:  # "S"
        stop = at + 4 + _unpack_long(data, at)[0]
        return text(data[at + 4 : stop]), stop
    if kind == 0x46:  # "F", a table
        stop = at + 4 + _unpack_long(data, at)[0]
        if stop > end:
            raise FrameError("a nested table runs past its table")
        return table_entries(data, at + 4, stop), stop
    if kind == 0x41:  # "A", an array
        stop = at + 4 + _unpack_long(data, at)[0]
        if stop > end:
            raise FrameError("an array runs past its table")
        items = []
        at += 4
        while at < stop:
            item, at = _value(data, at, stop)
            items.append(item)
        if at != stop:
            raise FrameError("an array's values run past its end")
        return items, stop
    if kind == 0x74:  # "t"
        return data[at] != 0, at + 1
    if kind == 0x56 or kind == 0x00:  # void
        return None, at
    number = _NUMBERS.get(kind)
    if number is not None:
        return number[0].unpack_from(data, at)[0], at + number[1]
    if kind == 0x54:  # "T"
        return timestamp(LONGLONG.unpack_from(data, at)[0]), at + 8
    if kind == 0x44:  # "D"
        places, value = _DECIMAL.unpack_from(data, at)
        return decimal.Decimal(value) * (decimal.Decimal(10) ** -places), at + 5
    if kind == 0x78:  # "x", a byte array
        stop = at + 4 + _unpack_long(data, at)[0]
        return bytearray(data[at + 4 : stop]), stop
    raise FrameError(f"unknown field type {bytes((kind,))!r}")


def _skip(data: bytes, at: int) -> int:
    """Past the value whose type octet is at ``at``."""
    kind = data[at]
    if kind in _SIZED:
        length: int = _unpack_long(data, at + 1)[0]
        return at + 5 + length
    size = _FIXED.get(kind)
    if size is None:
        raise FrameError(f"unknown field type {bytes((kind,))!r}")
    return at + 1 + size


#: a :class:`Pick` leaf: a string's value as text, lossily (U+FFFD) when it is not UTF-8
TEXT: Final = "text"
#: a :class:`Pick` leaf: the strings of an array, as text
TEXTS: Final = "texts"


class Pick:
    """Which keys of a field table :func:`pick` reads, and as what: :data:`TEXT`,
    :data:`TEXTS`, or a Pick of the keys of a nested table. Its leaves (the TEXT and TEXTS
    keys, nested ones in their place) are numbered in the order given: pick returns their
    values in that order."""

    __slots__ = ("keys", "leaves", "sizes")

    def __init__(self, keys: Mapping[str, Pick | Literal["text", "texts"]]) -> None:
        # key -> (TEXT, TEXTS or the nested Pick; its leaf's number, or its leaves' first)
        self.keys: dict[bytes, tuple[Pick | str, int]] = {}
        self.leaves = 0
        for name, inner in keys.items():
            self.keys[name.encode()] = (inner, self.leaves)
            self.leaves += inner.leaves if isinstance(inner, Pick) else 1
        # a key's length is looked at first: most keys are skipped without being sliced
        self.sizes = frozenset(len(raw) for raw in self.keys)


def pick(table: bytes, wanted: Pick) -> list[Any]:
    """The values of the ``wanted`` leaves in the field table ``table`` (its 4-byte size, then
    its entries) and its nested tables, in their order: str for TEXT, list[str] for TEXTS,
    None for a key absent from the table (or whose value is of another type)."""
    found: list[Any] = [None] * wanted.leaves
    try:
        end = 4 + _unpack_long(table, 0)[0]
        if end > len(table):
            raise FrameError("the field table runs past its bytes")
        _pick(table, 4, end, wanted, found, 0)
    except (IndexError, struct.error) as exc:
        raise FrameError(f"a field table is cut short: {exc}") from None
    except RecursionError:
        raise FrameError("a field table is nested too deep") from None
    return found


def _pick(data: bytes, at: int, end: int, wanted: Pick, found: list[Any], first: int) -> None:
    """Into ``found``, from its place ``first`` on, ``wanted``'s leaves in the entries from
    ``at`` to ``end``."""
    keys, sizes = wanted.keys, wanted.sizes
    unpack = _unpack_long
    while at < end:
        size = data[at]
        key = at + 1
        at = key + size
        kind = data[at]
        if size in sizes:
            entry = keys.get(data[key:at])
            if entry is not None:
                inner, place = entry
                if inner == TEXT:
                    if kind == 0x53:
                        stop = at + 5 + unpack(data, at + 1)[0]
                        found[first + place] = data[at + 5 : stop].decode("utf-8", "replace")
                        at = stop
                        continue
                elif inner == TEXTS:
                    if kind == 0x41:
                        stop = at + 5 + unpack(data, at + 1)[0]
                        if stop > end:
                            raise FrameError("an array runs past its table")
                        found[first + place] = _texts(data, at + 5, stop)
                        at = stop
                        continue
                elif kind == 0x46:
                    stop = at + 5 + unpack(data, at + 1)[0]
                    if stop > end:
                        raise FrameError("a nested table runs past its table")
                    _pick(data, at + 5, stop, inner, found, first + place)  # type: ignore[arg-type]
                    at = stop
                    continue
        if kind == 0x53:
            at += 5 + unpack(data, at + 1)[0]
        else:
            at = _skip(data, at)
    if at != end:
        raise FrameError("a field table's values run past its end")


def _texts(data: bytes, at: int, end: int) -> list[str]:
    """The strings of the array whose values run from ``at`` to ``end``, as text."""
    items: list[str] = []
    while at < end:
        if data[at] == 0x53:
            start = at + 5
            at = start + _unpack_long(data, at + 1)[0]
            items.append(data[start:at].decode("utf-8", "replace"))
        else:
            at = _skip(data, at)
    if at != end:
        raise FrameError("an array's values run past its end")
    return items


def encode_short_string(value: str) -> bytes:
    data = value.encode()
    if len(data) > 255:
        raise ValueError(f"{value[:40]!r}... is longer than 255 bytes (an AMQP short string)")
    return bytes((len(data),)) + data


def encode_table(table: Mapping[str, Any]) -> bytes:
    """An AMQP field table (as pamqp encodes it: keys sorted)."""
    parts: list[bytes] = []
    for key in sorted(table):
        value = table[key]
        parts.append(encode_short_string(key))
        if value.__class__ is str:
            data = value.encode()
            parts.append(b"S" + LONG.pack(len(data)) + data)
        elif value is None:
            parts.append(b"V")
        else:
            parts.append(pamqp_encode.encode_table_value(value))
    payload = b"".join(parts)
    return LONG.pack(len(payload)) + payload
