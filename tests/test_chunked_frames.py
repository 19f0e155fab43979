"""aiormq's frames read in chunks (mesh/chunked_frames.py): the same frames as aiormq reads, and
content headers decoded as pamqp decodes them. No broker."""

from __future__ import annotations

import asyncio
import datetime
import struct
from typing import Any

import pytest
from aiormq.connection import ReceivedFrame
from aiormq.exceptions import AMQPConnectionError, ProtocolSyntaxError
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import body as pamqp_body
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp import header as pamqp_header
from pamqp import heartbeat as pamqp_heartbeat

from nuropb_lab.mesh import connect  # noqa: F401  (installs the tolerant decoders, as in use)
from nuropb_lab.mesh.amqp.receiver import ChunkedFrameReceiver, content_header

AIORMQ_RECEIVER = next(c for c in ChunkedFrameReceiver.__mro__[1:] if c.__name__ == "FrameReceiver")
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
    fast = content_header(raw)
    if fast is not None:  # None: left to pamqp (a timestamp, a table of other values)
        assert (fast[0], fast[1], state(fast[2])) == (expected[0], expected[1], state(expected[2]))


def test_what_nuropb_sends_takes_the_fast_way() -> None:
    props = spec.Basic.Properties(
        content_type="application/json",
        correlation_id="c0ffee",
        reply_to="nuropb-x-client-1-rq",
        expiration="3600000",
        message_id="c0ffee",
        headers=NUROPB_HEADERS,
    )
    raw = header_frame(props)
    fast = content_header(raw)
    assert fast is not None and state(fast[2]) == state(pamqp_frame.unmarshal(raw)[2])
    assert fast[2].properties.headers == NUROPB_HEADERS and fast[2].properties.cluster_id == ""


def test_strings_that_are_not_utf8_are_left_to_the_tolerant_decoders() -> None:
    props = spec.Basic.Properties(correlation_id="x", headers={"k": "v"})
    raw = bytearray(header_frame(props))
    at = raw.index(b"\x01x")  # the correlation id, one byte long
    raw[at + 1] = 0xFF
    assert content_header(bytes(raw)) is None
    decoded = pamqp_frame.unmarshal(bytes(raw))[2]
    assert decoded.properties.correlation_id == b"\xff"  # connect.py's tolerant decoder


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
    theirs = await read_all(AIORMQ_RECEIVER, [data])
    assert len(ours) == len(frames())
    assert [(n, c, state(f)) for n, c, f in ours] == [(n, c, state(f)) for n, c, f in theirs]


async def test_end_of_stream_and_a_refused_protocol() -> None:
    data = b"".join(frames()[:3])
    with pytest.raises(AMQPConnectionError, match="unexpectedly closed"):
        await read_all(ChunkedFrameReceiver, [data[:-5]])
    assert await read_all(ChunkedFrameReceiver, []) == []
    with pytest.raises(ProtocolSyntaxError):
        await read_all(ChunkedFrameReceiver, [b"AMQP" + struct.pack("BBBB", 0, 0, 9, 1)])
