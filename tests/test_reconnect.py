"""Connection loss: the API reconnects, re-declares, and every call ends within its ttl."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support import close_connections, visible_connections, wait_until

import nuropb_lab as nl
from nuropb_lab.mesh import ManagementAPI


class Worker:
    def __init__(self) -> None:
        self.started = 0

    def ping(self) -> str:
        return "pong"

    async def slow(self, seconds: float) -> str:
        self.started += 1
        await asyncio.sleep(seconds)
        return "slept"


def vhost_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def test_reconnects_after_the_broker_closes_connections(
    fresh_mesh_url: str, management: ManagementAPI
) -> None:
    states: list[str] = []
    async with nl.RMQAPI(fresh_mesh_url, "worker", service_instance=Worker()) as service:
        async with nl.RMQAPI(fresh_mesh_url) as client:
            client.add_state_listener(states.append)
            assert await client.request("worker", "ping", {}, {}, ttl=5000) == "pong"
            assert await close_connections(management, vhost_of(fresh_mesh_url), expect=2) == 2
            await wait_until(
                lambda: client.transport.reconnects == 1 and service.transport.reconnects == 1,
                timeout=15,
                what="both to reconnect",
            )
            # no user action: calls work again and the service consumes again
            assert await client.request("worker", "ping", {}, {}, ttl=5000) == "pong"
    assert states[:2] == ["reconnecting", "connected"]


async def test_unacked_message_is_redelivered_and_answered(
    fresh_mesh_url: str, management: ManagementAPI
) -> None:
    worker = Worker()
    async with nl.RMQAPI(fresh_mesh_url, "worker", service_instance=worker) as service:
        async with nl.RMQAPI(fresh_mesh_url) as client:
            names = await visible_connections(management, vhost_of(fresh_mesh_url), 1, "-worker-")
            call = asyncio.ensure_future(
                client.request("worker", "slow", {"seconds": 1.0}, {}, ttl=20_000)
            )
            await wait_until(lambda: worker.started == 1, what="the service to take the request")
            # drop only the service's connection while it holds the message unacknowledged
            await management.close_connection(names[0], "test fault")
            assert await asyncio.wait_for(call, 20) == "slept"
            assert worker.started == 2  # handled again after redelivery
            assert service.transport.reconnects == 1


async def test_a_deleted_service_queue_is_consumed_again_in_place(
    fresh_mesh_url: str, management: ManagementAPI
) -> None:
    """The broker cancels the consumer of a deleted queue (so it does when the queue's node
    goes down): the service keeps its connection, answers the call in its hands, declares
    its queue again and takes new calls."""
    worker = Worker()
    queue = "nuropb-worker-sq"
    async with nl.RMQAPI(fresh_mesh_url, "worker", service_instance=worker) as service:
        async with nl.RMQAPI(fresh_mesh_url) as client:
            call = asyncio.ensure_future(
                client.request("worker", "slow", {"seconds": 1.0}, {}, ttl=20_000)
            )
            await wait_until(lambda: worker.started == 1, what="the service to take the request")
            path = f"queues/{vhost_of(fresh_mesh_url)}/{queue}"
            await management.call("DELETE", path)
            assert await asyncio.wait_for(call, 20) == "slept"
            assert worker.started == 1  # answered where it was, not redelivered

            async def consumed_again() -> bool:
                return await client.queue_info(queue) == (0, 1)

            await wait_until(consumed_again, timeout=10, what="the queue declared and consumed")
            assert await client.request("worker", "ping", {}, {}, ttl=5000) == "pong"
            assert service.transport.reconnects == 0 and service.connected


async def test_calls_made_while_reconnecting_wait_within_their_ttl(
    fresh_mesh_url: str, management: ManagementAPI
) -> None:
    async with nl.RMQAPI(fresh_mesh_url, "worker", service_instance=Worker()):
        async with nl.RMQAPI(fresh_mesh_url) as client:
            await close_connections(management, vhost_of(fresh_mesh_url), expect=2)
            await wait_until(lambda: not client.connected, what="the client to notice")
            assert await client.request("worker", "ping", {}, {}, ttl=15_000) == "pong"


async def test_in_flight_requests_all_end_within_ttl(
    fresh_mesh_url: str, management: ManagementAPI
) -> None:
    async with nl.RMQAPI(
        fresh_mesh_url,
        "worker",
        service_instance=Worker(),
        transport_settings={"prefetch_count": 50},
    ):
        async with nl.RMQAPI(fresh_mesh_url) as client:
            ttl = 4000
            calls = [
                asyncio.ensure_future(
                    client.request("worker", "slow", {"seconds": 0.3}, {}, ttl=ttl)
                )
                for _ in range(200)
            ]
            await wait_until(lambda: client.in_flight > 0, what="calls in flight")
            await close_connections(management, vhost_of(fresh_mesh_url), expect=2)
            loop = asyncio.get_running_loop()
            started = loop.time()
            results: list[Any] = await asyncio.wait_for(
                asyncio.gather(*calls, return_exceptions=True), ttl / 1000 + 5
            )
            assert loop.time() - started < ttl / 1000 + 1
            assert all(r == "slept" or isinstance(r, nl.NuropbException) for r in results), results
            assert client.in_flight == 0
            assert await client.request("worker", "ping", {}, {}, ttl=10_000) == "pong"


async def test_same_instance_id_twice_is_a_clear_error(mesh_url: str) -> None:
    async with nl.RMQAPI(mesh_url, "solo", instance_id="only-one", service_instance=Worker()):
        second = nl.RMQAPI(mesh_url, "solo", instance_id="only-one", service_instance=Worker())
        with pytest.raises(nl.NuropbTransportError, match="exclusive use"):
            await asyncio.wait_for(second.connect(), 10)
        assert not second.connected


async def test_first_connect_errors_name_the_cause(management: ManagementAPI) -> None:
    with pytest.raises(nl.MeshNotFound, match="'no-such-mesh' does not exist"):
        await nl.RMQAPI("amqp://guest:guest@127.0.0.1:5672/no-such-mesh").connect()
    with pytest.raises(nl.NuropbTransportError, match="refused the credentials") as info:
        await nl.RMQAPI("amqp://guest:wrong-pass@127.0.0.1:5672/x").connect()
    assert "wrong-pass" not in str(info.value)
    with pytest.raises(nl.NuropbTransportError, match="cannot connect"):
        await nl.RMQAPI(
            "amqp://guest:guest@127.0.0.1:1/x", transport_settings={"connect_timeout": 2}
        ).connect()
