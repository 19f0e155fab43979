"""Fault suite on a real broker: faults injected while 1,000 requests are in flight.

Each load test runs two client APIs and four client tasks of 250 concurrent requests each
against one service with prefetch 100. The service holds every message it takes at a gate
until the fault is injected, so at that moment exactly 1,000 requests wait for an answer and
exactly ``PREFETCH`` service messages are delivered and unacknowledged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest
from support import (
    BASE_URL,
    GatedWorker,
    Outcome,
    tally,
    timed_request,
    visible_connections,
    wait_until,
)

import nuropb_lab as nl
from nuropb_lab.mesh import ManagementAPI, Topology, codec

REQUESTS = 1000
TASKS = 4
PREFETCH = 100
SERVICE = "worker"
QUEUE = Topology.service_queue(SERVICE)


def vhost_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def client_task(client: nl.RMQAPI, numbers: range, ttl_ms: int) -> list[Outcome]:
    return list(await asyncio.gather(*(timed_request(client, SERVICE, n, ttl_ms) for n in numbers)))


@dataclasses.dataclass
class Load:
    service: nl.RMQAPI
    clients: list[nl.RMQAPI]
    worker: GatedWorker
    ttl_ms: int = 0
    tasks: list[asyncio.Task[list[Outcome]]] = dataclasses.field(default_factory=list)
    extra_held: int = 0  # service messages not sent by the clients (held too)

    @property
    def apis(self) -> list[nl.RMQAPI]:
        return [self.service, *self.clients]

    def start(self, ttl_ms: int) -> None:
        """Four client tasks, alternating between the two clients, 250 requests each."""
        self.ttl_ms = ttl_ms
        per_task = REQUESTS // TASKS
        for k in range(TASKS):
            numbers = range(k * per_task, (k + 1) * per_task)
            client = self.clients[k % len(self.clients)]
            self.tasks.append(asyncio.create_task(client_task(client, numbers, ttl_ms)))

    async def all_in_flight(self) -> set[int]:
        """Wait until every request waits for its answer and the service holds a full
        prefetch, the rest queued; returns the numbers held unacknowledged."""
        await wait_until(
            lambda: sum(c.in_flight for c in self.clients) == REQUESTS,
            timeout=30,
            what=f"{REQUESTS} requests in flight",
        )
        await wait_until(
            lambda: len(self.worker.held()) == PREFETCH, timeout=15, what="a full prefetch held"
        )
        ready = REQUESTS + self.extra_held - PREFETCH

        async def all_queued() -> bool:
            return await self.service.queue_info(QUEUE) == (ready, 1)

        await wait_until(all_queued, timeout=15, what=f"{ready} requests queued")
        return self.worker.held()

    async def outcomes(self) -> list[Outcome]:
        batches = await asyncio.wait_for(asyncio.gather(*self.tasks), self.ttl_ms / 1000 + 10)
        return [outcome for batch in batches for outcome in batch]

    async def recovered(self, timeout: float) -> None:
        """Every API reconnected by itself, nothing waits, and new calls work."""
        await wait_until(
            lambda: all(api.connected and api.transport.reconnects >= 1 for api in self.apis),
            timeout=timeout,
            what="every API to reconnect",
        )
        for client in self.clients:
            assert client.in_flight == 0  # no pending futures left behind
            assert await client.request(SERVICE, "ping", {}, {}, ttl=10_000) == "pong"

        async def consuming_and_drained() -> bool:
            return await self.service.queue_info(QUEUE) == (0, 1)

        await wait_until(consuming_and_drained, timeout=15, what="the service to consume again")


@contextlib.asynccontextmanager
async def serving(url: str, management: ManagementAPI, work: float) -> AsyncIterator[Load]:
    """A service (prefetch 100) and two clients, all visible in the management API."""
    worker = GatedWorker(work)
    settings = {"prefetch_count": PREFETCH}
    async with nl.RMQAPI(url, SERVICE, service_instance=worker, transport_settings=settings) as svc:
        async with nl.RMQAPI(url) as a, nl.RMQAPI(url) as b:
            await visible_connections(management, vhost_of(url), 3)
            load = Load(svc, [a, b], worker)
            try:
                yield load
            finally:
                worker.gate.set()
                for task in load.tasks:
                    task.cancel()


def check_outcomes(outcomes: list[Outcome]) -> collections.Counter[str]:
    """Every request ended within its ttl (+ GRACE) with its result or a clear error."""
    errors = (nl.NuropbTimeoutError, nl.NuropbTransportError)
    kinds = tally(outcomes, REQUESTS, errors, answered="result")
    kinds["max_elapsed_ms"] = round(max(o.elapsed for o in outcomes) * 1000)
    return kinds


async def test_close_every_connection_with_1000_requests_in_flight(
    fresh_mesh_url: str, management: ManagementAPI
) -> None:
    ttl_ms = 20_000
    async with serving(fresh_mesh_url, management, work=0.2) as load:
        load.start(ttl_ms)
        held = await load.all_in_flight()
        names = await visible_connections(management, vhost_of(fresh_mesh_url), 3)
        assert len(names) == 3
        await asyncio.gather(*(management.close_connection(n, "fault suite") for n in names))
        # The held calls die with their channel: no ack, no answer. The gate opens once the
        # clients are back, because an answer sent while its caller is away is dropped (the
        # response queue is auto-delete, as in nuropb): that caller would time out instead.
        await wait_until(
            lambda: all(c.connected and c.transport.reconnects for c in load.clients),
            timeout=15,
            what="the clients to reconnect",
        )
        load.worker.gate.set()
        outcomes = await load.outcomes()
        kinds = check_outcomes(outcomes)
        print(f"\nclose all connections, {REQUESTS} in flight: {dict(kinds)}")
        by_number = {o.n: o for o in outcomes}
        # unacknowledged when the connection dropped: redelivered, run again and answered
        assert len(held) == PREFETCH
        assert all(load.worker.runs[n] >= 2 for n in held)
        assert [n for n in held if by_number[n].result != n * 2] == []
        # nothing was lost: the queue survived, and so every request was answered
        assert kinds["result"] == REQUESTS
        await load.recovered(timeout=15)
        assert await load.service.queue_info(load.service.topology.dl_queue) == (0, 0)


# --- broker restart (stop_app / start_app) ----------------------------------------------

CTL_TIMEOUT = 90.0
RESTARTS_THIS_SESSION: list[float] = []  # the restart runs once per session, even if repeated
RESTART_LOCK = Path(os.environ.get("TMPDIR", "/tmp")) / "nuropb-lab-broker-restart.lock"


def _rabbitmqctl() -> str | None:
    """The test broker's rabbitmqctl: ``$NUROPB_TEST_RABBITMQCTL`` (a throwaway node's, from
    tests/nodes), else this machine's, for the broker on this machine's port 5672 only (its
    default node); None for any other broker, which this test cannot restart."""
    own = os.environ.get("NUROPB_TEST_RABBITMQCTL")
    if own:
        return own
    target = urlsplit(BASE_URL)
    if target.hostname not in ("127.0.0.1", "localhost") or (target.port or 5672) != 5672:
        return None
    return shutil.which("rabbitmqctl") or next(
        (p for p in ("/usr/sbin/rabbitmqctl", "/usr/local/sbin/rabbitmqctl") if Path(p).exists()),
        None,
    )


async def rabbitmqctl(*args: str, timeout: float = CTL_TIMEOUT) -> str:
    ctl = _rabbitmqctl()
    assert ctl is not None
    process = await asyncio.create_subprocess_exec(
        ctl, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"rabbitmqctl {' '.join(args)} took over {timeout} s") from None
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"rabbitmqctl {' '.join(args)} failed: {text}"
    return text


async def broker_answers(url: str, management: ManagementAPI) -> bool:
    """The broker takes AMQP connections on the mesh and its management API answers."""
    try:
        connection = await aio_pika.connect(url, timeout=2)
    except Exception:
        return False
    await connection.close()
    return await management.available()


@contextlib.asynccontextmanager
async def restart_lock(timeout: float = 120) -> AsyncIterator[None]:
    """One broker restart at a time on this machine (concurrent test runs share the broker)."""
    with RESTART_LOCK.open("w") as handle:

        def locked() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        await wait_until(locked, timeout=timeout, what="another test run's broker restart")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def persistent_requests(url: str, replies: str, numbers: list[int]) -> dict[str, int]:
    """Publish persistent requests straight to the service queue, answered into a durable
    queue, so they outlive a broker restart; returns correlation id -> number."""
    sent: dict[str, int] = {}
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        await channel.declare_queue(replies, durable=True)
        for n in numbers:
            correlation_id = uuid.uuid4().hex
            body = {
                "tag": "request",
                "service": SERVICE,
                "method": "job",
                "params": {"n": n},
                "correlation_id": correlation_id,
                "context": {},
                "trace_id": None,
            }
            await channel.default_exchange.publish(
                aio_pika.Message(
                    json.dumps(body).encode(),
                    headers=codec.headers_for("request", None, False, "0.1.8"),
                    correlation_id=correlation_id,
                    reply_to=replies,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type="application/json",
                ),
                routing_key=QUEUE,
            )
            sent[correlation_id] = n
    return sent


async def collect_replies(url: str, replies: str, expect: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(replies, durable=True)

        async def drained() -> bool:
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                got.append({"correlation_id": message.correlation_id, **json.loads(message.body)})
            return len(got) >= expect

        await wait_until(drained, timeout=20, what=f"{expect} persistent requests answered")
        await queue.delete(if_unused=False, if_empty=False)
    return got


@pytest.mark.broker_restart
async def test_broker_restart_with_1000_requests_in_flight(
    fresh_mesh_url: str, management: ManagementAPI
) -> None:
    """stop_app drops every connection on the broker (other test runs' too): run once, short.

    Requests are transient (as nuropb sends them), so the broker drops those queued or
    unacknowledged when it stops: their callers get NuropbTimeoutError (or
    NuropbTransportError when not reconnected yet) by their ttl. Persistent requests, held
    unacknowledged by the service when the broker stopped, are redelivered and answered."""
    if _rabbitmqctl() is None:
        pytest.skip(
            "needs the test broker's rabbitmqctl: the broker on this machine's port 5672, or"
            " $NUROPB_TEST_RABBITMQCTL"
        )
    if RESTARTS_THIS_SESSION:
        pytest.skip("the broker was already restarted once in this session")
    ttl_ms = 8_000
    replies = f"fault-replies-{uuid.uuid4().hex[:8]}"
    persistent_numbers = list(range(10_000, 10_010))
    loop = asyncio.get_running_loop()
    async with restart_lock():
        async with serving(fresh_mesh_url, management, work=0.05) as load:
            # sent first, so the service holds them unacknowledged when the broker stops
            sent = await persistent_requests(fresh_mesh_url, replies, persistent_numbers)
            await wait_until(
                lambda: set(persistent_numbers) <= load.worker.held(),
                what="the persistent requests held by the service",
            )
            load.extra_held = len(persistent_numbers)
            load.start(ttl_ms)
            await load.all_in_flight()
            stopped = loop.time()
            RESTARTS_THIS_SESSION.append(stopped)
            try:
                await rabbitmqctl("stop_app")
                stop_s = loop.time() - stopped
                # a call made while the broker is down waits for the connection, within its ttl
                during = asyncio.create_task(
                    load.clients[0].request(SERVICE, "ping", {}, {}, ttl=60_000)
                )
            finally:
                await rabbitmqctl("start_app")  # always: a stopped broker breaks every test
                await wait_until(
                    lambda: broker_answers(fresh_mesh_url, management),
                    timeout=60,
                    what="the broker to answer after start_app",
                )
            down_s = loop.time() - stopped
            # Held until the broker is back: an answer sent while it shuts down (a service can
            # reconnect for a moment then) would be transient and die with the restart.
            load.worker.gate.set()
            outcomes = await load.outcomes()
            kinds = check_outcomes(outcomes)
            # answered once the service is back; then nothing may be left waiting
            assert await asyncio.wait_for(during, 30) == "pong"
            await load.recovered(timeout=30)
            # (collected while the service runs: one that stops mid-call answers nothing)
            answers = await collect_replies(fresh_mesh_url, replies, len(sent))
    print(
        f"\nstop_app/start_app ({stop_s:.1f} s to stop, {down_s:.1f} s until it answered),"
        f" {REQUESTS} in flight: {dict(kinds)}; {len(answers)}/{len(sent)} persistent answered;"
        f" reconnects {[api.transport.reconnects for api in load.apis]}"
    )
    # the persistent ones: redelivered after the restart, run again, answered exactly once
    assert sorted(a["correlation_id"] for a in answers) == sorted(sent)
    for answer in answers:
        n = sent[answer["correlation_id"]]
        assert answer["error"] is None and answer["result"] == n * 2
        assert load.worker.runs[n] >= 2


# --- single instance ------------------------------------------------------------------


async def test_second_instance_with_the_same_instance_id_fails_fast(fresh_mesh_url: str) -> None:
    loop = asyncio.get_running_loop()
    worker = GatedWorker(0)
    worker.gate.set()
    async with nl.RMQAPI(fresh_mesh_url, SERVICE, instance_id="fixed", service_instance=worker):
        async with nl.RMQAPI(fresh_mesh_url, instance_id="fixed-client") as client:
            for second in (
                nl.RMQAPI(
                    fresh_mesh_url, SERVICE, instance_id="fixed", service_instance=GatedWorker(0)
                ),
                nl.RMQAPI(fresh_mesh_url, instance_id="fixed-client"),
            ):
                started = loop.time()
                with pytest.raises(nl.NuropbTransportError, match="single-instance") as info:
                    await asyncio.wait_for(second.connect(), 15)
                assert loop.time() - started < 5  # an error, not a hang or a retry loop
                assert "another API instance is connected with this instance_id" in str(info.value)
                assert second.transport.state == "closed" and second.in_flight == 0
            # the first instances are untouched
            assert await client.request(SERVICE, "ping", {}, {}, ttl=5000) == "pong"
            assert client.transport.reconnects == 0
    # once the first instance is gone, the id is free again
    async with nl.RMQAPI(fresh_mesh_url, SERVICE, instance_id="fixed", service_instance=worker):
        async with nl.RMQAPI(fresh_mesh_url, instance_id="fixed-client") as client:
            assert await client.request(SERVICE, "ping", {}, {}, ttl=5000) == "pong"
