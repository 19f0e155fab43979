"""The events connection's frame reader against what pamqp writes (and so what a broker sends):
bytes in chunks of any size, several frames a chunk, bodies over several frames, header values
of every type, and bytes that are not frames."""

from __future__ import annotations

import datetime
import decimal
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp import decode as pamqp_decode
from pamqp import frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from nuropb_lab.mesh.amqp.reader import Delivery, FrameError, FrameReader, MethodFrame

NUROPB_HEADERS = {
    "nuropb_protocol": "0.1.1",
    "nuropb_version": "0.1.8",
    "nuropb_type": "event",
    "trace_id": None,
    "encrypted": "",
}

short = st.text(alphabet=string.ascii_letters + string.digits + ".-_é", max_size=40)
simple_values = st.one_of(st.none(), short)
other_values = st.one_of(
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.lists(short, max_size=3),
    st.dictionaries(short, short, max_size=3),
    st.builds(
        lambda s: datetime.datetime.fromtimestamp(s, tz=datetime.UTC),
        st.integers(0, 2**31),
    ),
)


def message(
    body: bytes,
    headers: dict[str, Any] | None = NUROPB_HEADERS,
    channel: int = 1,
    consumer_tag: str = "tail-q",
    delivery_tag: int = 1,
    routing_key: str = "orders.placed",
    frame_max: int = 131_072,
    **properties: Any,
) -> bytes:
    """basic.deliver, its content header and body frames, as pamqp marshals them."""
    props = spec.Basic.Properties(headers=headers, **properties)
    parts = [
        frame.marshal(
            spec.Basic.Deliver(consumer_tag, delivery_tag, False, "events", routing_key), channel
        ),
        frame.marshal(ContentHeader(0, len(body), props), channel),
    ]
    step = frame_max - 8
    for start in range(0, len(body), step):
        parts.append(frame.marshal(ContentBody(body[start : start + step]), channel))
    return b"".join(parts)


def pamqp_headers(headers: dict[str, Any] | None) -> Any:
    """What pamqp decodes the table as (the reader must give the same)."""
    raw = frame.marshal(ContentHeader(0, 0, spec.Basic.Properties(headers=headers)), 1)
    return frame.unmarshal(raw)[2].properties.headers  # type: ignore[union-attr]


def feed_in(reader: FrameReader, data: bytes, cuts: list[int]) -> list[Any]:
    out: list[Any] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out += reader.feed(data[start:cut])
        start = cut
    return out


def test_a_nuropb_event_in_one_read() -> None:
    body = b'{"tag":"event","topic":"orders.placed","event":{"id":1}}'
    out = FrameReader().feed(message(body, delivery_tag=7))
    assert out == [Delivery(1, "tail-q", 7, False, "events", "orders.placed", NUROPB_HEADERS, body)]


def test_every_split_of_two_messages_and_a_heartbeat() -> None:
    first, second = message(b"one", delivery_tag=1), message(b"two", delivery_tag=2)
    data = first + frame.marshal(Heartbeat(), 0) + second
    for cut in range(len(data) + 1):
        for other in (cut, cut + 1, cut + 13):
            out = feed_in(FrameReader(), data, [cut, min(other, len(data))])
            assert [o.body for o in out if isinstance(o, Delivery)] == [b"one", b"two"]
            assert sum(isinstance(o, MethodFrame) for o in out) == 1


def test_byte_by_byte() -> None:
    data = message(b"x" * 1000, frame_max=300) * 3
    reader = FrameReader()
    out = [item for i in range(len(data)) for item in reader.feed(data[i : i + 1])]
    assert [o.body for o in out] == [b"x" * 1000] * 3


def test_frames_of_other_channels_between_body_frames() -> None:
    """A channel's content frames come in a row, but heartbeats (channel 0) and frames of other
    channels may come between them."""
    body = bytes(range(256)) * 4
    data = message(body, frame_max=300)
    head_size = len(message(b"", frame_max=300))  # deliver + header frames
    beat = frame.marshal(Heartbeat(), 0)
    other = message(b"other", channel=2, delivery_tag=9)
    first_body_end = head_size + 300
    data = data[:head_size] + beat + data[head_size:first_body_end] + other + data[first_body_end:]
    for cut in range(0, len(data), 37):
        out = feed_in(FrameReader(), data, [cut])
        assert [(o.channel, o.body) for o in out if isinstance(o, Delivery)] == [
            (2, b"other"),
            (1, body),
        ]


def test_method_frames_come_in_order_with_the_deliveries() -> None:
    data = (
        frame.marshal(spec.Basic.ConsumeOk("tail-q"), 1)
        + message(b"a")
        + frame.marshal(spec.Basic.Cancel("tail-q"), 1)
    )
    out = FrameReader().feed(data)
    assert [type(o.frame).__name__ if isinstance(o, MethodFrame) else o.body for o in out] == [
        "ConsumeOk",
        b"a",
        "Cancel",
    ]


@settings(max_examples=150, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=700), min_size=1, max_size=6),
    headers=st.one_of(st.none(), st.dictionaries(short, simple_values, max_size=6)),
    routing_key=short,
    frame_max=st.integers(64, 400),
    cuts=st.lists(st.integers(0, 5000), max_size=12),
    heartbeat_between=st.booleans(),
)
def test_any_chunks_multi_frame_bodies(
    bodies: list[bytes],
    headers: dict[str, Any] | None,
    routing_key: str,
    frame_max: int,
    cuts: list[int],
    heartbeat_between: bool,
) -> None:
    beat = frame.marshal(Heartbeat(), 0) if heartbeat_between else b""
    data = beat.join(
        message(body, headers, delivery_tag=n, routing_key=routing_key, frame_max=frame_max)
        for n, body in enumerate(bodies, 1)
    )
    # the body frames are the sender's size; the reader takes frames up to its frame_max
    out = feed_in(FrameReader(), data, [c for c in cuts if c <= len(data)])
    deliveries = [o for o in out if isinstance(o, Delivery)]
    assert [d.body for d in deliveries] == bodies
    assert [d.delivery_tag for d in deliveries] == list(range(1, len(bodies) + 1))
    assert all(d.routing_key == routing_key and d.problem is None for d in deliveries)
    assert all(d.headers == pamqp_headers(headers) for d in deliveries)


@settings(max_examples=150, deadline=None)
@given(headers=st.dictionaries(short, st.one_of(simple_values, other_values), max_size=6))
def test_other_header_values_decode_as_pamqp_does(headers: dict[str, Any]) -> None:
    (delivery,) = FrameReader().feed(message(b"{}", headers))
    assert isinstance(delivery, Delivery) and delivery.problem is None
    assert delivery.headers == pamqp_headers(headers)


def test_the_other_properties_do_not_disturb_the_headers() -> None:
    data = message(
        b"{}",
        NUROPB_HEADERS,
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        priority=3,
        correlation_id="c",
        reply_to="r",
        expiration="1000",
        message_id="m",
        timestamp=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        message_type="t",
        user_id="guest",
        app_id="a",
    )
    (delivery,) = FrameReader().feed(data)
    assert isinstance(delivery, Delivery) and delivery.headers == NUROPB_HEADERS
    # what a wire tap pairs and names messages by
    assert (delivery.correlation_id, delivery.reply_to, delivery.expiration) == ("c", "r", "1000")
    assert delivery.timestamp == int(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp())


def test_properties_absent_are_none() -> None:
    (delivery,) = FrameReader().feed(message(b"{}", NUROPB_HEADERS, content_type="a/b"))
    assert isinstance(delivery, Delivery)
    assert delivery.correlation_id is delivery.reply_to is delivery.timestamp is None
    (delivery,) = FrameReader().feed(message(b"{}", None, reply_to="nuropb-x-1-rq"))
    assert isinstance(delivery, Delivery) and delivery.headers is None
    assert delivery.reply_to == "nuropb-x-1-rq" and delivery.correlation_id is None


#: the headers of a firehose trace record (amq.rabbitmq.trace), as RabbitMQ 3.10 sends them
TRACE_HEADERS = {
    "exchange_name": "nuropb-rpc-exchange",
    "routing_keys": ["calc"],
    "properties": {
        "message_id": "77f2",
        "expiration": "3600000",
        "reply_to": "nuropb-m-client-786b-rq",
        "correlation_id": "77f2",
        "headers": {**NUROPB_HEADERS, "nuropb_type": "request", "trace_id": "t1"},
        "content_type": "application/json",
        "delivery_mode": 1,
    },
    "node": "rabbit@localhost",
    "vhost": "m",
    "connection": "127.0.0.1:54610 -> 127.0.0.1:5672",
    "channel": 1,
    "user": "guest",
    "routed_queues": ["nuropb-calc-sq"],
    "redelivered": 0,
}


def test_a_trace_record_is_decoded_here_not_by_pamqp(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_raw: bytes) -> Any:
        raise AssertionError("the trace record's table went to pamqp")

    expected = pamqp_headers(TRACE_HEADERS)
    for name in ("field_table", "field_array", "embedded_value", "long_str", "short_str"):
        monkeypatch.setattr(pamqp_decode, name, refuse)
    monkeypatch.setitem(pamqp_decode.METHODS, "table", refuse)
    monkeypatch.setitem(pamqp_decode.TABLE_MAPPING, b"F", refuse)
    (delivery,) = FrameReader().feed(message(b"{}", TRACE_HEADERS))
    assert isinstance(delivery, Delivery) and delivery.problem is None
    assert delivery.headers == TRACE_HEADERS == expected


nested_values = st.recursive(
    st.one_of(st.none(), short, st.booleans(), st.integers(-(2**63), 2**63 - 1)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(short, inner, max_size=3)),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(headers=st.dictionaries(short, nested_values, max_size=5))
def test_nested_tables_and_arrays_decode_as_pamqp_does(headers: dict[str, Any]) -> None:
    (delivery,) = FrameReader().feed(message(b"{}", headers, correlation_id="c"))
    assert isinstance(delivery, Delivery) and delivery.problem is None
    assert delivery.headers == pamqp_headers(headers) and delivery.correlation_id == "c"


def test_decimal_and_nested_values() -> None:
    headers = {"d": decimal.Decimal("1.25"), "t": {"x": [1, "y", None]}, "s": "z"}
    (delivery,) = FrameReader().feed(message(b"", headers))
    assert isinstance(delivery, Delivery)
    assert delivery.headers == pamqp_headers(headers) and delivery.body == b""


def delivered_with_table(table: bytes, body_size: int) -> bytes:
    """basic.deliver and a content header whose header table is ``table`` (its entries, written
    by hand: pamqp writes only what it can read)."""
    # class 60, weight 0, body size, property flags (headers only), the table
    payload = (
        b"\x00\x3c\x00\x00" + body_size.to_bytes(8, "big") + b"\x20\x00"
        + len(table).to_bytes(4, "big") + table
    )  # fmt: skip
    header = b"\x02\x00\x01" + len(payload).to_bytes(4, "big") + payload + b"\xce"
    return frame.marshal(spec.Basic.Deliver("q", 1, False, "e", "k"), 1) + header


def test_strings_that_are_not_utf8() -> None:
    table = b"\x03key" + b"S" + b"\x00\x00\x00\x02\xff\xfe" + b"\x02\xc3(" + b"V"
    body = frame.marshal(ContentBody(b"hello"), 1)
    (delivery,) = FrameReader().feed(delivered_with_table(table, 5) + body)
    assert isinstance(delivery, Delivery)
    # as pamqp: bytes values; keys decoded lossily (where pamqp raises)
    assert delivery.headers == {"key": b"\xff\xfe", "\ufffd(": None}


def test_an_undecodable_header_table_is_one_bad_message_not_a_broken_connection() -> None:
    good = message(b"{}", {"a": "b"})
    bad = bytearray(good)
    at = bad.index(b"\x01aS")  # key "a", a long string: make the type one that does not exist
    bad[at + 2] = ord("Q")
    reader = FrameReader()
    first, second = reader.feed(bytes(bad) + good)
    assert isinstance(first, Delivery) and first.headers is None
    assert first.problem is not None and "cannot be decoded" in first.problem
    assert isinstance(second, Delivery) and second.headers == {"a": "b"}


def test_a_header_table_nested_past_the_stack_is_one_bad_message() -> None:
    table = b""
    for _ in range(5000):  # "k": a table of the one before (7 bytes a level, within a frame)
        table = b"\x01kF" + len(table).to_bytes(4, "big") + table
    first, second = FrameReader().feed(delivered_with_table(table, 0) + message(b"{}", {"a": "b"}))
    assert isinstance(first, Delivery) and first.headers is None
    assert first.problem is not None and "nested too deep" in first.problem
    assert isinstance(second, Delivery) and second.headers == {"a": "b"}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"AMQP\x00\x00\x09\x01", "does not speak AMQP 0-9-1"),
        (frame.marshal(Heartbeat(), 0)[:-1] + b"\x00", "does not end with 0xCE"),
        (b"\x01\x00\x01\x00\x10\x00\x00", "over frame_max"),
        (frame.marshal(ContentBody(b"x"), 1), "content body out of place"),
        (message(b"abc")[:-11] + frame.marshal(ContentBody(b"abcd"), 1), "longer than"),
        (b"\x05\x00\x00\x00\x00\x00\x00\xce", "unknown frame type 5"),
        (b"\x01\x00\x00\x00\x00\x00\x04\xff\xff\xff\xff\xce", "method frame that cannot be read"),
    ],
)
def test_bytes_that_are_not_frames(data: bytes, error: str) -> None:
    with pytest.raises(FrameError, match=error):
        FrameReader().feed(data)
