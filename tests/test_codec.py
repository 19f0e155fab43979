"""The codec without a broker: nuropb's JSON conventions, headers, body shapes, limits."""

from __future__ import annotations

import dataclasses
import datetime
import json
from decimal import Decimal

import pytest

from nuropb_lab.mesh import codec
from nuropb_lab.mesh.errors import NuropbMessageError


@dataclasses.dataclass
class Point:
    x: int
    when: datetime.date


def roundtrip(value: object) -> object:
    return json.loads(codec.encode_json(value))


def test_datetimes_travel_as_utc_with_z() -> None:
    naive = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
    assert roundtrip(naive) == "2024-05-06T07:08:09.123456Z"
    aware = datetime.datetime(
        2024, 5, 6, 9, 8, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    assert roundtrip(aware) == "2024-05-06T07:08:09Z"


def test_dates_times_timedeltas_decimals() -> None:
    assert roundtrip(datetime.date(2024, 1, 2)) == "2024-01-02"
    assert roundtrip(datetime.time(13, 14, 15)) == "13:14:15"
    assert roundtrip(datetime.timedelta(hours=1, minutes=2)) == "1:02:00"
    assert roundtrip(Decimal("1.10")) == "1.10"
    assert roundtrip(Decimal("1E+3")) == "1000"


def test_dataclass_set_tuple() -> None:
    assert roundtrip(Point(1, datetime.date(2020, 2, 3))) == {"x": 1, "when": "2020-02-03"}
    assert sorted(roundtrip({3, 1, 2})) == [1, 2, 3]  # type: ignore[type-var]
    assert roundtrip((1, "a")) == [1, "a"]
    assert roundtrip({"nested": [Decimal("2.5"), {1}]}) == {"nested": ["2.5", [1]]}


def test_numpy_like_scalars_use_item() -> None:
    class Scalar:
        def item(self) -> int:
            return 7

    assert roundtrip({"n": Scalar()}) == {"n": 7}


def test_unencodable_is_a_clear_error() -> None:
    with pytest.raises(NuropbMessageError, match="object is not JSON serialisable"):
        codec.encode_json({"x": object()})


def test_decode_rejects_bad_bodies() -> None:
    with pytest.raises(NuropbMessageError, match="not valid UTF-8 JSON"):
        codec.decode_json(b"{nope")
    with pytest.raises(NuropbMessageError, match="not valid UTF-8 JSON"):
        codec.decode_json(b"\xff\xfe")
    with pytest.raises(NuropbMessageError, match="over the limit of 10 bytes"):
        codec.decode_json(b'{"a": "0123456789"}', codec.DecodeLimits(max_bytes=10))


def test_decode_depth_limit() -> None:
    deep = b"[" * 50 + b"]" * 50
    assert codec.decode_json(deep, codec.DecodeLimits(max_depth=60)) is not None
    with pytest.raises(NuropbMessageError, match="nested 50 levels deep"):
        codec.decode_json(deep, codec.DecodeLimits(max_depth=20))
    # many brackets side by side are wide, not deep
    wide = b"[" + b",".join(b"[]" for _ in range(500)) + b"]"
    assert len(codec.decode_json(wide, codec.DecodeLimits(max_depth=5))) == 500
    with pytest.raises(NuropbMessageError, match=r"nested too deeply|levels deep"):
        codec.decode_json(b"[" * 100_000 + b"]" * 100_000)


def test_headers_round_trip() -> None:
    headers = codec.headers_for("request", "t-1", True, "9.9")
    assert headers == {
        "nuropb_protocol": "0.1.1",
        "nuropb_version": "9.9",
        "nuropb_type": "request",
        "trace_id": "t-1",
        "encrypted": "yes",
    }
    assert codec.check_headers(headers) == ("request", True)
    assert codec.check_headers({**headers, "encrypted": ""}) == ("request", False)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (None, "no nuropb headers"),
        ({"nuropb_type": "request"}, "nuropb_protocol None"),
        ({"nuropb_protocol": "0.2.0", "nuropb_type": "request"}, "'0.2.0' is not supported"),
        ({"nuropb_protocol": "0.1.1", "nuropb_type": "gossip"}, "'gossip' is not supported"),
    ],
)
def test_bad_headers(headers: dict[str, str] | None, message: str) -> None:
    with pytest.raises(NuropbMessageError, match=message):
        codec.check_headers(headers)


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("request", [], "is a JSON list, not an object"),
        ("request", {"params": {}}, "has no 'method' field"),
        ("request", {"method": 1, "params": {}}, "'method' must be a string"),
        ("command", {"method": "m", "params": [1]}, "'params' must be a object"),
        ("request", {"method": "m", "params": {}, "context": 3}, "'context' must be an object"),
        ("event", {"event": 1}, "has no 'topic' field"),
        ("event", {"topic": "a.b"}, "has no 'event' field"),
    ],
)
def test_bad_bodies(kind: codec.MessageType, body: object, message: str) -> None:
    with pytest.raises(NuropbMessageError, match=message):
        codec.check_body(kind, body)


def test_good_bodies_pass() -> None:
    body = {"method": "m", "params": {"a": 1}, "context": {}}
    assert codec.check_body("request", body) is body
    assert codec.check_body("event", {"topic": "t", "event": None})["event"] is None
