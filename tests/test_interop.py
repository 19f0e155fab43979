"""Interop with the published nuropb 0.1.8, both directions, on the real broker, on meshes
that nuropb's own helpers set up: ``configure_mesh`` (dead-letter queue ``nuropb-dl-queue``)
and ``configure_nuropb_rmq`` as a transport's ``configure_rabbitmq`` calls it (dead-letter
queue ``nuropb-{service}-dl``); both declare that queue not durable. Every test runs on both,
and the mesh's own objects are the same, flags and all, after the module as before it.

Each nuropb peer runs in a process of its own, with the python of the nuropb venv
(the ``nuropb_python`` fixture):

- ``peers/nuropb_service.py`` serves a nuropb service that the lab's ``RMQAPI`` client calls;
- ``peers/nuropb_client.py`` runs a nuropb client scenario against a service the lab serves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from cryptography.hazmat.primitives import serialization
from support import mesh_objects, nuropb_made_mesh, wait_until

import nuropb_lab as nl
from nuropb_lab.mesh import ManagementAPI

PEERS = Path(__file__).resolve().parent / "peers"
READY_TIMEOUT = 30.0  # s for a nuropb service to connect and print READY
STOP_TIMEOUT = 10.0  # s for a peer to leave once asked, before it is killed
CLIENT_TIMEOUT = 60.0  # s for a whole nuropb client scenario
TTL = 10_000  # ms: every lab call here is bounded, so a lost answer fails fast
PEM_HEADER = "-----BEGIN PUBLIC KEY-----"
RPC_EXCHANGE = "nuropb-rpc-exchange"  # docs/PROTOCOL.md: the default name


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def vhost_of(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def pem_of(key: Any) -> str:
    return str(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
    )


def param(name: str, type_: str, default: Any = "") -> list[Any]:
    """One entry of a describe ``properties`` list, as it arrives in JSON."""
    return [name, {"type": type_, "description": "", "default": default}]


# --- the peers ------------------------------------------------------------------------


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    """Ask a peer to leave (stdin closed), kill it if it does not within STOP_TIMEOUT."""
    if proc.returncode is not None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def nuropb_service(python: Path, url: str, name: str) -> AsyncIterator[None]:
    """A nuropb 0.1.8 service named ``name`` running in its own process."""
    proc = await asyncio.create_subprocess_exec(
        str(python),
        str(PEERS / "nuropb_service.py"),
        url,
        name,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"nuropb service {name} not READY within {READY_TIMEOUT} s")
        if line.strip() != b"READY":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            pytest.fail(f"nuropb service {name} did not start: {line!r}, exit {proc.returncode}")
        yield
    finally:
        await stop_process(proc)


async def run_nuropb_client(
    python: Path, url: str, service: str, scenario: list[dict[str, Any]]
) -> dict[str, Any]:
    """Run a nuropb 0.1.8 client scenario against ``service``; its JSON output."""
    proc = await asyncio.create_subprocess_exec(
        str(python),
        str(PEERS / "nuropb_client.py"),
        url,
        service,
        json.dumps(scenario),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLIENT_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    detail = f"exit {proc.returncode}\nstdout: {out.decode()}\nstderr: {err.decode()[-6000:]}"
    assert proc.returncode == 0, detail
    output: dict[str, Any] = json.loads(out)
    assert "failure" not in output, detail
    return output


@contextlib.asynccontextmanager
async def lab_service(
    url: str, name: str, instance: object, **settings: Any
) -> AsyncIterator[nl.RMQAPI]:
    async with nl.RMQAPI(
        url, service_name=name, service_instance=instance, transport_settings=settings
    ) as api:
        yield api


@contextlib.asynccontextmanager
async def wire_tap(url: str, service: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue getting a copy of every request and command routed to ``service``."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(RPC_EXCHANGE, routing_key=service)
        yield queue
    finally:
        await connection.close()


NUROPB_SETUPS = {
    "configure_mesh": ("configure_mesh", ""),
    "service_dl": ("configure_nuropb_rmq", "nuropb-ref-service-dl"),
}


@pytest.fixture(scope="module", params=sorted(NUROPB_SETUPS))
def mesh_url(
    request: pytest.FixtureRequest, nuropb_python: Path, management: ManagementAPI
) -> Iterator[str]:
    """A mesh set up by nuropb's own helpers, shared by this module's tests (each mesh
    once); at the end, the shared objects nuropb made are there as they were."""
    helper, dl_queue = NUROPB_SETUPS[request.param]
    for url in nuropb_made_mesh(nuropb_python, management, "interop", helper, dl_queue):
        vhost = vhost_of(url)
        before = asyncio.run(mesh_objects(management, vhost))
        dlq = dl_queue or "nuropb-dl-queue"
        assert before["queues"][dlq][0] is False, "nuropb declares its DLQ not durable"
        yield url
        after = asyncio.run(mesh_objects(management, vhost))
        assert after["exchanges"] == before["exchanges"]
        # the services' own queues come and stay (durable, as nuropb's); nothing else changes
        for name, flags in before["queues"].items():
            assert after["queues"][name] == flags, name
        added = set(after["queues"]) - set(before["queues"])
        assert added and all(name.endswith("-sq") for name in added), added
        shared = {b for b in before["bindings"] if not b[1].endswith("-sq")}
        assert {b for b in after["bindings"] if not b[1].endswith("-sq")} == shared


@pytest.fixture
async def ref_service(nuropb_python: Path, mesh_url: str) -> AsyncIterator[str]:
    """The name of a running nuropb 0.1.8 service (peers/nuropb_service.py)."""
    name = unique("ref")
    async with nuropb_service(nuropb_python, mesh_url, name):
        yield name


@pytest.fixture
async def lab_client(mesh_url: str) -> AsyncIterator[nl.RMQAPI]:
    async with nl.RMQAPI(mesh_url) as client:
        yield client


class Recorder:
    """A lab-served object that records the events it gets."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, Any, Any]] = []

    def ping(self) -> str:
        return "pong"

    def _handle_event_(self, topic: str, event: Any, target: Any, context: Any) -> None:
        self.events.append((topic, event, target, context))

    def on(self, topic: str) -> list[tuple[str, Any, Any, Any]]:
        return [record for record in self.events if record[0] == topic]


@contextlib.asynccontextmanager
async def recorder_for(url: str, ref: str) -> AsyncIterator[Recorder]:
    """A lab service recording every event the nuropb service ``ref`` publishes."""
    recorder = Recorder()
    async with lab_service(
        url, unique("lab-recorder"), recorder, event_bindings=[f"nuropb.{ref}.#"]
    ):
        yield recorder


# --- (a) a nuropb 0.1.8 service, called by the lab's client ------------------------------


async def test_lab_describes_nuropb_service(ref_service: str, lab_client: nl.RMQAPI) -> None:
    info = await lab_client.describe_service(ref_service, ttl=TTL)

    assert info["service_name"] == ref_service
    assert info["service_version"] == "0.1.8-interop"
    assert info["description"] == "The nuropb 0.1.8 reference service of the lab's interop tests."
    assert info["warnings"] == []
    assert info["encrypted_methods"] is True
    assert info["public_key"].startswith(PEM_HEADER)
    assert set(info["methods"]) == {
        "add",
        "async_add",
        "fail",
        "async_fail",
        "secret",
        "announce",
        "recall",
        "seen_events",
        "remember",
    }
    methods = info["methods"]
    assert methods["add"] == {
        "description": "Add two numbers.",
        "requires_encryption": False,
        "parameters": {
            "type": "object",
            "properties": [param("a", "int"), param("b", "int", 2)],
            "required": ["a"],
        },
    }
    assert methods["secret"] == {
        "description": "Reverse a secret text",
        "requires_encryption": True,
        "parameters": {
            "type": "object",
            "properties": [param("text", "str")],
            "required": ["text"],
        },
    }
    # nuropb hides the @nuropb_context parameter; ``str | None`` is described as "str"
    assert methods["announce"]["parameters"] == {
        "type": "object",
        "properties": [
            param("topic", "str"),
            param("event", "Any"),
            param("trace_id", "str", None),
        ],
        "required": ["topic", "event"],
    }
    assert methods["async_add"]["description"] is None

    # the lab kept the service's key, and answers the discovery questions from the cache
    key = lab_client.public_key(ref_service)
    assert key is not None and pem_of(key) == info["public_key"]
    assert lab_client.cached_description(ref_service) == info
    assert await lab_client.has_public_key(ref_service) is True
    assert await lab_client.requires_encryption(ref_service, "secret") is True
    assert await lab_client.requires_encryption(ref_service, "add") is False


async def test_lab_calls_nuropb_sync_and_async_methods(
    ref_service: str, lab_client: nl.RMQAPI
) -> None:
    call = lab_client.request
    assert await call(ref_service, "add", {"a": 2, "b": 3}, {}, ttl=TTL) == 5
    assert await call(ref_service, "add", {"a": 40}, {}, ttl=TTL) == 42
    assert await call(ref_service, "async_add", {"a": 20, "b": 22}, {}, ttl=TTL) == 42

    response = await call(
        ref_service,
        "add",
        {"a": 2, "b": 3},
        {"user": "x"},
        ttl=TTL,
        trace_id="t-123",
        rpc_response=False,
    )
    assert response["tag"] == "response"
    assert response["result"] == 5
    assert response["error"] is None
    assert response["context"] == {"user": "x"}
    assert response["trace_id"] == "t-123"
    assert isinstance(response["correlation_id"], str) and len(response["correlation_id"]) == 32
    # nuropb sets reply_to on its responses to the request's reply_to: the lab's response queue
    assert response["reply_to"] == lab_client.transport.config.response_queue


async def test_lab_gets_nuropb_errors_as_their_classes(
    ref_service: str, lab_client: nl.RMQAPI
) -> None:
    # a plain exception: nuropb wraps it in a NuropbException
    with pytest.raises(nl.NuropbException) as raised:
        await lab_client.request(ref_service, "fail", {"message": "boom"}, {}, ttl=TTL)
    exc = raised.value
    assert type(exc).__name__ == "NuropbException"
    assert isinstance(exc, nl.NuropbMessageError)
    assert exc.remote_name == "NuropbException"
    assert exc.description == f"Runtime exception calling {ref_service}.fail:ValueError: boom"

    # a nuropb error raised by an async method travels under its own class
    with pytest.raises(nl.NuropbValidationError) as raised:
        await lab_client.request(ref_service, "async_fail", {"message": "bad input"}, {}, ttl=TTL)
    assert isinstance(raised.value, nl.NuropbMessageError)
    assert raised.value.description == "bad input"

    # an unknown (or private) method
    for method in ("nope", "_handle_event_"):
        with pytest.raises(nl.NuropbHandlingError) as raised:
            await lab_client.request(ref_service, method, {}, {}, ttl=TTL)
        assert isinstance(raised.value, nl.NuropbMessageError)
        assert raised.value.description == f"Unknown method {method}"

    # without rpc_response the error is in the response
    response = await lab_client.request(
        ref_service, "fail", {"message": "boom"}, {"c": 1}, ttl=TTL, rpc_response=False
    )
    assert response["result"] is None
    assert response["context"] == {"c": 1}
    assert response["error"] == {
        "error": "NuropbException",
        "description": f"Runtime exception calling {ref_service}.fail:ValueError: boom",
    }


async def test_lab_encrypted_call_to_nuropb_service(
    ref_service: str, lab_client: nl.RMQAPI, mesh_url: str
) -> None:
    # no describe first: the lab fetches the key itself
    async with wire_tap(mesh_url, ref_service) as tap:
        result = await lab_client.request(
            ref_service, "secret", {"text": "hello"}, {}, ttl=TTL, encrypted=True
        )
        describe = await tap.get(no_ack=True, fail=False)
        wire = await tap.get(no_ack=True, fail=False)
    assert result == {"reversed": "olleh", "length": 5}
    # first the lab asked for the key (in plaintext), then sent the request encrypted; it had
    # to be: nuropb would run the method on a plaintext request too
    assert describe is not None and describe.headers["encrypted"] == ""
    assert json.loads(describe.body)["method"] == "nuropb_describe"
    assert wire is not None and wire.headers["encrypted"] == "yes"
    wrapped_key, token = wire.body.split(b".")
    assert len(base64.b64decode(wrapped_key, validate=True)) == 256  # RSA-2048 OAEP
    assert base64.b64decode(token, validate=True).startswith(b"gAAAAA")  # a Fernet token
    assert b"hello" not in wire.body
    assert lab_client.public_key(ref_service) is not None
    result = await lab_client.request(
        ref_service, "secret", {"text": "abc" * 100}, {}, ttl=TTL, encrypted=True
    )
    assert result == {"reversed": "cba" * 100, "length": 300}
    # an encrypted call to a method that does not require it works as well
    assert await lab_client.request(ref_service, "add", {"a": 1}, {}, ttl=TTL, encrypted=True) == 3

    # nuropb 0.1.8 defect (docs/PROTOCOL.md): its service runs a plaintext call to an
    # encrypted method
    plain = await lab_client.request(ref_service, "secret", {"text": "ab"}, {}, ttl=TTL)
    assert plain == {"reversed": "ba", "length": 2}


async def test_lab_command_runs_on_nuropb_service(
    ref_service: str, lab_client: nl.RMQAPI, mesh_url: str
) -> None:
    async with recorder_for(mesh_url, ref_service) as recorder:
        topic = f"nuropb.{ref_service}.remembered"
        sent = lab_client.command(
            ref_service, "remember", {"key": "colour", "value": "blue"}, {"who": "lab"}
        )
        await asyncio.wait_for(sent, TTL / 1000)  # routed: the broker took it
        await wait_until(lambda: recorder.on(topic), what="the command's event from nuropb")
        assert recorder.on(topic) == [
            (topic, {"key": "colour", "value": "blue"}, None, {"service": ref_service})
        ]
    assert await lab_client.request(ref_service, "recall", {"key": "colour"}, {}, ttl=TTL) == "blue"
    assert lab_client.stats["commands"] == 1


async def test_events_between_nuropb_service_and_lab(
    ref_service: str, lab_client: nl.RMQAPI, mesh_url: str
) -> None:
    async with recorder_for(mesh_url, ref_service) as recorder:
        # nuropb -> lab: the nuropb service publishes through nuropb's api.publish_event
        hello = f"nuropb.{ref_service}.hello"
        published = await lab_client.request(
            ref_service,
            "announce",
            {"topic": hello, "event": {"hi": 1}, "trace_id": "t-ev"},
            {"c": 1},
            ttl=TTL,
        )
        assert published == "published"
        await wait_until(lambda: recorder.on(hello), what="nuropb's event at the lab")
        assert recorder.on(hello) == [(hello, {"hi": 1}, None, {"c": 1})]

        # lab -> nuropb: the nuropb service's _handle_event_ records it and echoes it back
        ping = f"lab.{ref_service}.ping"
        await asyncio.wait_for(lab_client.publish_event(ping, {"n": 1}, {"c": 2}), TTL / 1000)
        echo = f"nuropb.{ref_service}.echo"
        await wait_until(lambda: recorder.on(echo), what="nuropb's echo of the lab's event")
        seen = {"topic": ping, "event": {"n": 1}, "target": None, "context": {"c": 2}}
        assert recorder.on(echo) == [(echo, seen, None, {"echo": True})]
    assert await lab_client.request(ref_service, "seen_events", {}, {}, ttl=TTL) == [seen]


async def test_lab_ignores_and_counts_nuropb_duplicate_responses(
    ref_service: str, lab_client: nl.RMQAPI
) -> None:
    stats = lab_client.stats
    # nuropb answers a failing request twice (same correlation id)
    with pytest.raises(nl.NuropbException):
        await lab_client.request(ref_service, "fail", {"message": "boom"}, {}, ttl=TTL)
    await wait_until(lambda: stats["duplicate_responses"] == 1, what="nuropb's second response")
    assert stats["responses"] == 1
    assert stats["unpaired_responses"] == 0

    # the next call is not confused by it; nuropb sent both answers before this one's
    assert await lab_client.request(ref_service, "add", {"a": 1, "b": 1}, {}, ttl=TTL) == 2
    assert (stats["responses"], stats["duplicate_responses"]) == (2, 1)

    with pytest.raises(nl.NuropbValidationError):
        await lab_client.request(ref_service, "async_fail", {"message": "x"}, {}, ttl=TTL)
    await wait_until(lambda: stats["duplicate_responses"] == 2, what="the async error's twin")
    with pytest.raises(nl.NuropbHandlingError):
        await lab_client.request(ref_service, "nope", {}, {}, ttl=TTL)
    await wait_until(lambda: stats["duplicate_responses"] == 3, what="the handling error's twin")

    assert await lab_client.request(ref_service, "add", {"a": 2, "b": 2}, {}, ttl=TTL) == 4
    assert stats["responses"] == 5
    assert stats["duplicate_responses"] == 3
    assert stats["unpaired_responses"] == 0
    assert lab_client.in_flight == 0


# --- (b) a nuropb 0.1.8 client, calling a service the lab serves -------------------------


class LabService:
    """Served by the lab, called by nuropb 0.1.8."""

    _version = "1.2.3"

    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, Any, Any, Any]] = []
        self.secret_calls = 0

    def add(self, a: int, b: int = 2) -> int:
        """Add two numbers."""
        return a + b

    async def async_add(self, a: int, b: int = 2) -> int:
        await asyncio.sleep(0.01)
        return a + b

    @nl.publish_to_mesh(requires_encryption=True, description="Reverse a secret text")
    def secret(self, text: str) -> dict[str, Any]:
        self.secret_calls += 1
        return {"reversed": text[::-1], "length": len(text)}

    def remember(self, key: str, value: str) -> None:
        self.commands.append((key, value))

    def fail(self, message: str) -> None:
        raise nl.NuropbValidationError(message)

    def _handle_event_(self, topic: str, event: Any, target: Any, context: Any) -> None:
        self.events.append(("sync", topic, event, target, context))


class AsyncHandlerLabService(LabService):
    async def _handle_event_(self, topic: str, event: Any, target: Any, context: Any) -> None:
        await asyncio.sleep(0.01)  # recorded only if the coroutine is really awaited
        self.events.append(("async", topic, event, target, context))


def request_step(step_id: str, method: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "op": "request", "method": method, "params": params, **extra}


async def test_nuropb_client_calls_lab_service(nuropb_python: Path, mesh_url: str) -> None:
    service = LabService()
    name = unique("lab-svc")
    scenario = [
        {"id": "describe", "op": "describe"},
        request_step("add", "add", {"a": 2, "b": 3}, context={"user": "x"}, trace_id="t-123"),
        request_step("add_default", "add", {"a": 40}),
        request_step("async_add", "async_add", {"a": 20, "b": 22}),
        request_step("secret", "secret", {"text": "hello"}, encrypted=True),
        request_step("add_encrypted", "add", {"a": 1}, encrypted=True),
        request_step("secret_plain", "secret", {"text": "hello"}, expect_error=True),
        request_step("fail", "fail", {"message": "bad input"}, expect_error=True),
        request_step("unknown", "nope", {}, expect_error=True),
    ]
    async with lab_service(mesh_url, name, service) as api:
        output = await run_nuropb_client(nuropb_python, mesh_url, name, scenario)

    vhost = vhost_of(mesh_url)
    assert output["client"]["service_name"] == f"{vhost}-client"
    assert output["client"]["response_queue"].startswith(f"nuropb-{vhost}-client-")
    results = output["results"]

    describe = results["describe"]
    info = describe["result"]
    assert info["service_name"] == name
    assert info["service_version"] == "1.2.3"
    assert info["description"] == "Served by the lab, called by nuropb 0.1.8."
    assert info["encrypted_methods"] is True
    assert info["public_key"].startswith(PEM_HEADER)
    assert (
        api.private_key is not None and pem_of(api.private_key.public_key()) == info["public_key"]
    )
    assert set(info["methods"]) == {"add", "async_add", "secret", "remember", "fail"}
    assert info["methods"]["add"] == {
        "description": "Add two numbers.",
        "requires_encryption": False,
        "parameters": {
            "type": "object",
            "properties": [param("a", "int"), param("b", "int", 2)],
            "required": ["a"],
        },
        "returns": {"type": "int"},  # beyond nuropb's schema: its client keeps it as it is
    }
    assert info["methods"]["secret"]["description"] == "Reverse a secret text"
    assert describe["has_public_key"] is True
    assert describe["requires_encryption"] == {
        "add": False,
        "async_add": False,
        "secret": True,
        "remember": False,
        "fail": False,
    }

    assert results["add"] == {"result": 5}
    assert results["add_default"] == {"result": 42}
    assert results["async_add"] == {"result": 42}
    assert results["secret"] == {"result": {"reversed": "olleh", "length": 5}}
    assert results["add_encrypted"] == {"result": 3}

    # nuropb 0.1.8's client raises NuropbMessageError for every remote error
    assert results["secret_plain"]["error"] == "NuropbMessageError"
    assert "requires encryption" in results["secret_plain"]["description"]
    assert service.secret_calls == 1  # the plaintext call was refused, not run
    assert results["fail"] == {
        "error": "NuropbMessageError",
        "message": "bad input",
        "description": "bad input",
    }
    assert results["unknown"]["error"] == "NuropbMessageError"
    assert results["unknown"]["description"] == "Unknown method nope"

    assert api.stats["service_messages"] == len(scenario)
    assert api.stats["bad_messages"] == 0


async def test_nuropb_client_command_reaches_lab_service(
    nuropb_python: Path, mesh_url: str
) -> None:
    service = LabService()
    name = unique("lab-svc")
    scenario = [
        {"id": "cmd", "op": "command", "method": "remember", "params": {"key": "k", "value": "v"}},
        {
            "id": "cmd_encrypted",
            "op": "command",
            "method": "remember",
            "params": {"key": "secret", "value": "red"},
            "encrypted": True,
        },
    ]
    async with lab_service(mesh_url, name, service) as api:
        output = await run_nuropb_client(nuropb_python, mesh_url, name, scenario)
        assert output["results"] == {"cmd": {"result": None}, "cmd_encrypted": {"result": None}}
        await wait_until(lambda: len(service.commands) == 2, what="nuropb's commands at the lab")
        assert service.commands == [("k", "v"), ("secret", "red")]
        assert api.stats["bad_messages"] == 0
        assert api.stats["service_errors"] == 0


@pytest.mark.parametrize("service_class", [LabService, AsyncHandlerLabService])
async def test_nuropb_client_event_reaches_lab_handler(
    nuropb_python: Path, mesh_url: str, service_class: type[LabService]
) -> None:
    service = service_class()
    name = unique("lab-svc")
    topic = f"interop.{name}.hello"
    scenario = [
        {
            "id": "event",
            "op": "event",
            "topic": topic,
            "event": {"hi": 1},
            "context": {"c": 1},
            "trace_id": "t-ev",
        },
    ]
    kind = "async" if service_class is AsyncHandlerLabService else "sync"
    async with lab_service(mesh_url, name, service, event_bindings=[f"interop.{name}.#"]) as api:
        output = await run_nuropb_client(nuropb_python, mesh_url, name, scenario)
        assert output["results"] == {"event": {"result": None}}
        await wait_until(lambda: service.events, what=f"nuropb's event at the {kind} handler")
        assert service.events == [(kind, topic, {"hi": 1}, None, {"c": 1})]
        assert api.stats["service_errors"] == 0
