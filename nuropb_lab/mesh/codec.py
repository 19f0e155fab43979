"""The nuropb message codec: JSON bodies, AMQP headers and message validation (no I/O)."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, Literal, cast

from .errors import NuropbMessageError
from .limits import DECODE_BYTES, DECODE_DEPTH

__all__ = [
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "SUPPORTED_PROTOCOLS",
    "DecodeLimits",
    "MessageType",
    "check_body",
    "check_headers",
    "decode_json",
    "encode_json",
    "headers_for",
    "to_jsonable",
]

PROTOCOL_VERSION: Final = "0.1.1"
SUPPORTED_PROTOCOLS: Final = frozenset({PROTOCOL_VERSION})
MessageType = Literal["request", "response", "command", "event"]
MESSAGE_TYPES: Final = ("request", "response", "command", "event")
CONTENT_TYPE: Final = "application/json"

_UTC = datetime.UTC


def _default(obj: Any) -> Any:
    """JSON for non-JSON types, as nuropb encodes them (datetime in UTC with a trailing Z)."""
    if isinstance(obj, datetime.datetime):
        if obj.tzinfo is not None:
            obj = obj.astimezone(_UTC).replace(tzinfo=None)
        return obj.isoformat() + "Z"
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, datetime.timedelta):
        return str(obj)
    if isinstance(obj, Decimal):
        return f"{obj:f}"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    # numpy and pandas scalars and arrays, which notebooks are full of
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


_encoder = json.JSONEncoder(separators=(",", ":"), default=_default, ensure_ascii=False)


def encode_json(obj: Any) -> bytes:
    """Encode a payload; raises NuropbMessageError for values that have no JSON form."""
    try:
        return _encoder.encode(obj).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise NuropbMessageError(f"cannot encode payload as JSON: {exc}") from exc


def to_jsonable(obj: Any) -> Any:
    """The plain JSON value ``obj`` travels as (what the other side decodes)."""
    return json.loads(encode_json(obj))


@dataclasses.dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds on what a decoder accepts, so a hostile body cannot exhaust the process."""

    max_bytes: int = DECODE_BYTES
    max_depth: int = DECODE_DEPTH


DEFAULT_LIMITS: Final = DecodeLimits()


def _depth(value: Any) -> int:
    """How many containers deep ``value`` nests (iteratively: no recursion limit)."""
    depth, level = 0, [value]
    while level:
        nxt: list[Any] = []
        containers = False
        for v in level:
            if isinstance(v, dict):
                containers = True
                nxt.extend(v.values())
            elif isinstance(v, list):
                containers = True
                nxt.extend(v)
        depth += containers
        level = nxt
    return depth


def decode_json(body: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> Any:
    """Decode a JSON body within ``limits``; every failure is a NuropbMessageError."""
    if len(body) > limits.max_bytes:
        raise NuropbMessageError(
            f"body of {len(body)} bytes is over the limit of {limits.max_bytes} bytes"
        )
    try:
        # Strictly UTF-8: json.loads(bytes) would also take UTF-16/32 and encoded surrogates.
        value = json.loads(body.decode("utf-8"))
    except RecursionError as exc:
        raise NuropbMessageError("body is nested too deeply") from exc
    except (ValueError, TypeError) as exc:
        raise NuropbMessageError(f"body is not valid UTF-8 JSON: {exc}") from exc
    # Counting brackets is cheap and bounds the depth from above, so the walk is rare.
    if body.count(b"[") + body.count(b"{") > limits.max_depth:
        depth = _depth(value)
        if depth > limits.max_depth:
            raise NuropbMessageError(
                f"body is nested {depth} levels deep, over the limit of {limits.max_depth}"
            )
    return value


def headers_for(
    nuropb_type: MessageType, trace_id: str | None, encrypted: bool, version: str
) -> dict[str, Any]:
    return {
        "nuropb_protocol": PROTOCOL_VERSION,
        "nuropb_version": version,
        "nuropb_type": nuropb_type,
        "trace_id": trace_id,
        "encrypted": "yes" if encrypted else "",
    }


def check_headers(headers: Mapping[str, Any] | None) -> tuple[MessageType, bool]:
    """The message type and encrypted flag of a message, or NuropbMessageError."""
    if not headers:
        raise NuropbMessageError("message has no nuropb headers")
    protocol = headers.get("nuropb_protocol")
    if isinstance(protocol, bytes):
        protocol = protocol.decode(errors="replace")
    # Only a str can be supported; a list or table value would not even hash.
    if not isinstance(protocol, str) or protocol not in SUPPORTED_PROTOCOLS:
        raise NuropbMessageError(f"nuropb_protocol {protocol!r} is not supported")
    nuropb_type = headers.get("nuropb_type")
    if isinstance(nuropb_type, bytes):
        nuropb_type = nuropb_type.decode(errors="replace")
    if not isinstance(nuropb_type, str) or nuropb_type not in MESSAGE_TYPES:
        raise NuropbMessageError(f"nuropb_type {nuropb_type!r} is not supported")
    encrypted = headers.get("encrypted")
    return cast(MessageType, nuropb_type), encrypted in ("yes", b"yes")


_REQUIRED: Final[dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]]] = {
    "request": (("method", str), ("params", dict)),
    "command": (("method", str), ("params", dict)),
    "event": (("topic", str),),
    "response": (),
}


def check_body(nuropb_type: MessageType, body: Any) -> dict[str, Any]:
    """Validate a decoded body's shape for its type; returns it as a dict."""
    if not isinstance(body, dict):
        raise NuropbMessageError(
            f"{nuropb_type} body is a JSON {type(body).__name__}, not an object"
        )
    for name, kind in _REQUIRED[nuropb_type]:
        value = body.get(name)
        if not isinstance(value, kind):
            if name not in body:
                raise NuropbMessageError(f"{nuropb_type} body has no {name!r} field")
            raise NuropbMessageError(f"{nuropb_type} field {name!r} must be a {_kind_name(kind)}")
    context = body.get("context")
    if context is not None and not isinstance(context, dict):
        raise NuropbMessageError(f"{nuropb_type} field 'context' must be an object")
    if nuropb_type == "event" and "event" not in body:
        raise NuropbMessageError("event body has no 'event' field")
    return body


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names: dict[type, str] = {str: "string", dict: "object", list: "list"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)
