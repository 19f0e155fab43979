"""Property-based bad input: hypothesis sends messages straight to a lab service's queue.

For every bad message: the service rejects it to the DLQ (the DLQ grows by exactly one), and
when it has a reply_to and a correlation id it gets exactly one error response with that
correlation id. After each run the service still answers a normal request and never lost its
connection. Decoder limits are set low (``max_body_bytes``, ``max_depth``) to be crossed.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aio_pika
import pamqp.common
import pamqp.encode
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from support import wait_until

import nuropb_lab as nl
from nuropb_lab.mesh import codec

MAX_BODY = 32 * 1024
MAX_DEPTH = 24
PREFETCH = 10  # every message stuck unacknowledged would take a slot: ten stop the service
VALID_TYPES = ("request", "command", "event")
ERROR_NAMES = set(nl.mesh.errors.ERROR_CLASSES)
SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
TRIED: collections.Counter[str] = collections.Counter()  # examples per class, for the README
TOTALS: collections.Counter[str] = collections.Counter()  # sent, dead-lettered, answered


class Target:
    """A service whose methods check their arguments strictly."""

    def add(self, a: int, b: int) -> int:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (a, b)):
            raise nl.NuropbValidationError("a and b must be integers")
        return a + b

    @nl.publish_to_mesh(requires_encryption=True)
    def secret(self, text: str) -> str:
        return text[::-1]

    @nl.publish_to_mesh(authorize_func=lambda token: {"user": "u"} if token == "good" else None)
    def private(self) -> str:
        return "ok"


def good_headers() -> dict[str, Any]:
    return codec.headers_for("request", "t-fuzz", False, "0.1.8")


def good_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tag": "request",
        "service": "fuzz",
        "method": "add",
        "params": {"a": 1, "b": 2},
        "correlation_id": uuid.uuid4().hex,
        "context": {},
        "trace_id": None,
    }
    body.update(overrides)
    return body


@dataclasses.dataclass
class Bad:
    """One message to send; ``dead_letter`` False for one the service must simply answer."""

    body: bytes
    headers: dict[str, Any] | None
    reply: bool = True  # send a reply_to
    correlation_id: str | bytes | None = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    reply_to: str | bytes | None = None  # None: the harness's reply queue
    dead_letter: bool = True
    properties: dict[str, Any] = dataclasses.field(default_factory=dict)
    label: str = ""  # the input class, for the tally
    expect_text: tuple[str, ...] = ()  # the error description says one of these
    expect_error: str | None = None  # the error class named in the response
    bad_if_answered: bool = False  # fine unless an answer must echo it (see bad_encodings)

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return (
            f"Bad(body={body!r} ({len(self.body)} bytes), headers={self.headers!r},"
            f" reply={self.reply}, correlation_id={self.correlation_id!r},"
            f" reply_to={self.reply_to!r}, dead_letter={self.dead_letter},"
            f" properties={self.properties!r}, label={self.label!r})"
        )


@dataclasses.dataclass
class Harness:
    service: nl.RMQAPI
    channel: aio_pika.abc.AbstractChannel
    replies: aio_pika.abc.AbstractQueue
    received: dict[str, list[aio_pika.abc.AbstractIncomingMessage]]
    queue: str
    dlq_at_start: int = 0
    sent: list[Bad] = dataclasses.field(default_factory=list)

    async def dlq(self) -> int:
        queue = await self.channel.declare_queue("nuropb-dl-queue", passive=True)
        return int(queue.declaration_result.message_count or 0)

    async def send(self, bad: Bad) -> None:
        """Publish ``bad`` straight to the service queue and check what became of it."""
        before = await self.dlq()
        channel = await self.channel.get_underlay_channel()
        reply_to = self.replies.name if bad.reply and bad.reply_to is None else bad.reply_to
        properties = spec.Basic.Properties(
            headers=bad.headers,
            correlation_id=bad.correlation_id,
            reply_to=reply_to if bad.reply else None,
            **bad.properties,
        )
        await channel.basic_publish(
            bad.body, exchange="", routing_key=self.queue, properties=properties
        )
        self.sent.append(bad)
        answerable = bool(
            bad.reply
            and isinstance(bad.correlation_id, str)
            and bad.correlation_id
            and reply_to == self.replies.name
        )
        if bad.dead_letter:
            await wait_until(
                lambda: self.dlq_is(before + 1), timeout=5, what="the bad message in the DLQ"
            )
        if answerable:
            assert isinstance(bad.correlation_id, str)
            cid = bad.correlation_id
            await wait_until(lambda: cid in self.received, timeout=5, what=f"a reply to {cid}")
            reply = self.received[cid][0]
            assert reply.headers["nuropb_type"] == "response"
            response = json.loads(reply.body)
            assert response["correlation_id"] == cid
            if bad.dead_letter:
                error = response["error"]
                assert error["error"] in ERROR_NAMES, error
                assert isinstance(error["description"], str) and error["description"]
                if bad.expect_text:
                    assert any(t in error["description"] for t in bad.expect_text), error
                if bad.expect_error:
                    assert error["error"] == bad.expect_error, error
            else:
                assert response["error"] is None and response["result"] == 3, response
        if not bad.dead_letter:
            assert await self.dlq() == before
        TRIED[bad.label] += 1
        TOTALS.update(
            sent=1,
            dead_lettered=bad.dead_letter,
            error_answers=answerable and bad.dead_letter,
            result_answers=answerable and not bad.dead_letter,
        )

    async def dlq_is(self, count: int) -> bool:
        now = await self.dlq()
        assert now <= count, f"the DLQ grew by {now - count + 1}, not 1"
        return now == count

    async def check_after_run(self, mesh_url: str) -> None:
        """One reply per answerable message, none else; the service carries on, unharmed."""
        async with nl.RMQAPI(mesh_url) as client:
            assert await client.request("fuzz", "add", {"a": 2, "b": 3}, {}, ttl=10_000) == 5
        expected = {
            b.correlation_id
            for b in self.sent
            if b.reply
            and b.reply_to is None
            and isinstance(b.correlation_id, str)
            and b.correlation_id
        }
        assert set(self.received) == expected
        dead_lettered = sum(b.dead_letter for b in self.sent)
        assert await self.dlq() == self.dlq_at_start + dead_lettered  # exactly the bad ones
        assert all(len(v) == 1 for v in self.received.values()), "a message answered twice"
        assert self.service.transport.reconnects == 0  # the bad input never cost the connection
        assert self.service.connected


@pytest.fixture
async def harness(mesh_url: str) -> AsyncIterator[Harness]:
    queue = "nuropb-fuzz-sq"
    settings = {"max_body_bytes": MAX_BODY, "max_depth": MAX_DEPTH, "prefetch_count": PREFETCH}
    async with nl.RMQAPI(
        mesh_url, "fuzz", service_instance=Target(), transport_settings=settings
    ) as service:
        connection = await aio_pika.connect(mesh_url)
        async with connection:
            channel = await connection.channel()
            replies = await channel.declare_queue(exclusive=True)
            received: dict[str, list[aio_pika.abc.AbstractIncomingMessage]] = (
                collections.defaultdict(list)
            )

            async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                received[str(message.correlation_id)].append(message)

            await replies.consume(on_reply, no_ack=True)
            h = Harness(service, channel, replies, received, queue)
            h.dlq_at_start = await h.dlq()
            yield h
            await h.check_after_run(mesh_url)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    print(f"\nfuzz examples sent per class: {dict(sorted(TRIED.items()))}", file=sys.stderr)
    print(f"fuzz totals: {dict(TOTALS)}", file=sys.stderr)


# --- strategies --------------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
# (no floats: pamqp sends them as 'f', which RabbitMQ 3.10 cannot parse inside an array)
header_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | text
    | st.binary(max_size=20).map(bytearray),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=8,
)
noise_headers = st.dictionaries(
    text.filter(lambda k: k not in ("nuropb_protocol", "nuropb_type", "encrypted")),
    header_values,
    max_size=5,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=10,
)
not_a_str = json_values.filter(lambda v: not isinstance(v, str))
not_a_dict = json_values.filter(lambda v: not isinstance(v, dict))
not_an_int = json_values.filter(lambda v: not isinstance(v, int) or isinstance(v, bool))


@st.composite
def bad_headers(draw: st.DrawFn) -> Bad:
    """A good body under missing, wrong-valued or wrong-typed nuropb headers."""
    headers: dict[str, Any] = {**good_headers(), **draw(noise_headers)}
    defect = draw(st.sampled_from(["none", "empty", "protocol", "type", "both"]))
    if defect == "none":
        return Bad(json.dumps(good_body()).encode(), None, label="headers: none")
    if defect == "empty":
        return Bad(json.dumps(good_body()).encode(), {}, label="headers: empty table")
    if defect in ("protocol", "both"):
        value = draw(st.just(None) | header_values.filter(lambda v: v != codec.PROTOCOL_VERSION))
        if draw(st.booleans()):
            headers.pop("nuropb_protocol")
        else:
            headers["nuropb_protocol"] = value
    if defect in ("type", "both"):
        value = draw(header_values.filter(lambda v: v not in VALID_TYPES))
        if draw(st.booleans()):
            headers.pop("nuropb_type")
        else:
            headers["nuropb_type"] = value
    return Bad(json.dumps(good_body()).encode(), headers, label=f"headers: wrong {defect}")


@st.composite
def bad_bodies(draw: st.DrawFn) -> Bad:
    """Good headers over a body of the wrong shape, fields of the wrong type, a refused or
    failing call, or one over the size or depth limit."""
    kind = draw(
        st.sampled_from(
            [
                "not an object",
                "method",
                "params",
                "context",
                "unknown method",
                "wrong params",
                "plaintext to encrypted",
                "missing token",
                "bad token",
                "huge",
                "deep",
                "random bytes",
            ]
        )
    )
    label = f"body: {kind}"
    body: Any
    if kind == "not an object":
        body = draw(not_a_dict)
    elif kind == "method":
        body = good_body(method=draw(not_a_str))
        if draw(st.booleans()):
            del body["method"]
    elif kind == "params":
        body = good_body(params=draw(not_a_dict))
        if draw(st.booleans()):
            del body["params"]
    elif kind == "context":
        body = good_body(context=draw(not_a_dict.filter(lambda v: v is not None)))
    elif kind == "unknown method":
        name = draw(text.filter(lambda n: n not in ("add", "secret", "private", "nuropb_describe")))
        body = good_body(method=name, params=draw(st.dictionaries(text, json_values, max_size=3)))
    elif kind == "wrong params":
        params = draw(st.dictionaries(text, json_values, max_size=4))
        if set(params) == {"a", "b"}:
            params["a"] = draw(not_an_int)
        body = good_body(params=params)
    elif kind == "plaintext to encrypted":
        body = good_body(method="secret", params={"text": draw(text)})
        refused = "NuropbAuthorizationError"
        return Bad(json.dumps(body).encode(), good_headers(), label=label, expect_error=refused)
    elif kind == "missing token":
        body = good_body(method="private", params={}, context=draw(st.sampled_from([{}, None])))
        refused = "NuropbAuthenticationError"
        return Bad(json.dumps(body).encode(), good_headers(), label=label, expect_error=refused)
    elif kind == "bad token":
        token = draw(json_values.filter(lambda t: t and t != "good"))
        body = good_body(method="private", params={}, context={"Authorization": token})
        refused = "NuropbAuthorizationError"
        return Bad(json.dumps(body).encode(), good_headers(), label=label, expect_error=refused)
    elif kind == "huge":
        size = draw(st.integers(MAX_BODY + 1, 4 * MAX_BODY))
        body = good_body(params={"a": "x" * size, "b": 1})
        limit = f"over the limit of {MAX_BODY} bytes"
        return Bad(json.dumps(body).encode(), good_headers(), label=label, expect_text=(limit,))
    elif kind == "deep":
        depth = draw(st.integers(MAX_DEPTH + 1, 5000))
        opened, closed = draw(st.sampled_from([("[", "]"), ('{"k":', "}")]))
        raw = (opened * depth + "0" + closed * depth).encode()
        texts = (f"levels deep, over the limit of {MAX_DEPTH}", "nested too deeply")
        deep = b'{"tag":"request","method":"add","params":{"a":' + raw + b',"b":1}}'
        return Bad(deep, good_headers(), label=label, expect_text=texts)
    else:  # random bytes
        raw = draw(st.binary(max_size=512))
        assume(not _is_a_valid_request(raw))
        return Bad(raw, good_headers(), label=label)
    return Bad(json.dumps(body).encode(), good_headers(), label=label)


ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252", "utf-8-sig"]


@st.composite
def bad_encodings(draw: st.DrawFn) -> Bad:
    """A good request that is not UTF-8 (other encodings, stray bytes, encoded surrogates),
    or UTF-8 whose strings hold a lone surrogate (a JSON escape) that cannot be echoed."""
    kind = draw(st.sampled_from([*ENCODINGS, "stray bytes", "encoded surrogate", "lone escape"]))
    word = draw(st.text(st.characters(min_codepoint=0xA0, max_codepoint=0xFF), min_size=1))
    body = good_body(context={"note": word})
    if kind in ENCODINGS:
        try:
            raw = json.dumps(body, ensure_ascii=False).encode(kind)
        except UnicodeEncodeError:
            raw = json.dumps(body, ensure_ascii=False).encode(kind, errors="replace")
        assume(kind == "utf-8-sig" or not _is_utf8(raw))
    elif kind == "stray bytes":
        raw = json.dumps(body).encode()
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.binary(min_size=1, max_size=4).filter(lambda b: not _is_utf8(b)))
        raw = raw[:at] + junk + raw[at:]
        assume(not _is_utf8(raw))
    elif kind == "encoded surrogate":
        raw = json.dumps(good_body(context={"note": "@@"})).encode()
        raw = raw.replace(b"@@", b"\xed" + bytes([draw(st.integers(0xA0, 0xBF))]) + b"\x80")
    else:  # a lone surrogate as a JSON escape: valid JSON, but no answer can echo it
        surrogate = chr(draw(st.integers(0xD800, 0xDFFF)))
        raw = json.dumps(good_body(context={"note": surrogate})).encode()
        return Bad(
            raw,
            good_headers(),
            label=f"encoding: {kind}",
            expect_text=("cannot encode",),
            bad_if_answered=True,
        )
    return Bad(raw, good_headers(), label=f"encoding: {kind}", expect_text=("UTF-8",))


not_utf8 = st.binary(min_size=1, max_size=40).filter(lambda b: not _is_utf8(b))


@st.composite
def odd_properties(draw: st.DrawFn) -> Bad:
    """A good request whose AMQP properties or header names are not UTF-8 (pamqp, unpatched,
    drops the connection on them), or odd but harmless properties: only a correlation_id or
    reply_to that is not UTF-8 makes the message bad (it cannot be answered)."""
    headers: dict[Any, Any] = good_headers()
    extra: dict[str, Any] = {}
    for name in ("content_type", "content_encoding", "message_id", "message_type", "app_id"):
        if draw(st.booleans()):
            extra[name] = draw(text | not_utf8)
    if draw(st.booleans()):
        headers[draw(not_utf8)] = draw(header_values)
    kind = draw(st.sampled_from(["correlation_id", "reply_to", "both", "harmless"]))
    body = json.dumps(good_body()).encode()
    if kind == "harmless":
        return Bad(body, headers, dead_letter=False, properties=extra, label="properties: odd")
    bad = Bad(body, headers, properties=extra, label=f"properties: {kind} not UTF-8")
    if kind in ("correlation_id", "both"):
        bad.correlation_id = draw(not_utf8)
    if kind in ("reply_to", "both"):
        bad.reply_to = draw(not_utf8)
    return bad


def addressed(strategy: st.SearchStrategy[Bad]) -> st.SearchStrategy[Bad]:
    """Mostly with a reply_to and a correlation id; sometimes without one or the other (then
    there is nobody to answer, and the message is only dead-lettered)."""

    @st.composite
    def build(draw: st.DrawFn) -> Bad:
        bad = draw(strategy)
        how = draw(st.sampled_from(["both"] * 6 + ["no reply_to", "no correlation_id"]))
        if how == "no reply_to":
            bad.reply = False
        elif how == "no correlation_id":
            bad.correlation_id = None
        if bad.bad_if_answered and how != "both":
            bad.dead_letter = False
        return bad

    return build()


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_a_valid_request(raw: bytes) -> bool:
    try:
        codec.check_body("request", codec.decode_json(raw))
    except nl.NuropbException:
        return False
    return True


# --- the tests -----------------------------------------------------------------------------


@pytest.fixture
def raw_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let this process send strings and header names that are not UTF-8 (pamqp encodes only
    str); the service under test decodes them as any peer's would arrive."""
    string = pamqp.encode._string

    def _string(encoder: Any, value: Any) -> bytes:
        if isinstance(value, bytes):
            return bytes(encoder.pack(len(value))) + value
        return bytes(string(encoder, value))

    def field_table(value: dict[Any, Any]) -> bytes:
        parts = []
        for key, item in value.items():
            raw = key if isinstance(key, bytes) else key.encode()
            parts.append(pamqp.common.Struct.byte.pack(len(raw)) + raw)
            parts.append(pamqp.encode.encode_table_value(item))
        data = b"".join(parts)
        return bytes(pamqp.common.Struct.integer.pack(len(data))) + data

    monkeypatch.setattr(pamqp.encode, "_string", _string)
    monkeypatch.setattr(pamqp.encode, "field_table", field_table)
    monkeypatch.setitem(pamqp.encode.METHODS, "table", field_table)


@given(bad=addressed(bad_headers()))
@settings(SETTINGS, max_examples=150)
async def test_bad_headers_are_dead_lettered_and_answered(harness: Harness, bad: Bad) -> None:
    await harness.send(bad)


@given(bad=addressed(bad_bodies()))
@settings(SETTINGS, max_examples=300)
async def test_bad_bodies_are_dead_lettered_and_answered(harness: Harness, bad: Bad) -> None:
    await harness.send(bad)


@given(bad=addressed(bad_encodings()))
@settings(SETTINGS, max_examples=200)
async def test_bad_encodings_are_dead_lettered_and_answered(harness: Harness, bad: Bad) -> None:
    await harness.send(bad)


@given(bad=odd_properties())
@settings(SETTINGS, max_examples=100)
async def test_properties_that_are_not_utf8_never_cost_the_connection(
    raw_strings: None, harness: Harness, bad: Bad
) -> None:
    await harness.send(bad)


def test_decoder_limits_are_settable_and_errors_clear() -> None:
    limits = codec.DecodeLimits(max_bytes=64, max_depth=3)
    with pytest.raises(nl.NuropbMessageError, match="body of 65 bytes is over the limit of 64"):
        codec.decode_json(b"[" + b"1," * 31 + b"1]", limits)
    with pytest.raises(nl.NuropbMessageError, match="nested 4 levels deep, over the limit of 3"):
        codec.decode_json(b"[[[[1]]]]", limits)
    assert codec.decode_json(b"[[[1]]]", limits) == [[[1]]]
    with pytest.raises(nl.NuropbMessageError, match="nested too deeply"):
        codec.decode_json(b"[" * 50_000 + b"]" * 50_000, codec.DecodeLimits(max_bytes=10**6))
    for raw in ('{"a": "é"}'.encode("utf-16"), b'{"a": "\xed\xa0\x80"}', b"\xef\xbb\xbf{}"):
        with pytest.raises(nl.NuropbMessageError, match="not valid UTF-8 JSON"):
            codec.decode_json(raw)
    for headers in (
        {"nuropb_protocol": ["0.1.1"], "nuropb_type": "request"},
        {"nuropb_protocol": {"v": 1}, "nuropb_type": "request"},
        {"nuropb_protocol": "0.1.1", "nuropb_type": ["request"]},
    ):
        with pytest.raises(nl.NuropbMessageError, match="is not supported"):
            codec.check_headers(headers)
