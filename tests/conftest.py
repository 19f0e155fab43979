"""Shared fixtures: a real RabbitMQ, a fresh vhost per test module, the nuropb 0.1.8 peer."""

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
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiormq
import pytest

from nuropb_lab.demo.run import KEY_ENV as DEMO_KEY_ENV
from nuropb_lab.mesh import (
    ManagementAPI,
    ManagementUnavailable,
    configure_mesh,
    parse_amqp_url,
)
from nuropb_lab.mesh.known_keys import ENV as KNOWN_KEYS_ENV
from nuropb_lab.mesh.topology import denies_transient_queues

ROOT = Path(__file__).resolve().parents[1]
BASE_URL = os.environ.get("NUROPB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/").rstrip("/")
NUROPB_VENV = ROOT / ".cache" / "nuropb-0.1.8"


def mesh_url_for(vhost: str) -> str:
    return f"{BASE_URL}/{vhost}"


@pytest.fixture(scope="session", autouse=True)
def known_keys_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tests' own known-keys file (the Labs they make pin keys there) and demo vault key,
    never the user's; notebooks' kernels and demo processes inherit them."""
    path = tmp_path_factory.mktemp("known-keys") / "known_keys.json"
    files = {KNOWN_KEYS_ENV: path, DEMO_KEY_ENV: path.with_name("demo-vault-key.pem")}
    before = {name: os.environ.get(name) for name in files}
    os.environ.update({name: str(value) for name, value in files.items()})
    yield path
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def management() -> ManagementAPI:
    api = ManagementAPI.for_target(parse_amqp_url(mesh_url_for("x")))
    try:
        api._call("GET", "overview")
    except Exception as exc:
        pytest.fail(
            f"the RabbitMQ management API is needed by the tests: {exc} (scripts/test sets it up)"
        )
    return api


def fresh_vhost(management: ManagementAPI, label: str) -> Iterator[str]:
    """A mesh the lab configured, on a vhost of its own, deleted afterwards."""
    vhost = f"test-{label}-{uuid.uuid4().hex[:8]}"
    url = mesh_url_for(vhost)
    asyncio.run(configure_mesh(url))
    try:
        yield url
    finally:
        management._call("DELETE", f"vhosts/{vhost}")


@pytest.fixture(scope="module")
def mesh_url(request: pytest.FixtureRequest, management: ManagementAPI) -> Iterator[str]:
    """A configured mesh on a vhost of its own for this test module, deleted afterwards."""
    label = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    yield from fresh_vhost(management, label)


@pytest.fixture
def fresh_mesh_url(request: pytest.FixtureRequest, management: ManagementAPI) -> Iterator[str]:
    """A mesh of its own for one test."""
    yield from fresh_vhost(management, request.node.name[:20].replace("_", "-").lower())


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
        management._call("DELETE", f"vhosts/{vhost}")


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
    version = str(api._call("GET", "overview")["rabbitmq_version"])
    features = api._call("GET", "deprecated-features") or []  # 404 before 3.13
    denied = {
        f["name"] for f in features if f["name"] == "global_qos" and f.get("state") == "denied"
    }
    if not asyncio.run(_takes_a_transient_queue(api)):
        denied.add("transient_nonexcl_queues")
    return Broker(version, frozenset(denied))


async def _takes_a_transient_queue(api: ManagementAPI) -> bool:
    vhost = f"test-probe-{uuid.uuid4().hex[:8]}"
    api._call("PUT", f"vhosts/{vhost}")
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
        api._call("DELETE", f"vhosts/{vhost}")


@pytest.fixture(scope="session")
def broker(management: ManagementAPI) -> Broker:
    return the_broker()


@pytest.fixture(scope="session")
def nuropb_python(broker: Broker) -> Path:
    """The interpreter of a virtualenv holding the published nuropb==0.1.8; skipped, saying
    why, on a broker where nuropb 0.1.8 cannot run."""
    if not broker.permits_transient_queues:
        pytest.skip(
            "nuropb 0.1.8 cannot run on a broker that denies transient non-exclusive queues"
            " (its response queues and DLQ are such); scripts/test runs this on one that permits"
            " them"
        )
    python = NUROPB_VENV / "bin" / "python"
    check = [str(python), "-c", "import nuropb.rmq_api"]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        script = "source scripts/setup.sh && setup_nuropb_venv"
        subprocess.run(["bash", "-c", script], cwd=ROOT, check=True)
    return python


@pytest.fixture(scope="session")
def compat_python(nuropb_python: Path) -> Path:
    """The interpreter of a virtualenv with nuropb==0.1.8 and the lab side by side (where
    nuropb 0.1.8 can run, see ``nuropb_python``)."""
    python = ROOT / ".cache" / "compat" / "bin" / "python"
    check = [str(python), "-c", "import nuropb.rmq_api, nuropb_lab"]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        script = "source scripts/setup.sh && setup_compat_venv"
        subprocess.run(["bash", "-c", script], cwd=ROOT, check=True)
    return python


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


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A throwaway 3-node RabbitMQ cluster of the tests' own (tests/nodes), one per session;
    skipped, saying why, where it cannot start."""
    from nodes import NodeUnavailable, start_cluster

    try:
        started = start_cluster(tmp_path_factory.mktemp("cluster"))
    except NodeUnavailable as exc:
        print(f"cluster unavailable: {exc}", file=sys.stderr)
        pytest.skip(f"cannot start a 3-node RabbitMQ cluster here: {exc}")
    print(f"\n3-node cluster booted in {started.boot_seconds:.1f} s", file=sys.stderr)
    try:
        yield started
    finally:
        started.stop()


def _broker_line() -> str:
    try:
        return f"broker: {the_broker().describe()}"
    except Exception as exc:  # the management fixture fails the tests, saying why
        return f"broker: {parse_amqp_url(mesh_url_for('x')).masked} ({exc})"


def pytest_report_header() -> list[str]:
    return [_broker_line(), f"python: {sys.version.split()[0]}"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what needs a nuropb 0.1.8 peer and what needs the 3-node cluster, so a run can
    pick them (scripts/test runs them on a broker where nuropb 0.1.8 can run)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & {"nuropb_python", "compat_python"}:
            item.add_marker(pytest.mark.nuropb_peer)
        if "cluster" in fixtures:
            item.add_marker(pytest.mark.cluster)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(f"ran on {_broker_line()}")


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
