"""aiormq's frames read in chunks (mesh/amqp/receiver.py): the same frames as aiormq reads, and
frames decoded as pamqp decodes them (mesh/amqp/unmarshal.py). No broker."""

from __future__ import annotations

import asyncio
import datetime
import struct
from typing import Any

import pytest
from aiormq.connection import FrameReceiver, ReceivedFrame
from aiormq.exceptions import AMQPConnectionError, ProtocolSyntaxError
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pamqp import body as pamqp_body
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp import header as pamqp_header
from pamqp import heartbeat as pamqp_heartbeat
from pamqp.exceptions import UnmarshalingException

from nuropb_lab.mesh.amqp.constants import FrameError
from nuropb_lab.mesh.amqp.receiver import ChunkedFrameReceiver
from nuropb_lab.mesh.amqp.unmarshal import unmarshal

NUROPB_HEADERS = {
    "nuropb_protocol": "0.1.1",
    "nuropb_version": "0.1.8",
    "nuropb_type": "request",
    "trace_id": None,
    "encrypted": "",
}


def state(obj: Any) -> Any:
    """What a pamqp frame holds, for comparing two of them."""
    if isinstance(obj, pamqp_header.ContentHeader):
        return ("header", obj.class_id, obj.weight, obj.body_size, state(obj.properties))
    if isinstance(obj, spec.Basic.Properties):
        return tuple((name, getattr(obj, name)) for name in obj.__slots__)
    if isinstance(obj, pamqp_body.ContentBody):
        return ("body", obj.value)
    slots = getattr(type(obj), "__slots__", None) or list(vars(obj))
    return (type(obj).__name__, tuple((name, getattr(obj, name, None)) for name in slots))


def header_frame(properties: spec.Basic.Properties, body_size: int = 42, channel: int = 1) -> bytes:
    return pamqp_frame.marshal(pamqp_header.ContentHeader(0, body_size, properties), channel)


short = st.text(max_size=40).filter(lambda t: len(t.encode()) < 256)
header_values = st.one_of(
    st.none(),
    short,
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.dictionaries(short, st.one_of(st.none(), short), max_size=3),
)
properties = st.builds(
    spec.Basic.Properties,
    content_type=st.one_of(st.none(), short),
    content_encoding=st.one_of(st.none(), short),
    headers=st.one_of(
        st.none(),
        st.dictionaries(short, st.one_of(st.none(), short), max_size=6),
        st.dictionaries(short, header_values, max_size=4),
    ),
    delivery_mode=st.one_of(st.none(), st.sampled_from([1, 2])),
    priority=st.one_of(st.none(), st.integers(0, 9)),
    correlation_id=st.one_of(st.none(), short),
    reply_to=st.one_of(st.none(), short),
    expiration=st.one_of(st.none(), st.integers(1, 10**9).map(str)),
    message_id=st.one_of(st.none(), short),
    timestamp=st.one_of(
        st.none(),
        st.datetimes(
            min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1)
        ).map(lambda d: d.replace(microsecond=0, tzinfo=datetime.UTC)),
    ),
    message_type=st.one_of(st.none(), short),
    user_id=st.one_of(st.none(), short),
    app_id=st.one_of(st.none(), short),
)


@settings(max_examples=300, deadline=None)
@given(properties, st.integers(0, 2**40), st.integers(0, 65535))
def test_content_headers_decode_as_pamqp_decodes_them(
    props: spec.Basic.Properties, body_size: int, channel: int
) -> None:
    raw = header_frame(props, body_size, channel)
    expected = pamqp_frame.unmarshal(raw)
    ours = unmarshal(raw)
    assert (ours[0], ours[1], state(ours[2])) == (expected[0], expected[1], state(expected[2]))


def test_what_nuropb_sends_decodes_as_pamqp_decodes_it() -> None:
    props = spec.Basic.Properties(
        content_type="application/json",
        correlation_id="c0ffee",
        reply_to="nuropb-x-client-1-rq",
        expiration="3600000",
        message_id="c0ffee",
        headers=NUROPB_HEADERS,
    )
    raw = header_frame(props)
    ours = unmarshal(raw)[2]
    assert isinstance(ours, pamqp_header.ContentHeader)
    assert state(ours) == state(pamqp_frame.unmarshal(raw)[2])
    assert ours.properties.headers == NUROPB_HEADERS and ours.properties.cluster_id == ""


def test_strings_that_are_not_utf8_decode_as_bytes_where_pamqp_refuses_them() -> None:
    props = spec.Basic.Properties(correlation_id="x", headers={"k": "v"})
    raw = bytearray(header_frame(props))
    at = raw.index(b"\x01x")  # the correlation id, one byte long
    raw[at + 1] = 0xFF
    decoded = unmarshal(bytes(raw))[2]
    assert isinstance(decoded, pamqp_header.ContentHeader)
    assert decoded.properties.correlation_id == b"\xff"
    assert decoded.properties.headers == {"k": "v"}
    with pytest.raises(UnmarshalingException):  # pamqp, as every other connection reads it
        pamqp_frame.unmarshal(bytes(raw))


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.:", max_size=40)
FIELDS = {
    "bit": st.booleans(),
    "octet": st.integers(0, 255),
    "short": st.integers(0, 2**16 - 1),
    "long": st.integers(0, 2**32 - 1),
    "longlong": st.integers(0, 2**63 - 1),
    "shortstr": names,
    "longstr": st.text(max_size=60),
    "table": st.dictionaries(short, header_values, max_size=4),
}


@st.composite
def method_frames(draw: st.DrawFn) -> bytes:
    """Any AMQP method pamqp writes, with values of its fields' types."""
    cls = draw(st.sampled_from(sorted(spec.INDEX_MAPPING.values(), key=lambda c: c.name)))
    values = {name: draw(FIELDS[cls.amqp_type(name)]) for name in cls.__slots__}
    try:
        return pamqp_frame.marshal(cls(**values), draw(st.integers(0, 65535)))
    except (TypeError, ValueError):  # a value pamqp does not take for that field
        assume(False)
        raise


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pamqp's, making basic.recover-async
@settings(max_examples=500, deadline=None)
@given(method_frames())
def test_method_frames_decode_as_pamqp_decodes_them(raw: bytes) -> None:
    ours = unmarshal(raw)
    theirs = pamqp_frame.unmarshal(raw)
    assert (ours[0], ours[1], state(ours[2])) == (theirs[0], theirs[1], state(theirs[2]))


def test_a_routing_key_that_is_not_utf8_decodes_as_bytes_where_pamqp_refuses_it() -> None:
    raw = pamqp_frame.marshal(spec.Basic.Deliver("ctag", 7, True, "ex", "@@"), 3)
    raw = raw.replace(b"\x02@@", b"\x02\xff\xfe")
    (_, channel, deliver) = unmarshal(raw)
    assert isinstance(deliver, spec.Basic.Deliver) and channel == 3
    assert (deliver.consumer_tag, deliver.delivery_tag, deliver.redelivered) == ("ctag", 7, True)
    assert (deliver.exchange, deliver.routing_key) == ("ex", b"\xff\xfe")
    with pytest.raises(UnmarshalingException):
        pamqp_frame.unmarshal(raw)


def test_a_timestamp_past_a_datetime_stays_an_int_where_pamqp_refuses_it() -> None:
    raw = bytearray(header_frame(spec.Basic.Properties(timestamp=datetime.datetime(2024, 1, 2))))
    raw[-9:-1] = (2**64 - 1).to_bytes(8, "big")  # the timestamp, the last property
    decoded = unmarshal(bytes(raw))[2]
    assert isinstance(decoded, pamqp_header.ContentHeader)
    assert decoded.properties.timestamp == 2**64 - 1
    with pytest.raises(UnmarshalingException, match="out of range"):
        pamqp_frame.unmarshal(bytes(raw))


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x00\x50\x00", "does not end with 0xCE"),
        (b"\x01\x00\x01\x00\x00\x00\x04\xff\xff\xff\xff\xce", "unknown method"),
        (b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x00\x50\xce", "cut short"),  # basic.ack
        (  # basic.ack without its bits octet
            b"\x01\x00\x01\x00\x00\x00\x0c\x00\x3c\x00\x50" + bytes(8) + b"\xce",
            "Basic.Ack runs past its frame",
        ),
        (b"\x03\x00\x01\x00\x00\x00\x00\xce", "empty"),
        (b"\x05\x00\x01\x00\x00\x00\x01\x00\xce", "unknown frame type 5"),
    ],
)
def test_frames_that_cannot_be_read(raw: bytes, error: str) -> None:
    with pytest.raises(FrameError, match=error):
        unmarshal(raw)
    with pytest.raises(UnmarshalingException):  # pamqp refuses them too
        pamqp_frame.unmarshal(raw)


def frames() -> list[bytes]:
    props = spec.Basic.Properties(content_type="application/json", headers=NUROPB_HEADERS)
    body = b'{"tag":"request","params":{"value":"ping"}}' * 3
    out = [
        pamqp_frame.marshal(spec.Connection.Tune(2047, 131072, 60), 0),
        pamqp_frame.marshal(spec.Basic.Deliver("ctag", 7, False, "nuropb-rpc-exchange", "s"), 1),
        header_frame(props, len(body)),
        pamqp_frame.marshal(pamqp_body.ContentBody(body), 1),
        pamqp_frame.marshal(pamqp_heartbeat.Heartbeat(), 0),
        pamqp_frame.marshal(spec.Basic.Ack(12, multiple=True), 2),
        header_frame(
            spec.Basic.Properties(timestamp=datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC))
        ),
    ]
    return out * 5


async def read_all(cls: type, chunks: list[bytes]) -> list[ReceivedFrame]:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    receiver = cls(reader)
    return [frame async for frame in receiver]


@pytest.mark.parametrize("cut", [1, 3, 7, 64, 1000, 1 << 16])
async def test_the_same_frames_as_aiormq_whatever_the_chunks(cut: int) -> None:
    data = b"".join(frames())
    chunks = [data[i : i + cut] for i in range(0, len(data), cut)]
    ours = await read_all(ChunkedFrameReceiver, chunks)
    theirs = await read_all(FrameReceiver, [data])
    assert len(ours) == len(frames())
    assert [(n, c, state(f)) for n, c, f in ours] == [(n, c, state(f)) for n, c, f in theirs]


async def test_end_of_stream_and_a_refused_protocol() -> None:
    data = b"".join(frames()[:3])
    with pytest.raises(AMQPConnectionError, match="unexpectedly closed"):
        await read_all(ChunkedFrameReceiver, [data[:-5]])
    assert await read_all(ChunkedFrameReceiver, []) == []
    with pytest.raises(ProtocolSyntaxError):
        await read_all(ChunkedFrameReceiver, [b"AMQP" + struct.pack("BBBB", 0, 0, 9, 1)])
