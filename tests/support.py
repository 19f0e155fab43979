"""What tests share besides fixtures (conftest.py holds those): the broker's URLs, meshes of
their own, polling with a bound, Ctrl-C, load outcomes and faults made through the management
API. Tests import it as ``support``."""

from __future__ import annotations

import _thread
import asyncio
import collections
import contextlib
import dataclasses
import functools
import inspect
import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiormq
import pytest

from nuropb_lab.mesh import ManagementAPI, ManagementUnavailable, configure_mesh, parse_amqp_url
from nuropb_lab.mesh.topology import denies_transient_queues

ROOT = Path(__file__).resolve().parents[1]
BASE_URL = os.environ.get("NUROPB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/").rstrip("/")
NUROPB_VENV = ROOT / ".cache" / "nuropb-0.1.8"


def mesh_url_for(vhost: str) -> str:
    return f"{BASE_URL}/{vhost}"


def fresh_vhost(management: ManagementAPI, label: str) -> Iterator[str]:
    """A mesh configured by the lab on a vhost of its own (``test-{label}-...``), deleted
    afterwards."""
    vhost = f"test-{label}-{uuid.uuid4().hex[:8]}"
    url = mesh_url_for(vhost)
    asyncio.run(configure_mesh(url))
    try:
        yield url
    finally:
        management.call_blocking("DELETE", f"vhosts/{vhost}")


def nuropb_made_mesh(
    python: Path, management: ManagementAPI, label: str, helper: str, dl_queue: str = ""
) -> Iterator[str]:
    """A mesh set up by nuropb 0.1.8's own helpers (peers/nuropb_setup.py) on a vhost of its
    own, deleted afterwards: ``helper`` is configure_mesh or configure_nuropb_rmq."""
    vhost = f"test-{label}-{uuid.uuid4().hex[:8]}"
    url = mesh_url_for(vhost)
    command = [str(python), str(ROOT / "tests" / "peers" / "nuropb_setup.py"), url, helper]
    done = subprocess.run(
        command + ([dl_queue] if dl_queue else []), capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "DONE", f"nuropb's {helper} failed: {done.stderr[-3000:]}"
    try:
        yield url
    finally:
        management.call_blocking("DELETE", f"vhosts/{vhost}")


def vhost_of(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def nuropb_made_mesh_with_firehose(
    python: Path, management: ManagementAPI, label: str
) -> Iterator[str]:
    """A mesh nuropb 0.1.8's configure_mesh set up, for tests that switch its firehose: at
    the end the firehose is off and the lab's marker of who switched it on is gone."""
    from nuropb_lab.lab.tap.firehose import marker_name

    for url in nuropb_made_mesh(python, management, label, "configure_mesh"):
        try:
            yield url
        finally:
            with contextlib.suppress(Exception):
                management.call_blocking("PUT", f"vhosts/{vhost_of(url)}", {"tracing": False})
            management.call_blocking("DELETE", f"global-parameters/{marker_name(vhost_of(url))}")


async def mesh_objects(management: ManagementAPI, vhost: str) -> dict[str, Any]:
    """The mesh's exchanges, queues and bindings with their flags, as the broker has them
    (response, tail and tap queues left out: they come and go with their connections)."""
    exchanges, queues, bindings = await asyncio.gather(
        management.exchanges(vhost), management.queues(vhost), management.bindings(vhost)
    )

    def own(name: str) -> bool:
        return name.endswith(("-rq", "-tq"))

    return {
        "exchanges": {
            e["name"]: (e["type"], e["durable"], e["auto_delete"], e.get("arguments"))
            for e in exchanges
            if e["name"] and not e["name"].startswith("amq.")
        },
        "queues": {
            q["name"]: (q["durable"], q["auto_delete"], q.get("arguments"))
            for q in queues
            if not own(q["name"])
        },
        "bindings": sorted(
            (b["source"], b["destination"], b["routing_key"])
            for b in bindings
            if b["source"] and not own(b["destination"])
        ),
    }


@dataclasses.dataclass(frozen=True)
class Broker:
    """The test broker: its version, and the deprecated features it denies of those a client
    like the lab or nuropb 0.1.8 may meet."""

    version: str
    denied: frozenset[str]

    @property
    def permits_transient_queues(self) -> bool:
        return "transient_nonexcl_queues" not in self.denied

    def describe(self) -> str:
        origin = os.environ.get("NUROPB_TEST_BROKER")
        denies = f"denies {', '.join(sorted(self.denied))}" if self.denied else "denies nothing"
        where = parse_amqp_url(mesh_url_for("x")).masked.rsplit("/", 1)[0]
        return f"RabbitMQ {self.version} at {where} ({origin + '; ' if origin else ''}{denies})"


@functools.cache
def the_broker() -> Broker:
    """Asked of the broker itself: whether it takes a transient non-exclusive queue (the
    management API of 4.0 does not say), and whether it denies global QoS (which it accepts
    silently as per-consumer QoS; the management API of 4.3 says so)."""
    api = ManagementAPI.for_target(parse_amqp_url(mesh_url_for("x")))
    version = str(api.call_blocking("GET", "overview")["rabbitmq_version"])
    features = api.call_blocking("GET", "deprecated-features") or []  # 404 before 3.13
    denied = {
        f["name"] for f in features if f["name"] == "global_qos" and f.get("state") == "denied"
    }
    if not asyncio.run(_takes_a_transient_queue(api)):
        denied.add("transient_nonexcl_queues")
    return Broker(version, frozenset(denied))


async def _takes_a_transient_queue(api: ManagementAPI) -> bool:
    vhost = f"test-probe-{uuid.uuid4().hex[:8]}"
    api.call_blocking("PUT", f"vhosts/{vhost}")
    quiet = logging.getLogger("aiormq")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # aiormq logs the denial as an error, then a traceback
    try:
        connection = await aiormq.connect(mesh_url_for(vhost))
        try:
            channel = await connection.channel()
            await channel.queue_declare("probe", durable=False, exclusive=False)
            return True
        except aiormq.exceptions.AMQPError as exc:
            if not denies_transient_queues(exc):
                raise
            return False
        finally:
            with contextlib.suppress(Exception):
                await connection.close()
    finally:
        quiet.setLevel(level)
        api.call_blocking("DELETE", f"vhosts/{vhost}")


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate()`` from a thread that may block (tests of the Lab's blocking API)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def peer_process(python: Path, script: str, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """tests/peers/``script`` run by ``python`` until the block ends: once it said READY, and
    gone (its stdin closed, killed after 10 s) when the block is left."""
    proc = subprocess.Popen(
        [str(python), str(ROOT / "tests" / "peers" / script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == b"READY", f"{script} {' '.join(args[1:])} did not start: {line!r}"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def ctrl_c_after(seconds: float) -> Iterator[None]:
    """Press Ctrl-C in the main thread after ``seconds``, as a user at a notebook does.

    Python's own SIGINT handler is put in place for the block: a process started in the
    background of a shell (as CI may start the suite) inherits SIGINT ignored, and then
    ``_thread.interrupt_main`` does nothing."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, before)


class GatedWorker:
    """A served object whose ``job`` calls wait at ``gate`` (held unacknowledged meanwhile),
    then work ``work`` s; it counts runs per request number and the ones running now."""

    def __init__(self, work: float = 0.0) -> None:
        self.work = work
        self.gate = asyncio.Event()
        self.runs: collections.Counter[int] = collections.Counter()
        self.active: collections.Counter[int] = collections.Counter()

    async def job(self, n: int) -> int:
        self.runs[n] += 1
        self.active[n] += 1
        try:
            await self.gate.wait()
            if self.work:
                await asyncio.sleep(self.work)
        finally:
            self.active[n] -= 1
        return n * 2

    def ping(self) -> str:
        return "pong"

    def held(self) -> set[int]:
        """The request numbers running now (waiting at the gate)."""
        return {n for n, count in self.active.items() if count > 0}


GRACE = 1.0  # seconds a request may end after its ttl (seen: 0.15 s; loop lag on a busy box)


@dataclasses.dataclass
class Outcome:
    """How one request of a load ended, and when."""

    service: str
    n: int
    ttl_s: float
    elapsed: float
    result: Any = None
    error: BaseException | None = None


async def timed_request(client: Any, service: str, n: int, ttl_ms: int) -> Outcome:
    """``service.job(n=n)`` (a GatedWorker's), timed; its error kept, not raised."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        result = await client.request(service, "job", {"n": n}, {}, ttl=ttl_ms)
    except Exception as exc:
        return Outcome(service, n, ttl_ms / 1000, loop.time() - started, error=exc)
    return Outcome(service, n, ttl_ms / 1000, loop.time() - started, result=result)


def tally(
    outcomes: list[Outcome],
    requests: int,
    allowed: tuple[type[BaseException], ...] = (BaseException,),
    answered: str = "answered",
) -> collections.Counter[str]:
    """Every request ended once, within its ttl + GRACE, with its result or an error (of the
    ``allowed`` kinds) that says what happened; counts by outcome (``answered`` or the error's
    class name)."""
    assert sorted(o.n for o in outcomes) == list(range(requests))
    late = [o for o in outcomes if o.elapsed > o.ttl_s + GRACE]
    assert not late, f"{len(late)} requests ended after ttl + {GRACE} s, e.g. {late[:3]}"
    kinds: collections.Counter[str] = collections.Counter()
    for outcome in outcomes:
        if outcome.error is None:
            assert outcome.result == outcome.n * 2
            kinds[answered] += 1
        else:
            assert isinstance(outcome.error, allowed), repr(outcome.error)
            assert str(outcome.error), repr(outcome.error)  # says what happened
            kinds[type(outcome.error).__name__] += 1
    return kinds


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate()`` (sync or async) until true; fail the test after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def visible_connections(
    management: ManagementAPI,
    vhost: str,
    expect: int,
    name_contains: str = "",
    timeout: float = 20.0,
) -> list[str]:
    """Names of the vhost's connections, once ``expect`` of them show (the management API
    lists new connections a few seconds late)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = [
            c["name"]
            for c in await management.connections(vhost)
            if name_contains in c.get("user_provided_name", c["name"])
        ]
        if len(found) >= expect:
            return found
        if loop.time() > deadline:
            pytest.fail(f"only {len(found)} of {expect} connections showed in the management API")
        await asyncio.sleep(0.25)


async def close_connections(
    management: ManagementAPI, vhost: str, expect: int, name_contains: str = ""
) -> int:
    """Force-close the vhost's connections, as a broker fault would."""
    names = await visible_connections(management, vhost, expect, name_contains)
    for name in names:
        try:
            await management.close_connection(name, "test fault")
        except ManagementUnavailable:
            # 3.10 answers 500 for a connection that closed while listed (closing its peer
            # may take it down too); that one is gone, which was the point
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while name in {c["name"] for c in await management.connections(vhost)}:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.25)
    return len(names)


@dataclasses.dataclass
class LabSetup:
    """How a test module's ``lab`` fixture (conftest.py) is made: a module that needs another
    one overrides the ``lab_setup`` fixture."""

    url: str | None = None  # default: the module's own mesh (``mesh_url``)
    alias: str | None = None  # default: the mesh name
    settings: dict[str, Any] = dataclasses.field(default_factory=lambda: {"timeout": 10})
    serve: dict[str, object] = dataclasses.field(default_factory=dict)  # name -> object
