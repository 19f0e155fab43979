"""Failover under load on a 3-node RabbitMQ cluster of the tests' own (the ``cluster`` fixture).

Every scenario runs on a mesh of its own: a lab client on node a (given all three nodes, a
first), a lab service ``worker`` (prefetch 100) and a nuropb 0.1.8 service ``ref`` (prefetch
100, one URL: nuropb takes one) on node b, and their queues on node c. Both services hold
every call at a gate, so that when a node is SIGKILLed exactly 1,000 calls to each wait for
an answer: 100 held unacknowledged by the service and 900 queued. A third service, ``probe``
(ungated, beside the worker), measures the time from the kill until a new call is answered.
After each scenario the killed node is started again and rejoins, so the next one starts
from three healthy nodes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cluster_harness import (
    HA,
    NuropbPeer,
    answered,
    flowing_again,
    mesh_on,
    place_queues,
    queue_row,
    start_load,
    start_nuropb,
)
from nodes import Cluster
from support import GatedWorker, Outcome, tally, wait_until

import nuropb_lab as nl
from nuropb_lab.lab.discovery import discover
from nuropb_lab.mesh import ManagementAPI, Topology

REQUESTS = 1000  # to each of the two services
PREFETCH = 100
WORKER, REF, PROBE = "worker", "ref", "probe"
CLIENT_NODE, SERVICE_NODE, QUEUE_NODE = "a", "b", "c"
# nuropb reconnects once, to its one URL; pika retries that connection for a minute
NUROPB_RETRY = "?connection_attempts=60&retry_delay=1"
# what nuropb 0.1.8 logs when an abrupt connection loss leaves it disconnected for good
NUROPB_STUCK = "'StreamLostError' object has no attribute 'reply_code'"


def starting_at(letter: str) -> str:
    """The node letters in order, starting at ``letter`` ("b" -> "bca")."""
    at = "abc".index(letter)
    return "abc"[at:] + "abc"[:at]


@dataclasses.dataclass
class Run:
    cluster: Cluster
    vhost: str
    client: nl.RMQAPI
    worker_api: nl.RMQAPI
    probe_api: nl.RMQAPI
    worker: GatedWorker
    ref: NuropbPeer
    ttl_ms: int
    tasks: list[asyncio.Task[list[Outcome]]] = dataclasses.field(default_factory=list)
    killed_at: float = 0.0

    def port(self, letter: str) -> int:
        return self.cluster.ports[letter]

    async def all_in_flight(self) -> None:
        """Every call waits for its answer; each service holds a full prefetch, the rest queued."""
        await wait_until(
            lambda: self.client.in_flight == 2 * REQUESTS, timeout=30, what="2,000 calls in flight"
        )
        held = self.worker.held
        await wait_until(lambda: len(held()) == PREFETCH, timeout=20, what="worker held")
        ready = (REQUESTS - PREFETCH, 1)

        async def queued() -> bool:
            info = [await self.client.queue_info(Topology.service_queue(s)) for s in (WORKER, REF)]
            return info == [ready, ready]

        await wait_until(queued, timeout=30, what=f"{ready[0]} calls queued for each service")

    def kill(self, letter: str) -> None:
        self.killed_at = asyncio.get_running_loop().time()
        self.cluster.kill(letter)

    async def outcomes(self) -> dict[str, collections.Counter[str]]:
        batches = await asyncio.wait_for(asyncio.gather(*self.tasks), self.ttl_ms / 1000 + 15)
        by_service: dict[str, list[Outcome]] = collections.defaultdict(list)
        for outcome in (o for batch in batches for o in batch):
            by_service[outcome.service].append(outcome)
        return {service: tally(by_service[service], REQUESTS) for service in (WORKER, REF)}

    async def consumers(self, service: str) -> int | None:
        info = await self.client.queue_info(Topology.service_queue(service))
        return None if info is None else info[1]

    async def restart(self, letter: str) -> float:
        """Start a killed node again; seconds until it is back in the cluster."""
        return await asyncio.to_thread(self.cluster.restart, letter)


@contextlib.asynccontextmanager
async def scenario(
    cluster: Cluster, python: Path, label: str, ttl_ms: int, ha: HA = None
) -> AsyncIterator[Run]:
    async with mesh_on(cluster, label, ha) as vhost:
        await place_queues(cluster, vhost, QUEUE_NODE, [WORKER, REF, PROBE])
        worker = GatedWorker()
        settings = {"prefetch_count": PREFETCH}
        service_urls = cluster.urls(vhost, starting_at(SERVICE_NODE))
        async with (
            nl.RMQAPI(
                service_urls, WORKER, service_instance=worker, transport_settings=settings
            ) as worker_api,
            nl.RMQAPI(service_urls, PROBE, service_instance=GatedWorker()) as probe_api,
            nl.RMQAPI(cluster.urls(vhost, starting_at(CLIENT_NODE))) as client,
        ):
            ref_url = cluster.url(SERVICE_NODE, vhost) + NUROPB_RETRY
            ref, _ = await start_nuropb(python, ref_url, REF, PREFETCH)
            run = Run(cluster, vhost, client, worker_api, probe_api, worker, ref, ttl_ms)
            try:
                assert client.target.port == run.port(CLIENT_NODE)
                assert worker_api.target.port == run.port(SERVICE_NODE)
                # called before the fault, as a client calls a service it uses (see README:
                # on 3.10 a channel's first publish to a quorum queue just after its leader
                # died is lost)
                assert await answered(client, PROBE)
                run.tasks = start_load(client, [WORKER, REF], REQUESTS, ttl_ms)
                await run.all_in_flight()
                yield run
            finally:
                worker.gate.set()
                for task in run.tasks:
                    task.cancel()
                await ref.stop()
                for letter, node in cluster.nodes.items():  # the next starts from three
                    if not node.running:
                        await run.restart(letter)


def report(name: str, run: Run, flow_s: float, counts: dict[str, collections.Counter[str]]) -> None:
    apis = {"client": run.client, "worker": run.worker_api, "probe": run.probe_api}
    print(
        f"\n{name}: kill -> a new call answered {flow_s:.2f} s;"
        f" worker {dict(counts[WORKER])}, ref {dict(counts[REF])};"
        f" reconnects { {k: a.transport.reconnects for k, a in apis.items()} };"
        f" worker runs >1: {sum(1 for c in run.worker.runs.values() if c > 1)};"
        f" ref runs >1: {sum(1 for c in run.ref.runs.values() if c > 1)};"
        f" duplicate answers to the client {run.client.stats['duplicate_responses']}"
    )


async def test_kill_the_node_the_client_is_on(cluster: Cluster, nuropb_python: Path) -> None:
    """The client fails over to the next node (b) with its 2,000 calls still waiting; its
    events connection follows and its tail records the gap. A client given node a alone
    cannot: a call it makes meanwhile fails with NuropbTransportError at its ttl.

    A cluster on Khepri (RabbitMQ 4.3) keeps the exclusive queues of the lost connections,
    locked, while their node is down: the client takes another response queue (and its tail
    another queue), and the answers to the 2,000 calls, addressed to the old one, are lost:
    they end at their ttl."""
    async with scenario(cluster, nuropb_python, "client-node", ttl_ms=20_000) as run:
        client = run.client
        response_queue = client.transport.response_queue
        events: list[nl.MeshEvent] = []
        subscription = await client.subscribe(["cluster.#"], events.append)
        assert client.transport.events is not None
        async with nl.RMQAPI(cluster.url("a", run.vhost)) as lonely:
            run.kill(CLIENT_NODE)
            await wait_until(lambda: not client.connected, what="the client to notice")
            during = asyncio.ensure_future(client.request(PROBE, "ping", {}, {}, ttl=30_000))
            flow_s = await flowing_again(client, PROBE, run.killed_at, limit=30)
            assert await asyncio.wait_for(during, 30) == "pong"  # made while reconnecting
            with pytest.raises(nl.NuropbTransportError, match="not connected"):
                await lonely.request(PROBE, "ping", {}, {}, ttl=1500)
            assert client.transport.reconnects == 1 and client.target.port == run.port("b")
            assert client.transport.events is not None
            assert client.transport.events.target.port == run.port("b")  # events followed
            assert len(subscription.gaps) == 1 and subscription.gaps[0][1] is not None
            await client.publish_event("cluster.after", {"ok": 1}, {})
            await wait_until(lambda: events, what="an event after the failover")
            # the services never noticed
            assert run.worker_api.transport.reconnects == run.probe_api.transport.reconnects == 0
            run.worker.gate.set()
            run.ref.open_gate()
            counts = await run.outcomes()
            if not cluster.khepri:
                assert client.transport.response_queue == response_queue
                assert counts[WORKER] == counts[REF] == {"answered": REQUESTS}
            else:
                assert client.transport.response_queue != response_queue
                assert counts[WORKER] == counts[REF] == {"NuropbTimeoutError": REQUESTS}
            assert client.in_flight == 0
            assert await answered(client, WORKER) and await answered(client, REF)
            # held by the services all along (their connections lived): each ran once
            assert set(run.worker.runs.values()) == {1}
            await run.restart(CLIENT_NODE)
            # the lonely client comes back with its node, by itself
            await wait_until(lambda: lonely.connected, timeout=30, what="the lonely client back")
            assert await answered(lonely, PROBE)
    report("kill the client's node", run, flow_s, counts)


async def test_kill_the_node_the_services_are_on(cluster: Cluster, nuropb_python: Path) -> None:
    """The lab service fails over to node c; the 100 calls it held go back to their queue and
    are run again: all 1,000 answered. nuropb 0.1.8 does not come back, even once its node
    is: the lost connection's StreamLostError makes its channel-closed handler raise
    AttributeError inside pika, which then never reports the connection closed, so nuropb
    never reconnects. Its 1,000 calls end at their ttl; a new nuropb process serves again."""
    async with scenario(cluster, nuropb_python, "service-node", ttl_ms=15_000) as run:
        client = run.client
        run.kill(SERVICE_NODE)
        flow_s = await flowing_again(client, PROBE, run.killed_at, limit=30)
        await wait_until(
            lambda: run.worker_api.connected and run.worker_api.transport.reconnects == 1,
            timeout=15,
            what="the worker to reconnect",
        )
        assert run.worker_api.target.port == run.port("c")  # the node after b
        assert run.probe_api.target.port == run.port("c")
        assert await run.consumers(WORKER) == 1 and await run.consumers(REF) == 0
        # discovery asks b's management API first (the services' nodes start at b): it fails
        # over to c's, and shows nuropb's service without an instance
        management = ManagementAPI.for_target(run.worker_api.nodes)
        assert management.base_url.endswith(str(run.port(SERVICE_NODE) + 10000))
        infos, notice = await discover(client, management, set(), describe_ttl_ms=1000)
        assert notice is None and management.base_url.endswith(str(run.port("c") + 10000))
        by_name = {info.service: info for info in infos}
        assert by_name[REF].error == "no instances running" and by_name[WORKER].instances == 1
        run.worker.gate.set()
        await wait_until(
            lambda: any(NUROPB_STUCK in line for line in run.ref.log),
            what="nuropb's channel-closed handler to fail",
        )
        restart_s = await run.restart(SERVICE_NODE)
        counts = await run.outcomes()
        assert counts[WORKER] == {"answered": REQUESTS}
        assert counts[REF] == {"NuropbTimeoutError": REQUESTS}
        assert client.transport.reconnects == 0 and client.in_flight == 0
        # the 100 held when b died were redelivered and run again
        assert sum(1 for count in run.worker.runs.values() if count == 2) == PREFETCH
        assert await answered(client, WORKER)
        # b has been back for seconds (nuropb would retry it every 1 s): nuropb never did
        assert await run.consumers(REF) == 0
        # what brings it back is a new process (as a supervisor would start)
        await run.ref.stop()
        url = cluster.url(SERVICE_NODE, run.vhost)
        fresh, _ = await start_nuropb(nuropb_python, url, REF, PREFETCH)
        try:
            assert await answered(client, REF)
        finally:
            await fresh.stop()
    print(f"\nnode b back in the cluster {restart_s:.1f} s after its restart began")
    report("kill the services' node", run, flow_s, counts)


@pytest.mark.parametrize("ha", ["mirrored", "quorum"])
async def test_kill_the_node_of_a_replicated_queue(
    cluster: Cluster, nuropb_python: Path, ha: HA
) -> None:
    """Every service queue is replicated (a mirroring policy, or quorum queues): when node c,
    which holds the queues' master or leader, dies, a replica on a or b takes over with every
    message, both services keep consuming (no reconnection) and every call is answered."""
    async with scenario(cluster, nuropb_python, f"{ha}-queues", ttl_ms=30_000, ha=ha) as run:
        queue = Topology.service_queue(WORKER)
        row = queue_row(cluster, run.vhost, queue)
        c_node = cluster.node_name(QUEUE_NODE)
        if ha == "mirrored":
            assert row["node"] == c_node and len(row["synchronised_slave_nodes"]) == 2
        else:
            assert row["type"] == "quorum" and row["leader"] == c_node
        run.kill(QUEUE_NODE)
        flow_s = await flowing_again(run.client, PROBE, run.killed_at, limit=30)

        def moved() -> bool:
            row = queue_row(cluster, run.vhost, queue)
            return (row.get("leader") or row.get("node")) not in (None, c_node)

        await wait_until(moved, timeout=20, what="a replica to take over")
        run.worker.gate.set()
        run.ref.open_gate()
        counts = await run.outcomes()
        assert counts[WORKER] == counts[REF] == {"answered": REQUESTS}
        apis = (run.client, run.worker_api, run.probe_api)
        assert [api.transport.reconnects for api in apis] == [0, 0, 0]
        assert await run.consumers(WORKER) == 1 and await run.consumers(REF) == 1
        assert await answered(run.client, WORKER) and await answered(run.client, REF)
        duplicates = run.client.stats["duplicate_responses"]
        ran_twice = sum(1 for count in run.worker.runs.values() if count > 1)
        if ha == "mirrored":
            # The promoted mirror requeues what the old master had delivered and not seen
            # acknowledged: the 100 calls each service held ran again and were answered twice.
            # Each caller got one answer; the client dropped (and counted) the second.
            assert ran_twice == PREFETCH and duplicates == 2 * PREFETCH
        else:  # unacknowledged calls stay their consumer's across a leader change
            assert ran_twice == 0 and duplicates == 0
        await run.restart(QUEUE_NODE)
    report(f"kill the queues' node, {ha}", run, flow_s, counts)


async def test_kill_the_node_of_an_unreplicated_queue(
    cluster: Cluster, nuropb_python: Path
) -> None:
    """Node c holds the only copy of the service queues: their 1,800 queued calls die with it.
    The broker cancels the services' consumers: the lab service keeps its connection and
    answers the 100 calls in its hands; nuropb closes its channel, so its 100 are not. Every
    other call ends at its ttl with NuropbTimeoutError. A call made while c is down fails at
    once with NuropbNotDeliveredError naming node c (RabbitMQ 3.x; 4.x drops it without a
    return, so it ends at its ttl). Once c is back the lab service consumes again, on the
    same connection; nuropb 0.1.8 does not (it never reopens the channel it closed)."""
    async with scenario(cluster, nuropb_python, "plain-queues", ttl_ms=8_000) as run:
        client = run.client
        c_node = cluster.node_name(QUEUE_NODE)
        run.kill(QUEUE_NODE)
        loop = asyncio.get_running_loop()
        # (in the moment before the cluster has seen c go, a call is routed to the dead queue
        # and lost: it ends at its ttl; see README)
        queues = [Topology.service_queue(s) for s in (WORKER, REF)]
        await wait_until(
            lambda: all(queue_row(cluster, run.vhost, q).get("state") == "down" for q in queues),
            what="the broker to mark the queues down",
        )
        noticed_s = loop.time() - run.killed_at
        # the lab service's held calls answered within their ttl, however long what follows
        # takes (on 4.x the calls below wait for theirs)
        run.worker.gate.set()
        for service in (WORKER, REF):
            started = loop.time()
            if cluster.version >= (4,):  # dropped, not returned: it ends at its ttl
                with pytest.raises(nl.NuropbTimeoutError):
                    await client.request(service, "ping", {}, {}, ttl=2_000)
                continue
            with pytest.raises(nl.NuropbNotDeliveredError) as info:
                await client.request(service, "ping", {}, {}, ttl=10_000)
            assert loop.time() - started < 2.0  # at once, not at the ttl
            assert f"is on node {c_node}, which is down" in str(info.value)
        # discovery says where the queues are and that they are down
        management = ManagementAPI.for_target(client.nodes)
        infos, _ = await discover(client, management, set(), describe_ttl_ms=1000)
        worker_info = next(i for i in infos if i.service == WORKER)
        assert worker_info.placement is not None and worker_info.placement.down
        assert worker_info.placement.node == c_node
        # the broker names the node (3.x) or says it cannot reach the queue (4.x)
        said = f"on node {c_node}" if cluster.version < (4,) else "cannot be reached"
        assert said in str(worker_info.error)
        run.ref.open_gate()
        counts = await run.outcomes()
        assert counts[WORKER] == {"answered": PREFETCH, "NuropbTimeoutError": REQUESTS - PREFETCH}
        assert counts[REF] == {"NuropbTimeoutError": REQUESTS}
        assert client.transport.reconnects == 0 and client.in_flight == 0
        restarted_at = loop.time()
        restart_s = await run.restart(QUEUE_NODE)
        flow_s = await flowing_again(client, PROBE, restarted_at, limit=60)

        async def worker_back() -> bool:
            return await run.consumers(WORKER) == 1

        await wait_until(worker_back, timeout=30, what="the lab service to consume again")
        assert run.worker_api.transport.reconnects == 0
        assert await answered(client, WORKER)
        # the durable queue came back empty: its transient calls were lost with the node
        assert await client.queue_info(Topology.service_queue(WORKER)) == (0, 1)
        assert await run.consumers(REF) == 0  # nuropb 0.1.8 stays off its queue
    print(f"\nqueues marked down {noticed_s:.2f} s after the kill")
    print(f"node c back in the cluster {restart_s:.1f} s after its restart began")
    report("kill the queues' node, not replicated (flow: from c's restart)", run, flow_s, counts)
