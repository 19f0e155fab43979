"""The lab on the 3-node cluster (the ``cluster`` fixture), nothing killed: connecting to
several nodes, the management API failing over, where each service's queue lives (services(),
the browser, status), and quorum queues beside nuropb 0.1.8 peers on RabbitMQ 3.10."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiormq
import pytest
from cluster_harness import mesh_on, nuropb_client, place_queues, queue_row, start_nuropb
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from nodes import Cluster, free_port
from support import wait_for, wait_until

import nuropb_lab as nl
from nuropb_lab.lab import Lab
from nuropb_lab.magics import NuropbMagics
from nuropb_lab.mesh import ManagementAPI, ManagementUnavailable, Topology
from nuropb_lab.widgets import ServiceBrowser

QUORUM_ARGS = {"x-queue-type": "quorum", "x-dead-letter-exchange": "nuropb-dl-exchange"}


class Echo:
    def echo(self, text: str) -> str:
        return text


def dead_url(vhost: str) -> str:
    """A node that does not answer (nothing listens on the port)."""
    return f"amqp://guest:guest@127.0.0.1:{free_port()}/{vhost}"


async def declare_quorum(cluster: Cluster, vhost: str, node: str, service: str) -> None:
    """An operator's quorum queue for ``service`` (its leader on ``node``)."""
    connection = await aiormq.connect(cluster.url(node, vhost))
    try:
        channel = await connection.channel()
        await channel.queue_declare(
            Topology.service_queue(service), durable=True, arguments=QUORUM_ARGS
        )
    finally:
        await connection.close()


async def test_connect_takes_the_first_node_that_answers(cluster: Cluster) -> None:
    quick = {"connect_timeout": 3}
    async with mesh_on(cluster, "connect") as vhost:
        dead = dead_url(vhost)
        async with nl.RMQAPI([dead, *cluster.urls(vhost, "bc")], transport_settings=quick) as api:
            assert api.target.port == cluster.ports["b"]
            assert api.nodes.position(api.target) == "node 2 of 3"
        seen = set()
        for _ in range(12):  # shuffled: not always the first node (1 in 177,147 it would be)
            shuffled = {"failover_strategy": "shuffle"}
            async with nl.RMQAPI(cluster.urls(vhost), transport_settings=shuffled) as api:
                seen.add(api.target.port)
        assert len(seen) >= 2
        # no node answers: one error naming each, no password
        other = dead_url(vhost)
        with pytest.raises(nl.NuropbTransportError) as info:
            await nl.RMQAPI([dead, other], transport_settings=quick).connect()
        text = str(info.value)
        assert "no node of the 2 answered" in text and "guest:guest" not in text
        assert (
            dead.split("@")[1].split("/")[0] in text and other.split("@")[1].split("/")[0] in text
        )
        # refused credentials hold on every node of a cluster: raised at once
        wrong = [url.replace("guest:guest", "guest:wrong-pw") for url in cluster.urls(vhost)]
        with pytest.raises(nl.NuropbTransportError, match="refused the credentials") as info:
            await nl.RMQAPI(wrong).connect()
        assert "wrong-pw" not in str(info.value) and str(cluster.ports["a"]) in str(info.value)


async def test_management_api_fails_over(cluster: Cluster) -> None:
    async with mesh_on(cluster, "management") as vhost:
        dead = f"http://127.0.0.1:{free_port()}"
        api = ManagementAPI([dead, cluster.management_url("b")], "guest", "guest", timeout=2)
        assert await api.vhost_exists(vhost)
        assert api.base_url == cluster.management_url("b")  # asked first from now on
        nowhere = ManagementAPI([dead, f"http://127.0.0.1:{free_port()}"], "guest", "guest")
        with pytest.raises(ManagementUnavailable, match="no management API of the 2 nodes"):
            await nowhere.get("overview")


@pytest.fixture
def placed(cluster: Cluster) -> Iterator[str]:
    """A mesh with three service queues, all declared from node c: ``mirrored`` (a policy
    mirrors it to every node), ``quorum`` (an operator's quorum queue) and ``plain``."""
    vhost = f"cluster-placed-{uuid.uuid4().hex[:6]}"
    cluster.put_vhost(vhost, {})
    cluster.api(
        "PUT", f"permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"}
    )
    if cluster.version < (4,):  # RabbitMQ 4 has no mirroring: that queue stays classic
        mirroring = {"ha-mode": "all", "ha-sync-mode": "automatic"}
        policy = {"pattern": "^nuropb-mirrored-sq$", "definition": mirroring, "apply-to": "queues"}
        cluster.api("PUT", f"policies/{vhost}/ha", policy)

    async def setup() -> None:
        await nl.configure_mesh(cluster.urls(vhost))
        await place_queues(cluster, vhost, "c", ["mirrored", "plain"])
        await declare_quorum(cluster, vhost, "c", "quorum")

    asyncio.run(setup())
    try:
        yield vhost
    finally:
        cluster.api("DELETE", f"vhosts/{vhost}")


def test_lab_magic_and_browser_on_a_cluster(
    cluster: Cluster, placed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vhost = placed
    names = {letter: cluster.node_name(letter) for letter in "abc"}
    dead = dead_url(vhost)
    monkeypatch.setenv("NUROPB_AMQP_URL", ",".join([dead, *cluster.urls(vhost, "bc")]))
    lab = Lab(timeout=10)
    try:
        magics = NuropbMagics(shell=InteractiveShell.instance(), lab=lab)
        with capture_output() as captured:
            magics.nuropb("connect")  # $NUROPB_AMQP_URL, comma-separated
        assert captured.stdout.strip() == (
            f"connected to amqp://guest:***@127.0.0.1:{cluster.ports['b']}/{vhost}"
            f" (node 2 of 3) as '{vhost}'"
        )
        for name in ("mirrored", "quorum", "plain"):
            lab.serve(Echo(), name=name)
        status = lab.status().iloc[0]
        assert status["node"] == f"127.0.0.1:{cluster.ports['b']} (node 2 of 3)"
        assert "guest:guest" not in status.to_string() + repr(lab) + repr(lab.connection())
        # every service's queue: where it lives, its replicas, whether they are in sync
        others = f"{names['a']}, {names['b']}"
        mirrored = ["mirrored", names["c"], others, others]
        if cluster.version >= (4,):
            mirrored = ["classic", names["c"], "", ""]

        def placed_as_expected() -> bool:
            frame = lab.services().set_index("service")
            rows = {s: frame.loc[s, ["queue_type", "node", "replicas", "in_sync"]].tolist()
                    for s in ("mirrored", "quorum", "plain")}  # fmt: skip
            for row in rows.values():  # replica order is the broker's
                row[2:] = [", ".join(sorted(r.split(", "))) if r else r for r in row[2:]]
            return rows == {
                "mirrored": mirrored,
                "quorum": ["quorum", names["c"], others, others],
                "plain": ["classic", names["c"], "", ""],
            }

        wait_for(placed_as_expected, timeout=20, what="the queues' placement in services()")
        frame = lab.services()
        assert frame["instances"].tolist() == [1, 1, 1] and frame["error"].isna().all()
        browser = ServiceBrowser(lab, refresh_interval=60)
        replicated = "mirrored" if cluster.version < (4,) else "quorum"  # 4.x has no mirroring
        try:
            wait_for(lambda: browser.refreshes > 0, what="the browser's first discovery")
            browser.select(replicated)
            assert f"{replicated} on {names['c']}" in browser.detail.value
            assert names["a"] in browser.detail.value
        finally:
            browser.close()
        # several URLs on the command line, shuffled by setting
        magics.failover_strategy = "shuffle"
        with capture_output() as captured:
            magics.nuropb(f"connect {dead_url(vhost)} {cluster.url('c', vhost)} --alias two")
        assert "(node 2 of 2) as 'two'" in captured.stdout
        assert lab.connection("two").api.nodes.strategy == "shuffle"
    finally:
        lab.close()


async def test_quorum_queues_beside_nuropb_0_1_8(cluster: Cluster, nuropb_python: Path) -> None:
    """RabbitMQ 3.10 and 4.3: nuropb 0.1.8 re-declares its service queue as a classic queue
    (durable, x-dead-letter-exchange, no x-queue-type). On an operator's quorum queue that
    declare is refused (406 PRECONDITION_FAILED, inequivalent arg 'x-queue-type') and nuropb
    does not start; the lab serves on it as it is. On a vhost whose default queue type is quorum the
    same declare makes (and then matches) a quorum queue: nuropb serves, calls and
    dead-lettering work, and its response queue stays classic."""
    async with mesh_on(cluster, "operator-quorum") as vhost:
        await declare_quorum(cluster, vhost, "a", "shared")
        urls = cluster.urls(vhost)
        async with nl.RMQAPI(urls, "shared", service_instance=Echo()), nl.RMQAPI(urls) as client:
            assert await client.request("shared", "echo", {"text": "q"}, {}, ttl=10_000) == "q"
            # a nuropb client declares only its response queue: it calls the service there
            step = {"id": "echo", "op": "request", "method": "echo", "params": {"text": "n"}}
            results = await nuropb_client(nuropb_python, cluster.url("c", vhost), "shared", [step])
            assert results == {"echo": {"result": "n"}}
        peer, said = await start_nuropb(
            nuropb_python, cluster.url("b", vhost), "shared", 10, expect_ready=False
        )
        await peer.stop()
        assert said.startswith("NOT CONNECTED")
        assert "inequivalent arg 'x-queue-type'" in said
        # 3.10: "received none but current is the value 'quorum'"; 4.3: "received 'classic'
        # but current is 'quorum'"
        assert re.search(r"current is (the value )?'quorum'", said), said
    async with mesh_on(cluster, "default-quorum", ha="quorum") as vhost:
        peer, _ = await start_nuropb(nuropb_python, cluster.url("b", vhost), "ref", 10)
        try:
            urls = cluster.urls(vhost)
            async with nl.RMQAPI(urls, "lab", service_instance=Echo()), nl.RMQAPI(urls) as client:
                for service in ("ref", "lab"):
                    row = queue_row(cluster, vhost, Topology.service_queue(service))
                    assert row["type"] == "quorum" and len(row["members"]) == 3
                assert await client.request("ref", "ping", {}, {}, ttl=10_000) == "pong"
                assert await client.request("lab", "echo", {"text": "x"}, {}, ttl=10_000) == "x"
                with pytest.raises(nl.NuropbException, match="Unknown method"):
                    await client.request("ref", "nothing", {}, {}, ttl=10_000)
                dl_queue = client.topology.dl_queue

                async def dead_lettered() -> bool:
                    return await client.queue_info(dl_queue) == (1, 0)

                await wait_until(dead_lettered, what="the rejected call dead-lettered")
                rq = queue_row(cluster, vhost, client.transport.config.response_queue)
                assert rq["type"] == "classic"
        finally:
            await peer.stop()
