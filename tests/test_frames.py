"""The hot path's own frame encoding writes exactly what pamqp (and so aiormq) would."""

from __future__ import annotations

import string
import uuid

from hypothesis import given
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp import frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from nuropb_lab.mesh import codec
from nuropb_lab.mesh.amqp import frames

short = st.text(alphabet=string.ascii_letters + string.digits + ".-_é", max_size=40)
exchange_names = st.text(alphabet=string.ascii_letters + string.digits + ".-_:", max_size=40)
header_values = st.one_of(st.none(), short, st.booleans(), st.integers(-(2**31), 2**31 - 1))


def reference(
    channel: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: spec.Basic.Properties,
    mandatory: bool,
    max_body: int,
) -> bytes:
    frames_ = [
        frame.marshal(
            spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
            channel,
        ),
        frame.marshal(ContentHeader(0, len(body), properties), channel),
    ]
    for start in range(0, len(body), max_body):
        frames_.append(frame.marshal(ContentBody(body[start : start + max_body]), channel))
    return b"".join(frames_)


@given(
    channel=st.integers(1, 65535),
    exchange=exchange_names,
    routing_key=short,
    body=st.binary(max_size=300),
    content_type=st.sampled_from(["", "application/json"]),
    correlation_id=short,
    reply_to=short,
    expiration=st.sampled_from(["", "1", "3600000"]),
    headers=st.one_of(st.none(), st.dictionaries(short, header_values, max_size=6)),
    mandatory=st.booleans(),
    max_body=st.integers(1, 200),
)
def test_publish_is_what_pamqp_writes(
    channel: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    content_type: str,
    correlation_id: str,
    reply_to: str,
    expiration: str,
    headers: dict[str, object] | None,
    mandatory: bool,
    max_body: int,
) -> None:
    ours = frames.Properties(
        content_type, correlation_id, reply_to, expiration, correlation_id, headers
    )
    theirs = spec.Basic.Properties(
        content_type=content_type or None,
        correlation_id=correlation_id or None,
        reply_to=reply_to or None,
        expiration=expiration or None,
        message_id=correlation_id or None,
        headers=headers,
    )
    expected = reference(channel, exchange, routing_key, body, theirs, mandatory, max_body)
    assert frames.publish(channel, exchange, routing_key, body, ours, mandatory, max_body) == (
        expected
    )
    # pamqp's own properties are taken too
    assert frames.publish(channel, exchange, routing_key, body, theirs, mandatory, max_body) == (
        expected
    )


def test_nuropb_properties_round_trip_through_pamqp() -> None:
    correlation_id = uuid.uuid4().hex
    headers = codec.headers_for("request", "t-1", False, "0.1.0")
    ours = frames.Properties(
        codec.CONTENT_TYPE, correlation_id, "rq", "60000", correlation_id, headers
    )
    data = frames.publish(7, "nuropb-rpc-exchange", "svc", b"{}", ours, True, 1000)
    offset, method = frame.unmarshal(data)[0], frame.unmarshal(data)[2]
    assert isinstance(method, spec.Basic.Publish) and method.mandatory
    _, channel, header = frame.unmarshal(data[offset:])
    assert channel == 7 and isinstance(header, ContentHeader)
    props = header.properties
    assert (props.correlation_id, props.message_id, props.reply_to) == (
        correlation_id,
        correlation_id,
        "rq",
    )
    assert props.expiration == "60000" and props.headers == headers


def test_other_properties_fall_back_to_pamqp() -> None:
    props = spec.Basic.Properties(content_type="text/plain", delivery_mode=2, priority=3)
    assert frames.Properties.from_pamqp(props) is None
    data = frames.publish(1, "", "q", b"x", props, False, 100)
    assert data == reference(1, "", "q", b"x", props, False, 100)


@given(channel=st.integers(1, 65535), tag=st.integers(1, 2**63 - 1), flag=st.booleans())
def test_ack_nack_reject(channel: int, tag: int, flag: bool) -> None:
    assert frames.ack(channel, tag, flag) == frame.marshal(spec.Basic.Ack(tag, flag), channel)
    assert frames.reject(channel, tag, flag) == frame.marshal(
        spec.Basic.Reject(tag, requeue=flag), channel
    )
    for multiple in (False, True):
        assert frames.nack(channel, tag, flag, multiple) == frame.marshal(
            spec.Basic.Nack(tag, multiple=multiple, requeue=flag), channel
        )


def test_long_names_are_refused() -> None:
    try:
        frames.publish(1, "", "q" * 256, b"", frames.Properties(), False, 100)
    except ValueError as exc:
        assert "255 bytes" in str(exc)
    else:
        raise AssertionError("a 256-byte routing key was encoded")
