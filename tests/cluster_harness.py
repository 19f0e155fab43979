"""What the cluster tests share: meshes on the test cluster (with an HA setting), service queues
placed on a chosen node, a gated lab service, a gated nuropb 0.1.8 service in its own process,
and 1,000-request loads with their outcomes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import signal
import uuid
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, Literal

import aiormq
import pytest
from nodes import Cluster
from support import Outcome, timed_request, wait_until

import nuropb_lab as nl
from nuropb_lab.mesh import Topology

PEERS = Path(__file__).resolve().parent / "peers"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
HA = Literal["mirrored", "quorum"] | None
MIRRORING = {"ha-mode": "all", "ha-sync-mode": "automatic"}
NUROPB_QUEUE_ARGS = {"x-dead-letter-exchange": "nuropb-dl-exchange"}


@contextlib.asynccontextmanager
async def mesh_on(cluster: Cluster, label: str, ha: HA = None) -> AsyncIterator[str]:
    """A configured mesh (vhost) of its own on the cluster, deleted afterwards.

    ``mirrored``: a policy mirrors every service queue to all nodes, synchronised
    automatically (RabbitMQ 3.x). ``quorum``: the vhost's default queue type is quorum, so
    service queues declared as nuropb declares them (no x-queue-type) are quorum queues."""
    if ha == "mirrored" and cluster.version >= (4,):
        pytest.skip("RabbitMQ 4 has no classic mirrored queues (quorum queues replace them)")
    vhost = f"cluster-{label}-{uuid.uuid4().hex[:6]}"
    # 3.10's HTTP API reads "defaultqueuetype" and ignores "default_queue_type"; later ones
    # document the latter
    quorum = {"defaultqueuetype": "quorum", "default_queue_type": "quorum"}
    cluster.put_vhost(vhost, quorum if ha == "quorum" else {})
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    cluster.api("PUT", f"permissions/{vhost}/guest", everything)
    if ha == "mirrored":
        policy = {"pattern": "^nuropb-.*-sq$", "definition": MIRRORING, "apply-to": "queues"}
        cluster.api("PUT", f"policies/{vhost}/nuropb-ha", policy)
    await nl.configure_mesh(cluster.urls(vhost))
    try:
        yield vhost
    finally:
        with contextlib.suppress(OSError):
            cluster.api("DELETE", f"vhosts/{vhost}")


async def place_queues(cluster: Cluster, vhost: str, node: str, services: list[str]) -> None:
    """Declare the services' queues as nuropb does, from a connection to ``node``: a classic
    queue lives there, a mirrored queue has its master there, a quorum queue its leader."""
    connection = await aiormq.connect(cluster.url(node, vhost))
    try:
        channel = await connection.channel()
        for service in services:
            queue = Topology.service_queue(service)
            await channel.queue_declare(
                queue, durable=True, auto_delete=False, arguments=NUROPB_QUEUE_ARGS
            )
    finally:
        await connection.close()


def queue_row(cluster: Cluster, vhost: str, queue: str) -> dict[str, Any]:
    rows = cluster.api(
        "GET",
        f"queues/{vhost}?columns=name,node,state,type,leader,members,"
        "online,slave_nodes,synchronised_slave_nodes",
    )
    return next(row for row in rows if row["name"] == queue)

    def held(self) -> int:
        return sum(1 for count in self.active.values() if count > 0)


@dataclasses.dataclass
class NuropbPeer:
    """A gated nuropb 0.1.8 service (peers/nuropb_gated_service.py) in its own process."""

    process: asyncio.subprocess.Process
    runs: dict[int, int] = dataclasses.field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    log: collections.deque[str] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=100)
    )

    async def read_log(self) -> None:
        """Keep the last lines nuropb logs (stderr), so a full pipe never blocks the peer."""
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.log.append(line.decode(errors="replace").rstrip())

    def open_gate(self) -> None:
        self.process.send_signal(signal.SIGUSR1)

    async def stop(self) -> None:
        process = self.process
        if process.returncode is not None:
            return
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                while line := await process.stdout.readline():
                    if line.startswith(b"RUNS "):
                        self.runs = {int(k): v for k, v in json.loads(line[5:]).items()}
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def start_nuropb(
    python: Path, url: str, name: str, prefetch: int, expect_ready: bool = True
) -> tuple[NuropbPeer, str]:
    """Start the peer; returns it and its first line (READY, or NOT CONNECTED with stderr)."""
    process = await asyncio.create_subprocess_exec(
        str(python),
        str(PEERS / "nuropb_gated_service.py"),
        url,
        name,
        str(prefetch),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    peer = NuropbPeer(process)
    assert process.stdout is not None and process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT)).decode()
    except TimeoutError:
        await peer.stop()
        pytest.fail(f"nuropb service {name} said nothing within {READY_TIMEOUT} s")
    if line.strip() != "READY":
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        line += (await process.stderr.read()).decode(errors="replace")
        if expect_ready:
            pytest.fail(f"nuropb service {name} did not start: {line[-3000:]}")
    else:
        peer.reader = asyncio.get_running_loop().create_task(peer.read_log())
    return peer, line


async def nuropb_client(python: Path, url: str, service: str, steps: list[dict[str, Any]]) -> Any:
    """Run a nuropb 0.1.8 client scenario (peers/nuropb_client.py); its results by step id."""
    process = await asyncio.create_subprocess_exec(
        str(python),
        str(PEERS / "nuropb_client.py"),
        url,
        service,
        json.dumps(steps),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, f"{out.decode()}\n{err.decode()[-3000:]}"
    return json.loads(out)["results"]


def start_load(
    client: nl.RMQAPI, services: list[str], requests: int, ttl_ms: int
) -> list[asyncio.Task[list[Outcome]]]:
    """``requests`` calls to each service, in four tasks per service."""
    tasks = []
    per_task = requests // 4
    for service in services:
        for k in range(4):
            numbers = range(k * per_task, (k + 1) * per_task)
            calls = [timed_request(client, service, n, ttl_ms) for n in numbers]
            tasks.append(asyncio.create_task(_gather(calls)))
    return tasks


async def _gather(calls: list[Coroutine[Any, Any, Outcome]]) -> list[Outcome]:
    return list(await asyncio.gather(*calls))


async def answered(client: nl.RMQAPI, service: str, ttl_ms: int = 10_000) -> bool:
    try:
        return bool(await client.request(service, "ping", {}, {}, ttl=ttl_ms) == "pong")
    except nl.NuropbException:
        return False


async def flowing_again(client: nl.RMQAPI, service: str, since: float, limit: float) -> float:
    """Seconds from ``since`` (loop time) until ``service`` answers a call again (asked again
    and again, each call bounded)."""

    async def flowing() -> bool:
        return await answered(client, service, ttl_ms=1000)

    await wait_until(flowing, timeout=limit, what=f"{service} to answer again")
    return asyncio.get_running_loop().time() - since
