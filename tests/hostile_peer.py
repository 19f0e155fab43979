"""A hostile peer on a mesh, made of aio-pika (and cryptography, for a real public key) alone:
no lab code on its side. Every name and text it sends is markup, and math text for matplotlib.

It serves a service whose name, version, description, warnings, method and parameter names,
results and errors are markup; it calls that service from a response queue whose name is
markup (so the caller's label is), with a trace id and context that are markup; it publishes
a request whose ``nuropb_type`` header is markup, an event on a topic that is markup, and a
dead letter whose headers and body are.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
import uuid
from collections.abc import Coroutine
from typing import Any

import aio_pika
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# run, each would set window.__nuropb_pwned, which a browser test looks for (no "." in them:
# "service.method" is split at its last dot)
IMG = "<img src=x onerror=__nuropb_pwned=1>"
SCRIPT = '"><script>__nuropb_pwned=2</script>'
ATTR = "' onmouseover='__nuropb_pwned=3'"
MATH = r" $\foo$"  # matplotlib math text that does not parse


def hostile(label: str) -> str:
    """A field's hostile text: its label, then an element, a tag breaking out of an attribute,
    an event handler breaking out of a single-quoted attribute, and math text."""
    return f"{label}{IMG}{SCRIPT}{ATTR}{MATH}"


def shown(label: str) -> str:
    """What must show of ``hostile(label)`` wherever it is shown: its start, which survives JSON
    quoting (no quote or backslash in it) and a view's cut to a preview."""
    return f"{label}{IMG}"


SERVICE = hostile("svc")
METHOD = hostile("method")
PARAM = hostile("param")
SECRET = hostile("secret")
ERROR = hostile("Error")
CALLER = hostile("caller")
TRACE = hostile("trace")
KIND = hostile("kind")
# an event's topic: markup, and math text with an odd "$" and a backslash
TOPIC = "hostile." + hostile("t") + r" $\x"
RPC = "nuropb-rpc-exchange"
EVENTS = "nuropb-events-exchange"
DLX = "nuropb-dl-exchange"


def _headers(kind: str, trace_id: str | None) -> dict[str, Any]:
    return {
        "nuropb_protocol": "0.1.1",
        "nuropb_version": hostile("version"),
        "nuropb_type": kind,
        "trace_id": trace_id,
        "encrypted": "",
    }


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def description(pem: str) -> dict[str, Any]:
    """The service's ``nuropb_describe`` answer: markup wherever a peer may write text."""
    params = {
        "type": "object",
        "properties": [
            [
                PARAM,
                {"type": hostile("type"), "description": hostile("pdoc"), "default": hostile("d")},
            ],
            ["n", {"type": "int", "description": hostile("ndoc"), "default": 1}],
        ],
        "required": [],
    }
    none: dict[str, Any] = {"type": "object", "properties": [], "required": []}
    return {
        "service_name": SERVICE,
        "service_version": hostile("v"),
        "description": hostile("about"),
        "warnings": [hostile("warning")],
        "encrypted_methods": True,
        "public_key": pem,
        "methods": {
            METHOD: {
                "description": hostile("does"),
                "requires_encryption": False,
                "parameters": params,
            },
            "text": {"description": hostile("tdoc"), "parameters": none},
            "fail": {"description": hostile("fdoc"), "parameters": none},
            SECRET: {
                "description": hostile("sdoc"),
                "requires_encryption": True,
                "parameters": none,
            },
        },
    }


def answer(method: Any, pem: str) -> tuple[Any, Any]:
    """(result, error) of a call."""
    if method == "nuropb_describe":
        return description(pem), None
    if method == "text":
        return hostile("result"), None
    if method == "fail":
        return None, {"error": ERROR, "description": hostile("failure")}
    rows = [{hostile("column"): hostile("cell"), "n": n} for n in range(2)]
    return rows, None


class HostilePeer:
    """The peer, on an event loop of its own thread; ``with HostilePeer(url) as peer``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.pem = _pem()
        self.answered = 0
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        # a queue name cannot hold markup (pamqp refuses it), a routing key and reply_to can:
        # the service queue is bound with the service's name, and the calls' reply_to names a
        # queue that is never declared (their answers are dropped, the tap sees them)
        self.queue = f"hostile-peer-{uuid.uuid4().hex[:8]}"
        self.reply_to = f"nuropb-{CALLER}-{uuid.uuid4().hex[:8]}-rq"

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> HostilePeer:
        self.thread.start()
        self._run(self._start())
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self._run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    async def _start(self) -> None:
        self.connection = await aio_pika.connect(self.url)
        self.channel = channel = await self.connection.channel()
        # durable, as nuropb declares a service queue (a broker may deny transient shared ones)
        queue = await channel.declare_queue(
            self.queue, durable=True, arguments={"x-dead-letter-exchange": DLX}
        )
        await queue.bind(RPC, routing_key=SERVICE)
        await queue.consume(self._on_request)

    async def _stop(self) -> None:
        assert self.connection is not None and self.channel is not None
        await self.channel.queue_delete(self.queue)
        await self.connection.close()

    async def _on_request(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        assert self.channel is not None
        async with message.process():
            try:
                request = json.loads(message.body)
            except ValueError:
                return
            result, error = answer(request.get("method"), self.pem)
            if not message.reply_to:
                return
            body = {
                "tag": "response",
                "correlation_id": message.correlation_id,
                "context": {hostile("rctx"): hostile("rctx")},
                "trace_id": request.get("trace_id"),
                "result": result,
                "error": error,
                "warning": hostile("warn"),
                "reply_to": message.reply_to,
            }
            await self.channel.default_exchange.publish(
                aio_pika.Message(
                    json.dumps(body).encode(),
                    content_type="application/json",
                    correlation_id=message.correlation_id,
                    headers=_headers("response", request.get("trace_id")),
                ),
                routing_key=message.reply_to,
            )
            self.answered += 1

    def send_traffic(self) -> None:
        """A call of the service with a markup trace id and context (answered), a request whose
        kind header is markup, an event on a markup topic, and a dead letter."""
        self._run(self._send_traffic())

    async def _send_traffic(self) -> None:
        assert self.channel is not None
        exchange = await self.channel.get_exchange(RPC, ensure=False)
        for kind in ("request", KIND):
            cid = uuid.uuid4().hex
            request = {
                "tag": "request",
                "service": SERVICE,
                "method": METHOD,
                "params": {hostile("key"): hostile("value")},
                "correlation_id": cid,
                "context": {hostile("ctx"): hostile("ctx")},
                "trace_id": TRACE,
            }
            await exchange.publish(
                aio_pika.Message(
                    json.dumps(request).encode(),
                    content_type="application/json",
                    correlation_id=cid,
                    reply_to=self.reply_to,
                    expiration=10,
                    headers=_headers(kind, TRACE),
                ),
                routing_key=SERVICE,
                mandatory=False,
            )
        await self.publish_event()
        dlx = await self.channel.get_exchange(DLX, ensure=False)
        death = {
            "reason": hostile("reason"),
            "queue": hostile("queue"),
            "time": datetime.datetime.now(datetime.UTC).replace(microsecond=0),
            "count": 1,
            "exchange": RPC,
            "routing-keys": [SERVICE],
        }
        dead = {"tag": "request", "service": SERVICE, "method": hostile("dead"), "params": {}}
        await dlx.publish(
            aio_pika.Message(
                json.dumps(dead).encode(),
                content_type="application/json",
                correlation_id=hostile("cid"),
                headers={**_headers(KIND, TRACE), "x-death": [death]},
            ),
            routing_key="",
        )

    async def publish_event(self, topic: str = TOPIC) -> None:
        assert self.channel is not None
        exchange = await self.channel.get_exchange(EVENTS, ensure=False)
        event = {
            "tag": "event",
            "topic": topic,
            "event": {hostile("key"): hostile("event")},
            "context": {hostile("ctx"): hostile("ctx")},
            "trace_id": TRACE,
            "correlation_id": uuid.uuid4().hex,
            "target": None,
        }
        await exchange.publish(
            aio_pika.Message(
                json.dumps(event).encode(),
                content_type="application/json",
                headers=_headers("event", TRACE),
            ),
            routing_key=topic,
        )
