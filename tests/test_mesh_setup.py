"""The lab's own mesh set-up: configure_mesh, and what a connecting API declares.

A lab API declares what nuropb's transport declares (its own queues) and checks the shared
objects passively, creating only those missing, with nuropb's flags; configure_mesh makes a
mesh from nothing and leaves an existing one as it is, so that the lab's meshes and nuropb's
are interchangeable both ways.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from support import Broker, mesh_objects, mesh_url_for, nuropb_made_mesh

import nuropb_lab as nl
from nuropb_lab.mesh import ManagementAPI

TTL = 10_000


def vhost_of(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def flags(objects: dict[str, Any], queue: str) -> tuple[bool, bool, str | None]:
    """What matters of a queue, on every RabbitMQ version: durable, auto-delete and its
    dead-letter exchange (4.x also lists ``x-queue-type: classic``, which nobody declared)."""
    durable, auto_delete, arguments = objects["queues"][queue]
    return durable, auto_delete, (arguments or {}).get("x-dead-letter-exchange")


@pytest.fixture
def new_vhost(management: ManagementAPI) -> Iterator[str]:
    """A vhost name that does not exist yet (deleted afterwards if a test made it)."""
    vhost = f"test-setup-{uuid.uuid4().hex[:8]}"
    yield vhost
    management.call_blocking("DELETE", f"vhosts/{vhost}")


@pytest.fixture(params=["configure_mesh", "configure_nuropb_rmq"])
def nuropb_mesh(
    request: pytest.FixtureRequest, nuropb_python: Path, management: ManagementAPI
) -> Iterator[str]:
    dl_queue = "nuropb-orders-dl" if request.param == "configure_nuropb_rmq" else ""
    yield from nuropb_made_mesh(nuropb_python, management, "setup", request.param, dl_queue)


class Echo:
    def echo(self, text: str) -> str:
        return text


async def test_configure_mesh_from_nothing_makes_what_nuropb_makes(
    new_vhost: str, nuropb_python: Path, management: ManagementAPI
) -> None:
    url = mesh_url_for(new_vhost)
    assert not await management.vhost_exists(new_vhost)
    await nl.configure_mesh(url)
    ours = await mesh_objects(management, new_vhost)
    for theirs_url in nuropb_made_mesh(nuropb_python, management, "setup", "configure_mesh"):
        theirs = await mesh_objects(management, vhost_of(theirs_url))
    # names, kinds, flags and bindings alike; the DLQ not durable, as pika's default
    assert ours == theirs
    assert set(ours["queues"]) == {"nuropb-dl-queue"}
    assert flags(ours, "nuropb-dl-queue") == (False, False, None)
    assert ours["exchanges"]["nuropb-rpc-exchange"][:2] == ("direct", True)
    assert ours["exchanges"]["nuropb-events-exchange"][:2] == ("topic", True)
    assert ours["exchanges"]["nuropb-dl-exchange"][:2] == ("fanout", True)


async def test_each_setup_accepts_the_others_mesh(
    nuropb_mesh: str, nuropb_python: Path, management: ManagementAPI, new_vhost: str
) -> None:
    # the lab's configure_mesh on a mesh nuropb made: no PRECONDITION_FAILED, nothing changed
    vhost = vhost_of(nuropb_mesh)
    before = await mesh_objects(management, vhost)
    await nl.configure_mesh(nuropb_mesh)
    await nl.configure_mesh(nuropb_mesh)
    assert await mesh_objects(management, vhost) == before
    # and nuropb's configure_mesh on a mesh the lab made
    url = mesh_url_for(new_vhost)
    await nl.configure_mesh(url)
    ours = await mesh_objects(management, new_vhost)
    process = await asyncio.create_subprocess_exec(
        str(nuropb_python),
        str(Path(__file__).parent / "peers" / "nuropb_setup.py"),
        url,
        "configure_mesh",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert out.strip() == b"DONE", err.decode()[-2000:]
    assert await mesh_objects(management, new_vhost) == ours


async def test_apis_on_a_mesh_nuropb_made_declare_only_their_own(
    nuropb_mesh: str, management: ManagementAPI
) -> None:
    vhost = vhost_of(nuropb_mesh)
    before = await mesh_objects(management, vhost)
    async with (
        nl.RMQAPI(nuropb_mesh, service_name="orders", service_instance=Echo()),
        nl.RMQAPI(nuropb_mesh) as client,
    ):
        assert await client.request("orders", "echo", {"text": "hi"}, {}, ttl=TTL) == "hi"
    after = await mesh_objects(management, vhost)
    assert after["exchanges"] == before["exchanges"]
    # the service's queue, as nuropb declares it, and its binding: nothing else
    assert set(after["queues"]) - set(before["queues"]) == {"nuropb-orders-sq"}
    assert flags(after, "nuropb-orders-sq") == (True, False, "nuropb-dl-exchange")
    assert after["queues"]["nuropb-orders-sq"][2].get("x-queue-type", "classic") == "classic"
    assert set(after["bindings"]) - set(before["bindings"]) == {
        ("nuropb-rpc-exchange", "nuropb-orders-sq", "orders")
    }


async def test_missing_shared_objects_are_created_with_nuropbs_flags(
    new_vhost: str, management: ManagementAPI, broker: Broker
) -> None:
    await management.create_vhost(new_vhost)  # a vhost with nothing in it
    url = mesh_url_for(new_vhost)
    async with nl.RMQAPI(url):
        objects = await mesh_objects(management, new_vhost)
    # a client needs the RPC and events exchanges only
    assert set(objects["exchanges"]) == {"nuropb-rpc-exchange", "nuropb-events-exchange"}
    assert objects["queues"] == {}
    async with nl.RMQAPI(url, service_name="orders", service_instance=Echo()):
        objects = await mesh_objects(management, new_vhost)
    # a service also needs somewhere to dead-letter: a new DLX gets nuropb's default DLQ,
    # durable where the broker denies transient queues
    assert objects["exchanges"]["nuropb-dl-exchange"][:2] == ("fanout", True)
    durable = not broker.permits_transient_queues
    assert flags(objects, "nuropb-dl-queue") == (durable, False, None)
    assert ("nuropb-dl-exchange", "nuropb-dl-queue", "nuropb-dl-queue") in objects["bindings"]


async def test_without_the_management_api_a_declare_asks_the_broker(
    new_vhost: str, management: ManagementAPI, broker: Broker
) -> None:
    """A user the management API refuses (no tags): a service on an empty vhost makes the
    DLQ all the same, durable only where nuropb's declare was denied."""
    await management.create_vhost(new_vhost)
    user, password = f"notags-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    await management.call("PUT", f"users/{user}", {"password": password, "tags": ""})
    try:
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        await management.call("PUT", f"permissions/{new_vhost}/{user}", everything)
        url = f"amqp://{user}:{password}@{mesh_url_for(new_vhost).split('@', 1)[1]}"
        async with (
            nl.RMQAPI(url, service_name="orders", service_instance=Echo()),
            nl.RMQAPI(url) as client,
        ):
            assert await client.request("orders", "echo", {"text": "x"}, {}, ttl=TTL) == "x"
        objects = await mesh_objects(management, new_vhost)
        durable = not broker.permits_transient_queues
        assert flags(objects, "nuropb-dl-queue") == (durable, False, None)
    finally:
        await management.call("DELETE", f"users/{user}")


async def test_a_user_who_may_not_create_a_missing_exchange_is_told_why(
    new_vhost: str, management: ManagementAPI
) -> None:
    await management.create_vhost(new_vhost)
    user, password = f"nocfg-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    await management.call("PUT", f"users/{user}", {"password": password, "tags": ""})
    try:
        await management.call(
            "PUT",
            f"permissions/{new_vhost}/{user}",
            {"configure": "^nuropb-.*-rq$", "write": ".*", "read": ".*"},
        )
        url = f"amqp://{user}:{password}@{mesh_url_for(new_vhost).split('@', 1)[1]}"
        with pytest.raises(nl.NuropbTransportError) as refused:
            await nl.RMQAPI(url).connect()
        message = str(refused.value)
        assert "has no exchange 'nuropb-rpc-exchange'" in message
        assert "may not create it" in message and "configure_mesh" in message
        assert password not in message
    finally:
        await management.call("DELETE", f"users/{user}")


async def test_a_service_queue_declared_otherwise_is_used_as_it_is(
    nuropb_mesh: str, management: ManagementAPI
) -> None:
    # an operator made the service's queue a quorum queue (replicated) before it started
    connection = await aio_pika.connect(nuropb_mesh)
    arguments: dict[str, Any] = {"x-queue-type": "quorum"}
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue("nuropb-orders-sq", durable=True, arguments=arguments)
    async with (
        nl.RMQAPI(nuropb_mesh, service_name="orders", service_instance=Echo()),
        nl.RMQAPI(nuropb_mesh) as client,
    ):
        assert await client.request("orders", "echo", {"text": "q"}, {}, ttl=TTL) == "q"
    objects = await mesh_objects(management, vhost_of(nuropb_mesh))
    assert flags(objects, "nuropb-orders-sq") == (True, False, None)  # no DLX, as declared
    assert objects["queues"]["nuropb-orders-sq"][2]["x-queue-type"] == "quorum"


async def test_the_dlq_is_declared_as_the_broker_permits(
    new_vhost: str, management: ManagementAPI, broker: Broker
) -> None:
    """nuropb's flags (not durable) where the broker permits transient non-exclusive queues;
    durable where it denies them (RabbitMQ 4.3.0's default; `deprecated_features.permit.
    transient_nonexcl_queues = false`): asked of the broker, whatever its version. What the
    broker permits is read here from its management API, which the lab does not use for it."""
    url = mesh_url_for(new_vhost)
    await nl.configure_mesh(url)
    await nl.configure_mesh(url)  # an existing DLQ is left as it is: no 406 either way
    objects = await mesh_objects(management, new_vhost)
    assert set(objects["queues"]) == {"nuropb-dl-queue"}
    assert flags(objects, "nuropb-dl-queue") == (not broker.permits_transient_queues, False, None)
    assert ("nuropb-dl-exchange", "nuropb-dl-queue", "nuropb-dl-queue") in objects["bindings"]
    # and the mesh works: a service and a client on it
    async with (
        nl.RMQAPI(url, service_name="orders", service_instance=Echo()),
        nl.RMQAPI(url) as client,
    ):
        assert await client.request("orders", "echo", {"text": "ok"}, {}, ttl=TTL) == "ok"
