"""Round trips client -> lab service on a real broker, for every outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from support import wait_until

import nuropb_lab as nl
from nuropb_lab.mesh import codec


def authorize(token: str) -> dict[str, Any] | None:
    return {"sub": "alice"} if token == "good-token" else None


class Shop:
    """A test service."""

    _version = "1.0"

    def __init__(self) -> None:
        self.calls_again = 0
        self.commands: list[Any] = []
        self.events: list[tuple[str, Any, Any, Any]] = []

    def add(self, a: int, b: int = 2) -> int:
        return a + b

    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    def fail(self) -> None:
        raise ValueError("out of stock")

    def invalid(self) -> None:
        raise nl.NuropbValidationError("sku is unknown")

    def type_error_inside(self) -> None:
        raise TypeError("a bug in the method")

    def flaky(self) -> str:
        self.calls_again += 1
        if self.calls_again == 1:
            raise nl.NuropbCallAgain("not ready yet")
        return f"ok after {self.calls_again}"

    def always_again(self) -> None:
        raise nl.NuropbCallAgain("never ready")

    def shortcut(self, n: int) -> None:
        raise nl.NuropbSuccess(
            result={"n": n}, events=[{"topic": "shop.done", "payload": {"n": n}, "target": None}]
        )

    @nl.nuropb_context
    def with_events(self, ctx: nl.NuropbContextManager, n: int) -> int:
        ctx.add_event({"topic": "shop.ctx", "event": {"n": n}})
        return n

    @nl.nuropb_context
    @nl.publish_to_mesh(authorize_func=authorize)
    def whoami(self, ctx: nl.NuropbContextManager) -> Any:
        return ctx.user_claims

    @nl.publish_to_mesh(requires_encryption=True)
    def secret(self, text: str) -> str:
        return text[::-1]

    def record(self, item: Any) -> None:
        self.commands.append(item)

    def echo_context(self) -> str:
        return "ok"

    def _private(self) -> str:
        return "no"


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def _handle_event_(self, topic: str, event: Any, target: Any, context: Any) -> None:
        await asyncio.sleep(0)  # an awaited handler really runs
        self.events.append((topic, event))


@pytest.fixture
async def shop(mesh_url: str) -> AsyncIterator[Shop]:
    instance = Shop()
    async with nl.RMQAPI(mesh_url, service_name="shop", service_instance=instance):
        yield instance


@pytest.fixture
async def client(mesh_url: str, shop: Shop) -> AsyncIterator[nl.RMQAPI]:
    async with nl.RMQAPI(mesh_url) as api:
        yield api


async def test_sync_and_async_methods(client: nl.RMQAPI) -> None:
    assert await client.request("shop", "add", {"a": 1}, {}) == 3
    assert await client.request("shop", "add", {"a": 1, "b": 5}, {}) == 6
    assert await client.request("shop", "slow", {"seconds": 0.01}, {}) == "done"


async def test_response_dict_carries_context_and_trace(client: nl.RMQAPI) -> None:
    response = await client.request(
        "shop", "echo_context", {}, {"user": "x"}, trace_id="t-1", rpc_response=False
    )
    assert response["tag"] == "response"
    assert response["result"] == "ok" and response["error"] is None
    assert response["context"] == {"user": "x"} and response["trace_id"] == "t-1"
    assert response["reply_to"] == client.transport.config.response_queue


async def test_remote_exception_raises_its_class(client: nl.RMQAPI) -> None:
    with pytest.raises(nl.NuropbException, match="out of stock") as info:
        await client.request("shop", "fail", {}, {})
    assert isinstance(info.value, nl.NuropbMessageError)
    assert info.value.remote_name == "ValueError"
    with pytest.raises(nl.NuropbValidationError, match="sku is unknown") as info2:
        await client.request("shop", "invalid", {}, {})
    assert isinstance(info2.value, nl.NuropbMessageError)
    response = await client.request("shop", "fail", {}, {}, rpc_response=False)
    assert response["error"] == {"error": "ValueError", "description": "out of stock"}


async def test_unknown_and_private_methods(client: nl.RMQAPI) -> None:
    for method in ("nope", "_private", "__init__"):
        with pytest.raises(nl.NuropbHandlingError, match=f"Unknown method {method}"):
            await client.request("shop", method, {}, {})


async def test_params_that_do_not_fit_are_validation_errors(client: nl.RMQAPI) -> None:
    with pytest.raises(nl.NuropbValidationError, match="missing a required argument: 'a'"):
        await client.request("shop", "add", {"b": 1}, {})
    with pytest.raises(nl.NuropbValidationError, match="unexpected keyword argument 'c'"):
        await client.request("shop", "add", {"a": 1, "c": 1}, {})
    # a TypeError raised inside the method is the method's own error
    with pytest.raises(nl.NuropbException, match="a bug in the method") as info:
        await client.request("shop", "type_error_inside", {}, {})
    assert info.value.remote_name == "TypeError"


async def test_not_delivered_ends_at_once(client: nl.RMQAPI) -> None:
    started = time.monotonic()
    with pytest.raises(nl.NuropbNotDeliveredError, match="'ghost' is not on the mesh") as info:
        await client.request("ghost", "add", {}, {}, ttl=20_000)
    assert time.monotonic() - started < 5
    assert isinstance(info.value, nl.NuropbMessageError)  # as nuropb 0.1.8 clients see it
    assert client.stats["not_delivered"] == 1
    assert client.in_flight == 0


async def test_timeout_by_ttl_and_late_response_is_counted(client: nl.RMQAPI) -> None:
    started = time.monotonic()
    with pytest.raises(nl.NuropbTimeoutError, match="within 200 ms"):
        await client.request("shop", "slow", {"seconds": 0.6}, {}, ttl=200)
    assert 0.19 < time.monotonic() - started < 2
    assert client.in_flight == 0
    await wait_until(lambda: client.stats["late_responses"] == 1, what="the late response")
    response = await client.request(
        "shop", "slow", {"seconds": 0.6}, {}, ttl=100, rpc_response=False
    )
    assert response["error"]["error"] == "NuropbTimeoutError"


async def test_call_again_once_then_answered(client: nl.RMQAPI, shop: Shop) -> None:
    assert await client.request("shop", "flaky", {}, {}) == "ok after 2"


async def test_call_again_twice_is_rejected(client: nl.RMQAPI) -> None:
    with pytest.raises(nl.NuropbCallAgainReject, match="already redelivered"):
        await client.request("shop", "always_again", {}, {}, ttl=10_000)


async def test_success_exception_and_context_events_are_published(
    mesh_url: str, client: nl.RMQAPI
) -> None:
    listener = Listener()
    settings = {"event_bindings": ["shop.*"]}
    async with nl.RMQAPI(
        mesh_url, service_name="listener", service_instance=listener, transport_settings=settings
    ):
        assert await client.request("shop", "shortcut", {"n": 4}, {}) == {"n": 4}
        assert await client.request("shop", "with_events", {"n": 5}, {}) == 5
        await wait_until(lambda: len(listener.events) == 2, what="two events")
    assert sorted(listener.events) == [("shop.ctx", {"n": 5}), ("shop.done", {"n": 4})]


async def test_commands_run_and_unroutable_commands_fail(client: nl.RMQAPI, shop: Shop) -> None:
    await client.command("shop", "record", {"item": "x"}, {})
    client.command("shop", "record", {"item": "y"}, {})  # fire and forget works too
    await wait_until(lambda: shop.commands == ["x", "y"], what="both commands")
    with pytest.raises(nl.NuropbNotDeliveredError):
        await client.command("ghost", "record", {"item": "z"}, {})


async def test_events_reach_sync_and_async_handlers(mesh_url: str, client: nl.RMQAPI) -> None:
    seen: list[str] = []

    class SyncListener:
        def _handle_event_(self, topic: str, event: Any, target: Any, context: Any) -> None:
            seen.append(f"sync {topic} {event['v']} {context['c']} {target}")

    async_listener = Listener()
    async with (
        nl.RMQAPI(
            mesh_url,
            "sync-l",
            service_instance=SyncListener(),
            transport_settings={"event_bindings": ["news.#"]},
        ),
        nl.RMQAPI(
            mesh_url,
            "async-l",
            service_instance=async_listener,
            transport_settings={"event_bindings": ["news.*"]},
        ),
    ):
        await client.publish_event("news.today", {"v": 1}, {"c": 2}, target=["u1"])
        await wait_until(lambda: seen and async_listener.events, what="both handlers")
    assert seen == ["sync news.today 1 2 ['u1']"]
    assert async_listener.events == [("news.today", {"v": 1})]


async def test_encrypted_calls(client: nl.RMQAPI) -> None:
    assert await client.has_public_key("shop")
    assert await client.requires_encryption("shop", "secret") is True
    assert await client.requires_encryption("shop", "add") is False
    assert await client.request("shop", "secret", {"text": "abc"}, {}, encrypted=True) == "cba"
    assert await client.request("shop", "add", {"a": 1}, {}, encrypted=True) == 3
    with pytest.raises(nl.NuropbAuthorizationError, match="requires encryption"):
        await client.request("shop", "secret", {"text": "abc"}, {})
    with pytest.raises(ValueError, match="Method nope not found"):
        await client.requires_encryption("shop", "nope")


async def test_authorization(client: nl.RMQAPI) -> None:
    with pytest.raises(nl.NuropbAuthenticationError, match="needs a token"):
        await client.request("shop", "whoami", {}, {})
    with pytest.raises(nl.NuropbAuthorizationError, match="not accepted"):
        await client.request("shop", "whoami", {}, {"Authorization": "bad-token"})
    assert await client.request("shop", "whoami", {}, {"Authorization": "good-token"}) == {
        "sub": "alice"
    }


async def test_describe_cache_and_refresh(client: nl.RMQAPI) -> None:
    first = await client.describe_service("shop", refresh=True)  # nuropb raises KeyError here
    assert first["service_version"] == "1.0" and "add" in first["methods"]
    assert await client.describe_service("shop") is first
    again = await client.describe_service("shop", refresh=True)
    assert again == first and again is not first
    assert first["public_key"] and first["encrypted_methods"] is True


async def test_disconnect_fails_waiting_calls_at_once(mesh_url: str, shop: Shop) -> None:
    api = nl.RMQAPI(mesh_url)
    await api.connect()
    call = asyncio.ensure_future(api.request("shop", "slow", {"seconds": 5}, {}, ttl=30_000))
    await wait_until(lambda: api.in_flight == 1, what="the call in flight")
    await api.disconnect()
    with pytest.raises(nl.NuropbTransportError, match="disconnected"):
        await asyncio.wait_for(call, 2)
    with pytest.raises(nl.NuropbTransportError, match="not connected"):
        await api.request("shop", "add", {"a": 1}, {}, ttl=1000)


async def test_unpaired_and_duplicate_responses_are_ignored_and_counted(
    mesh_url: str, client: nl.RMQAPI
) -> None:
    queue = client.transport.config.response_queue
    answered = await client.request("shop", "echo_context", {}, {}, rpc_response=False)
    connection = await aio_pika.connect(mesh_url)
    async with connection:
        channel = await connection.channel()
        for correlation_id in (answered["correlation_id"], "never-asked"):
            body = {"tag": "response", "correlation_id": correlation_id, "result": 1, "error": None}
            await channel.default_exchange.publish(
                aio_pika.Message(
                    codec.encode_json(body),
                    correlation_id=correlation_id,
                    headers=codec.headers_for("response", None, False, "0.1.8"),
                ),
                routing_key=queue,
            )
    await wait_until(
        lambda: (
            client.stats["duplicate_responses"] == 1 and client.stats["unpaired_responses"] == 1
        ),
        what="both strays counted",
    )
    assert await client.request("shop", "add", {"a": 1}, {}) == 3


async def test_rejected_messages_are_dead_lettered(mesh_url: str, client: nl.RMQAPI) -> None:
    connection = await aio_pika.connect(mesh_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.declare_queue(client.topology.dl_queue, passive=True)
        before = dlq.declaration_result.message_count
        with pytest.raises(nl.NuropbException):
            await client.request("shop", "fail", {}, {})

        async def reached() -> bool:
            q = await channel.declare_queue(client.topology.dl_queue, passive=True)
            return q.declaration_result.message_count == before + 1

        await wait_until(reached, timeout=5, what="the rejected request in the DLQ")


def test_correlation_ids_do_not_follow_the_random_module() -> None:
    """A notebook's random.seed(0) (or Hypothesis, seeding it before each example) must not
    make the ids repeat: calls in flight would share one."""
    import random

    from nuropb_lab.mesh.calls import new_id

    random.seed(0)
    first = new_id()
    random.seed(0)
    assert new_id() != first
    assert len({new_id() for _ in range(1000)}) == 1000
