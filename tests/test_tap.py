"""The wire tap on the real broker, on a mesh set up by nuropb 0.1.8's own helper, with the
real nuropb 0.1.8 as client and service: pairs, latencies, errors and callers; encrypted
calls; the fallback without the firehose; the firehose switched back in every case (also
after a killed kernel); the services untouched; a bounded buffer under a flood; the graph,
traces, save/load and replay from a known traffic pattern; the widgets and the magic."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from support import (
    ROOT,
    Broker,
    LabSetup,
    close_connections,
    fresh_vhost,
    nuropb_made_mesh,
    peer_process,
    wait_for,
)

import nuropb_lab as nl
from nuropb_lab.lab import Lab, get_lab
from nuropb_lab.lab.tap.firehose import marker_name
from nuropb_lab.mesh import RMQAPI, ManagementAPI, NuropbValidationError
from nuropb_lab.mesh.events import TAIL_QUEUE_PATTERN
from nuropb_lab.mesh.service import current_trace_id

PEERS = Path(__file__).resolve().parent / "peers"
TRACE = "amq.rabbitmq.trace"
WAIT = 15.0


def vhost_of(url: str) -> str:
    return url.rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def nuropb_mesh(
    request: pytest.FixtureRequest, management: ManagementAPI, broker: Broker
) -> Iterator[str]:
    """A mesh set up by nuropb 0.1.8's own configure_mesh (its DLQ not durable), not the lab;
    by the lab where nuropb 0.1.8 cannot run (a broker that denies transient queues)."""
    if broker.permits_transient_queues:
        python = request.getfixturevalue("nuropb_python")
        made = nuropb_made_mesh(python, management, "tap", "configure_mesh")
    else:
        made = fresh_vhost(management, "tap")
    for url in made:
        vhost = vhost_of(url)
        try:
            yield url
        finally:
            with contextlib.suppress(Exception):
                management.call_blocking("PUT", f"vhosts/{vhost}", {"tracing": False})
            management.call_blocking("DELETE", f"global-parameters/{marker_name(vhost)}")


def tracing(management: ManagementAPI, url: str) -> bool:
    return bool(management.call_blocking("GET", f"vhosts/{vhost_of(url)}")["tracing"])


def trace_bindings(management: ManagementAPI, url: str) -> list[str]:
    bound = (
        management.call_blocking("GET", f"exchanges/{vhost_of(url)}/{TRACE}/bindings/source") or []
    )
    return [b["destination"] for b in bound]


@pytest.fixture(autouse=True)
def firehose_back_off(nuropb_mesh: str, management: ManagementAPI) -> Iterator[None]:
    """Every test leaves the firehose as it found it: off, with no owner marker."""
    assert not tracing(management, nuropb_mesh)
    yield
    assert not tracing(management, nuropb_mesh), "a test left the firehose on"
    assert (
        management.call_blocking("GET", f"global-parameters/{marker_name(vhost_of(nuropb_mesh))}")
        is None
    )


@pytest.fixture(scope="module")
def lab_setup(nuropb_mesh: str) -> LabSetup:
    return LabSetup(url=nuropb_mesh, alias="m")


# --- peers ------------------------------------------------------------------------------


def nuropb_client(python: Path, url: str, service: str, steps: list[dict[str, Any]]) -> Any:
    """peers/nuropb_client.py: a nuropb 0.1.8 client running ``steps`` against ``service``."""
    run = subprocess.run(
        [str(python), str(PEERS / "nuropb_client.py"), url, service, json.dumps(steps)],
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    return json.loads(run.stdout)


class Calc:
    """A lab-served service."""

    def add(self, a: int, b: int = 2) -> int:
        return a + b

    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    def fail(self, message: str) -> None:
        raise NuropbValidationError(message)


def request(method: str, n: int, **step: Any) -> list[dict[str, Any]]:
    return [{"id": f"{method}-{i}", "op": "request", "method": method, **step} for i in range(n)]


# --- trace records read from their raw header tables (no broker) ------------------------


def test_a_trace_record_read_from_its_raw_header_table() -> None:
    from test_frame_reader import TRACE_HEADERS, message

    from nuropb_lab.lab.tap.records import read_trace
    from nuropb_lab.mesh.amqp.reader import Delivery, FrameReader

    reader = FrameReader()
    reader.raw_headers.add("tap-q")
    data = message(b"{}", TRACE_HEADERS, consumer_tag="tap-q") + message(b"{}", TRACE_HEADERS)
    raw, decoded = reader.feed(data)
    assert isinstance(raw, Delivery) and isinstance(decoded, Delivery)
    assert raw.headers is None and raw.raw_headers is not None and raw.problem is None
    assert decoded.headers == TRACE_HEADERS and decoded.raw_headers is None  # others as before
    record = read_trace(raw.raw_headers)
    properties = TRACE_HEADERS["properties"]
    assert record == (
        "request",
        "calc",
        properties["correlation_id"],
        properties["reply_to"],
        "t1",
        False,
        TRACE_HEADERS["connection"],
        ["nuropb-calc-sq"],
    )
    for cut in (3, 40, len(raw.raw_headers) - 1):
        with pytest.raises(ValueError):
            read_trace(raw.raw_headers[:cut])


def test_nesting_takes_the_tap_clock_as_it_is() -> None:
    """Times are when the tap read each record: a nested call may read as a hair before its
    parent, or at the same time; the tree comes out right, parents first."""
    from nuropb_lab.lab.tap.tables import trace_spans

    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    spans = pd.DataFrame(
        {
            "time": [t0 + pd.Timedelta(milliseconds=m) for m in (0.0, -0.5, 5.0, 0.0)],
            "trace_id": "t",
            "kind": ["request", "request", "event", "request"],
            "caller": ["client", "front", "front", "back"],
            "service": ["front", "back", None, "front"],  # back calls front in turn
            "method": ["order", "take", None, "note"],
            "topic": [None, None, "shop.ordered", None],
            "latency_ms": [3.0, 1.0, float("nan"), 0.0],
            "queued_ms": [0.0, 0.0, float("nan"), 0.0],
            "ok": pd.array([True, True, pd.NA, True], dtype="boolean"),
            "error": None,
            "correlation_id": ["a", "b", "a", "c"],
        }
    )
    tree = trace_spans(spans)
    assert list(tree["method"].fillna("event")) == ["order", "take", "note", "event"]
    assert list(tree["depth"]) == [0, 1, 2, 1]
    assert list(tree["parent"]) == [None, "a", "b", "a"]


# --- the firehose: a nuropb client calling a nuropb service and a lab service ----------


def test_firehose_pairs_nuropb_calls_to_nuropb_and_lab_services(
    lab: Lab, nuropb_mesh: str, nuropb_python: Path, management: ManagementAPI
) -> None:
    ref = f"ref-{uuid.uuid4().hex[:6]}"
    lab.serve(Calc(), name="calc")
    tap = lab.tap()
    try:
        assert tap.mode == "firehose" and tap.notice is not None
        assert tap.notice.startswith(f"switched the firehose of {vhost_of(nuropb_mesh)!r} on")
        assert tracing(management, nuropb_mesh)
        with peer_process(nuropb_python, "nuropb_service.py", nuropb_mesh, ref):
            ref_steps = [
                *request("add", 6, params={"a": 2, "b": 3}),
                *request("async_add", 1, params={"a": 1}),
                *request("fail", 2, params={"message": "boom"}, expect_error=True),
                *request("secret", 1, params={"text": "hush"}, encrypted=True),
                {"id": "remember", "op": "command", "method": "remember",
                 "params": {"key": "k", "value": "v"}},
            ]  # fmt: skip
            out = nuropb_client(nuropb_python, nuropb_mesh, ref, ref_steps)
            assert out["results"]["add-5"] == {"result": 5}
            calc_steps = [
                *request("add", 4, params={"a": 40}),
                *request("slow", 1, params={"seconds": 0.2}),
                *request("fail", 1, params={"message": "no"}, expect_error=True),
            ]
            calc_out = nuropb_client(nuropb_python, nuropb_mesh, "calc", calc_steps)
            assert calc_out["results"]["add-3"] == {"result": 42}

            def counted() -> bool:
                calls = tap.calls
                methods = calls[calls["method"].isin(["add", "async_add", "fail", "slow"])]
                return int(methods["answered"].sum()) == 15 and tap.capture.calls.unpaired >= 2

            wait_for(counted, WAIT, "the tap to pair every call")
            # nuropb's service queue and the lab's: their one consumer each, nothing left over
            api = lab.connection().api
            assert lab.runner.run(api.queue_info(f"nuropb-{ref}-sq"), 30) == (0, 1)
            assert lab.runner.run(api.queue_info("nuropb-calc-sq"), 30) == (0, 1)
        calls = tap.calls
        client = f"{vhost_of(nuropb_mesh)}-client"
        to_ref = calls[calls["service"] == ref]
        to_calc = calls[calls["service"] == "calc"]
        # exact counts: what the two nuropb clients sent (the encrypted call's method is unseen)
        assert to_ref["method"].fillna("?").value_counts().to_dict() == {
            "add": 6,
            "fail": 2,
            "async_add": 1,
            "nuropb_describe": 1,  # nuropb fetched the key for the encrypted call
            "?": 1,  # the encrypted request
            "remember": 1,
        }
        assert to_calc["method"].value_counts().to_dict() == {"add": 4, "slow": 1, "fail": 1}
        assert set(calls.loc[calls["service"].isin([ref, "calc"]), "caller"]) == {client}
        # pairs: every request answered, latencies measured, errors by class
        requests = calls[calls["kind"] == "request"]
        answered = requests[requests["service"].isin([ref, "calc"])]
        assert answered["answered"].all() and answered["latency_ms"].notna().all()
        assert (answered["latency_ms"] >= 0).all() and (answered["latency_ms"] < 5000).all()
        assert (answered["queued_ms"] <= answered["latency_ms"] + 1e-6).all()
        slow = to_calc[to_calc["method"] == "slow"].iloc[0]
        assert slow["latency_ms"] >= 190 and slow["in_service_ms"] >= 150 and bool(slow["ok"])
        assert to_ref.loc[to_ref["method"] == "async_add", "latency_ms"].iloc[0] >= 9
        fails = calls[calls["method"] == "fail"]
        assert list(fails["ok"]) == [False, False, False]
        assert sorted(fails["error"]) == [
            "NuropbException",
            "NuropbException",
            "NuropbValidationError",
        ]
        assert bool(to_ref[to_ref["method"] == "add"]["ok"].all())
        # nuropb 0.1.8 answers a failing request twice: the second response is unpaired
        assert tap.capture.calls.unpaired == 2
        # the command: delivered (so queued time known), never answered
        command = to_ref[to_ref["kind"] == "command"].iloc[0]
        assert pd.notna(command["queued_ms"]) and not command["answered"]
        # encrypted: shown as such, with its size, never decoded
        df = tap.df
        secret = df[(df["service"] == ref) & df["encrypted"]]
        assert list(secret["kind"]) == ["request", "response"]
        assert secret["payload"].isna().all() and secret["method"].isna().all()
        assert (secret["bytes"] > 200).all()
        assert pd.isna(to_ref[to_ref["encrypted"]]["ok"].iloc[0])
        # statistics per edge and per method
        edges = tap.stats(window=None).set_index(["caller", "service"])
        assert edges.loc[(client, ref), "calls"] == 12
        assert edges.loc[(client, ref), "errors"] == 2
        # outcomes seen: 7 adds, 2 fails, the describe (not the encrypted call nor the command)
        assert edges.loc[(client, ref), "error_pct"] == pytest.approx(200 / 10)
        assert edges.loc[(client, "calc"), "error_pct"] == pytest.approx(100 / 6)
        methods = tap.stats(by="method", window=None).set_index(["service", "method"])
        assert methods.loc[(ref, "add"), "error_pct"] == 0
        assert methods.loc[(ref, "fail"), "error_pct"] == 100
        assert methods.loc[("calc", "slow"), "p50_ms"] >= 190
        # timings for a load bench: by correlation id, in the order asked
        ids = [*to_calc["correlation_id"], "nope"]
        timings = tap.timings(ids)
        assert list(timings.index) == ids and timings["latency_ms"].iloc[:-1].notna().all()
        assert timings.loc["nope"].isna().all()
    finally:
        tap.stop()
    assert not tracing(management, nuropb_mesh)
    assert not trace_bindings(management, nuropb_mesh)


def test_a_running_tap_splits_a_benchs_latency(
    lab: Lab, nuropb_mesh: str, management: ManagementAPI
) -> None:
    shelf_served(lab)
    lab.bench("shelf.count", {"n": 1}, n=20, concurrency=2)  # no tap: no split
    assert "queued_p50_ms" not in lab.benches().iloc[-1]
    tap = lab.tap("shelf")
    try:
        result = lab.bench("shelf.count", {"n": 1}, n=40, concurrency=4, warmup=0)
        summary = None

        def split() -> bool:
            nonlocal summary
            summary = result.summary()
            return summary.get("split_calls") == 40

        wait_for(split, WAIT, "the tap to have seen the bench's 40 calls")
        assert summary is not None
        assert summary["queued_p50_ms"] >= 0 and summary["service_p50_ms"] >= 0
        assert summary["queued_p99_ms"] <= summary["p99_ms"] + 5  # parts of the whole, give or take
    finally:
        tap.stop()


# --- without the firehose ---------------------------------------------------------------


@pytest.fixture
def tap_user(management: ManagementAPI, nuropb_mesh: str) -> Iterator[str]:
    """A least-privilege user: a management user (not an administrator), allowed to configure
    only its own queues."""
    name = f"tapper-{uuid.uuid4().hex[:6]}"
    vhost = vhost_of(nuropb_mesh)
    url = nuropb_mesh.replace("guest:guest", f"{name}:pw")
    management.call_blocking("PUT", f"users/{name}", {"password": "pw", "tags": "management"})

    def grant(configure: str) -> None:
        body = {"configure": configure, "write": ".*", "read": ".*"}
        management.call_blocking("PUT", f"permissions/{vhost}/{name}", body)

    grant(TAIL_QUEUE_PATTERN)  # its own queues only: what the README tells operators
    try:
        yield url
    finally:
        management.call_blocking("DELETE", f"users/{name}")


class Shelf:
    def count(self, n: int) -> int:
        return n


def shelf_served(lab: Lab) -> None:
    if "shelf" not in lab.connection().served:
        lab.serve(Shelf(), name="shelf")


def test_without_administrator_the_fallback_and_its_one_line(
    lab: Lab, tap_user: str, nuropb_mesh: str, management: ManagementAPI
) -> None:
    shelf_served(lab)
    user_lab = Lab(timeout=10)
    try:
        user_lab.connect(tap_user, alias="user")
        tap = user_lab.tap()
        assert tap.mode == "queue"
        assert tap.notice is not None and tap.notice.count("no firehose") == 1
        assert "is not an administrator" in tap.notice and "no responses" in tap.notice
        assert not tracing(management, nuropb_mesh)
        for i in range(7):
            assert lab.call("shelf.count", n=i) == i  # the service still gets every request
        lab.command("shelf.count", n=99)
        lab.publish("shelf.counted", {"n": 7}, trace_id="t-shelf")
        wait_for(lambda: {"command", "event"} <= set(tap.df["kind"]), WAIT, "the command and event")
        df = tap.df
        mine = df[(df["method"] == "count") | (df["topic"] == "shelf.counted")]
        assert mine["kind"].value_counts().to_dict() == {"request": 7, "command": 1, "event": 1}
        assert "response" not in set(df["kind"])
        calls = tap.calls[tap.calls["method"] == "count"]
        assert len(calls) == 8 and calls["latency_ms"].isna().all() and not calls["answered"].any()
        assert set(calls["caller"]) == {f"{vhost_of(nuropb_mesh)}-client"}
        assert calls["service"].eq("shelf").all()
        assert sorted(mine.loc[mine["kind"] == "request", "payload"].map(lambda p: p["n"])) == list(
            range(7)
        )
        # the graph without responses: the calls' edge has no latency, the event its topic
        edges = {(e["source"], e["target"], e["kind"]): e for e in tap.graph(None).data["edges"]}
        client = f"{vhost_of(nuropb_mesh)}-client"
        shelf = edges[(client, "shelf", "call")]
        # 7 + the command, + a describe if this Lab had not described shelf before
        describes = int((df["method"] == "nuropb_describe").sum())
        assert shelf["count"] == 8 + describes and shelf["p50_ms"] is None
        assert edges[("(unknown)", "shelf.counted", "publish")]["count"] == 1
        tap.stop()
    finally:
        user_lab.close()
    assert not tracing(management, nuropb_mesh)


def test_no_firehose_asked_for_binds_only_existing_services(lab: Lab, nuropb_mesh: str) -> None:
    shelf_served(lab)
    tap = lab.tap("shelf", "ghost", firehose=False)
    try:
        assert tap.mode == "queue" and tap.events is False
        assert tap.notice is not None and "not asked for" in tap.notice and "ghost" in tap.notice
        # a request to a service nobody serves still fails at once (the tap bound no key for it)
        with pytest.raises(nl.NuropbNotDeliveredError):
            lab.call("ghost.x", timeout=5)
        lab.call("shelf.count", n=1)
        wait_for(lambda: (tap.df["method"] == "count").any(), WAIT, "the copy")
        assert set(tap.df["service"]) == {"shelf"} and (tap.df["method"] == "count").sum() == 1
    finally:
        tap.stop()


def test_a_tap_without_the_firehose_taps_services_that_come_later(lab: Lab) -> None:
    shelf_served(lab)
    tap = lab.tap(firehose=False)
    try:
        assert tap.mode == "queue" and tap.notice is not None
        assert "services that come later are tapped within 5 s" in tap.notice
        assert "shelf" in tap.subscription.services
        late = f"late-{uuid.uuid4().hex[:6]}"
        lab.serve(Shelf(), name=late)
        wait_for(lambda: late in tap.subscription.services, WAIT, "the new service bound")
        assert lab.call(f"{late}.count", n=3) == 3
        wait_for(lambda: (tap.df["service"] == late).any(), WAIT, "the copy of its call")
        df = tap.df
        copied = df[(df["service"] == late) & (df["method"] == "count")]
        assert set(copied["kind"]) == {"request"}
        assert list(copied["payload"].map(lambda p: p["n"])) == [3]
    finally:
        tap.stop()
    assert tap.follower is not None
    wait_for(tap.follower.done, WAIT, "the follower to end with the tap")


async def _close_events_connection(management: ManagementAPI, vhost: str) -> int:
    return await close_connections(management, vhost, 1, "-events")


def test_a_tap_rides_out_a_lost_connection(
    lab: Lab, nuropb_mesh: str, management: ManagementAPI
) -> None:
    shelf_served(lab)
    lab.call("shelf.count", n=0)  # described before the tap: only the calls below are seen
    tap = lab.tap("shelf")
    try:
        lab.call("shelf.count", n=1)
        wait_for(lambda: tap.calls["answered"].sum() == 1, WAIT, "the first call")
        closed = asyncio.run(_close_events_connection(management, vhost_of(nuropb_mesh)))
        assert closed == 1
        wait_for(lambda: len(tap.gaps) == 1 and tap.subscription.active, WAIT, "reconnection")
        assert tracing(management, nuropb_mesh)
        assert lab.call("shelf.count", n=2) == 2
        wait_for(lambda: tap.calls["answered"].sum() == 2, WAIT, "the call after it")
        assert tap.gaps[0][1] is not None and tap.state == "live"
    finally:
        tap.stop()


# --- the firehose switch ----------------------------------------------------------------


def test_firehose_on_only_when_off_and_off_with_the_last_tap(
    lab: Lab, nuropb_mesh: str, management: ManagementAPI
) -> None:
    vhost = vhost_of(nuropb_mesh)
    first = lab.tap()
    second = lab.tap("calc")
    assert tracing(management, nuropb_mesh)
    owner = management.call_blocking("GET", f"global-parameters/{marker_name(vhost)}")["value"]
    assert owner["pid"] == os.getpid()
    assert len(trace_bindings(management, nuropb_mesh)) == 4  # two taps, two keys each
    first.stop()
    assert tracing(management, nuropb_mesh)  # the second still taps
    status = lab.status().set_index("alias").loc["m"]
    assert status["taps"] == 1 and status["firehose"].startswith("on for 1 lab tap(s)")
    second.stop()
    assert not tracing(management, nuropb_mesh)
    assert lab.status().set_index("alias").loc["m", "firehose"] == "off"

    # on already, and not by a lab: left on when the tap stops
    management.call_blocking("PUT", f"vhosts/{vhost}", {"tracing": True})
    try:
        tap = lab.tap()
        assert tap.notice is not None and "not switched on by a lab" in tap.notice
        tap.stop()
        assert tracing(management, nuropb_mesh)
    finally:
        management.call_blocking("PUT", f"vhosts/{vhost}", {"tracing": False})

    # disconnect switches it off, as does close
    other = Lab(timeout=10)
    try:
        other.connect(nuropb_mesh)
        other.tap()
        assert tracing(management, nuropb_mesh)
        other.disconnect()
        assert not tracing(management, nuropb_mesh)
        other.connect(nuropb_mesh)
        other.tap()
        assert tracing(management, nuropb_mesh)
    finally:
        other.close()
    assert not tracing(management, nuropb_mesh)


KERNEL = textwrap.dedent(
    """
    import sys, time
    from nuropb_lab.lab import Lab
    lab = Lab(timeout=10)
    lab.connect(sys.argv[1])
    tap = lab.tap()
    print("READY", tap.mode, flush=True)
    if sys.argv[2] == "exit":
        sys.exit(0)  # no stop, no close: the interpreter's exit switches it off
    time.sleep(120)
    """
)


def kernel(url: str, how: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", KERNEL, url, how], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().split() == ["READY", "firehose"]
    return proc


def test_a_killed_kernel_is_told_and_the_next_lab_switches_off(
    nuropb_mesh: str, management: ManagementAPI
) -> None:
    proc = kernel(nuropb_mesh, "hang")
    assert tracing(management, nuropb_mesh)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    # the tap's queue is exclusive: it goes with the dead kernel's connection
    wait_for(lambda: not trace_bindings(management, nuropb_mesh), WAIT, "the tap queue to go")
    assert tracing(management, nuropb_mesh)  # left on
    lab = Lab(timeout=10)
    try:
        lab.connect(nuropb_mesh, alias="next")
        status = lab.status()
        assert "ORPHANED" in status.iloc[0]["firehose"]
        assert f"pid {proc.pid}" in status.attrs["notice"]
        assert lab.firehose().orphaned
        assert not lab.firehose_off().on
        assert not tracing(management, nuropb_mesh)

        # killed again: a new tap takes the orphan over, and switches it off when it stops
        proc = kernel(nuropb_mesh, "hang")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: not trace_bindings(management, nuropb_mesh), WAIT, "the tap queue to go")
        tap = lab.tap()
        assert tap.notice is not None and "left on by a lab that is gone" in tap.notice
        tap.stop()
        assert not tracing(management, nuropb_mesh)
    finally:
        lab.close()


def test_interpreter_exit_switches_the_firehose_off(
    nuropb_mesh: str, management: ManagementAPI
) -> None:
    proc = kernel(nuropb_mesh, "exit")
    assert proc.wait(20) == 0
    assert not tracing(management, nuropb_mesh)


# --- bounded under a flood ----------------------------------------------------------------


def test_bounded_buffer_under_a_flood(lab: Lab, nuropb_mesh: str) -> None:
    tap = lab.tap(max_rows=100, max_calls=50, max_pending=20, pending_ttl=1.0)
    try:
        api = lab.connection().api
        sink = RMQAPI(nuropb_mesh, service_name="sink", service_instance=Shelf())

        async def flood() -> None:
            await sink.connect()
            await sink.disconnect()  # its queue stays, unconsumed: commands to it wait there
            tasks = [api.publish_event("flood.x", {"i": i}, {}) for i in range(1500)]
            tasks += [api.command("sink", "count", {"n": i}, {}) for i in range(300)]
            await asyncio.gather(*tasks)

        lab.runner.run(flood(), 30)
        wait_for(lambda: tap.capture.received >= 1800, WAIT, "the flood")
        s = tap.status()
        assert s["rows"] == 100 and len(tap.df) == 100  # the newest only
        assert s["calls"] == 50 and len(tap.calls) == 50
        assert s["waiting"] <= 20 and tap.capture.calls.evicted >= 280
        wait_for(lambda: tap.status()["waiting"] == 0, WAIT, "the waiting commands to expire")
        assert tap.df["time"].is_monotonic_increasing
    finally:
        tap.stop()
        with contextlib.suppress(Exception):
            lab.runner.run(_purge(lab, "nuropb-sink-sq"), 30)


async def _purge(lab: Lab, queue: str) -> None:
    async with lab.connection().api.transport.temp_channel() as channel:
        await channel.queue_delete(queue)


# --- a known traffic pattern: the graph, traces, save and load, replay ---------------------


class Front:
    """Takes orders; asks the back for stock (carrying the trace id), announces each order."""

    _service_name = "front"

    def __init__(self) -> None:
        self.api: RMQAPI | None = None

    @nl.nuropb_context
    async def order(self, ctx: nl.NuropbContextManager, qty: int) -> int:
        assert self.api is not None
        left = await self.api.request(
            "back", "take", {"qty": qty}, {}, trace_id=current_trace_id(), ttl=5000
        )
        ctx.add_event({"topic": "shop.ordered", "event": {"qty": qty}})
        return int(left)

    @nl.publish_to_mesh(requires_encryption=True)
    def secret(self, text: str) -> str:
        return text[::-1]


class Back:
    _service_name = "back"

    def take(self, qty: int) -> int:
        if qty > 5:
            raise NuropbValidationError(f"not {qty}")
        return 100 - qty


class Audit:
    _service_name = "audit"

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def _handle_event_(self, topic: str, event: Any, target: Any, context: Any) -> None:
        self.seen.append(event)


@pytest.fixture(scope="module")
def shop(lab: Lab, nuropb_mesh: str) -> Iterator[tuple[Lab, Any, Audit]]:
    """10 orders (trace ids t-0 .. t-9, two of them too large), client -> front -> back, each
    good one announced to audit; tapped, and the tap stopped (its rows kept)."""
    front, audit = Front(), Audit()
    front_api = lab.serve(front)
    front.api = front_api
    lab.serve(Back())
    lab.serve(audit, settings={"event_bindings": ["shop.#"]})
    tap = lab.tap("front", "back", "audit", events=True)
    for i in range(10):
        qty = 7 if i in (3, 8) else 1
        try:
            lab.call("front.order", qty=qty, trace_id=f"t-{i}")
        except nl.NuropbException:
            assert qty == 7
    lab.call("front.secret", text="abc")
    wait_for(lambda: len(audit.seen) == 8, WAIT, "audit to see 8 orders")
    wait_for(
        lambda: len(tap.df[tap.df["kind"] == "event"]) == 8 and tap.status()["waiting"] == 0,
        WAIT,
        "the tap to see everything",
    )
    tap.stop()
    yield lab, tap, audit


def test_graph_from_a_known_traffic_pattern(shop: tuple[Lab, Any, Audit], nuropb_mesh: str) -> None:
    _, tap, _ = shop
    client = f"{vhost_of(nuropb_mesh)}-client"
    picture = tap.graph(window=None)
    assert picture.svg.lstrip().startswith("<?xml") and "<svg" in picture.svg
    nodes = {n["name"]: n for n in picture.data["nodes"]}
    assert set(nodes) == {client, "front", "back", "shop.ordered", "audit"}
    assert nodes[client]["kind"] == "client" and nodes["shop.ordered"]["kind"] == "topic"
    assert nodes[client]["column"] < nodes["front"]["column"] < nodes["back"]["column"]
    edges = {(e["source"], e["target"], e["kind"]): e for e in picture.data["edges"]}
    order = edges[(client, "front", "call")]
    assert order["count"] == 12  # 10 orders, a describe (the first call's) and the secret
    # the secret's outcome is encrypted: 11 outcomes seen, 2 of them errors
    assert order["errors"] == 2 and order["error_pct"] == pytest.approx(200 / 11)
    take = edges[("front", "back", "call")]
    assert take["count"] == 10 and take["errors"] == 2 and take["p50_ms"] is not None
    assert edges[("front", "shop.ordered", "publish")]["count"] == 8
    assert edges[("shop.ordered", "audit", "deliver")]["count"] == 8
    assert len(edges) == 4


def test_traces_and_the_waterfall(shop: tuple[Lab, Any, Audit], nuropb_mesh: str) -> None:
    _, tap, _ = shop
    client = f"{vhost_of(nuropb_mesh)}-client"
    traces = tap.traces().set_index("trace_id")
    ours = traces.loc[[f"t-{i}" for i in range(10)]]
    assert ours["spans"].to_dict() == {f"t-{i}": 2 if i in (3, 8) else 3 for i in range(10)}
    assert ours["errors"].to_dict() == {f"t-{i}": 2 if i in (3, 8) else 0 for i in range(10)}
    assert (ours["total_ms"] > 0).all()
    trace = tap.trace("t-1")
    spans = trace.df
    assert list(spans["kind"]) == ["request", "request", "event"]
    assert list(spans["depth"]) == [0, 1, 1], spans.to_string()
    assert list(spans["caller"]) == [client, "front", "front"]
    assert spans.iloc[1]["parent"] == spans.iloc[0]["correlation_id"]
    assert spans.iloc[2]["parent"] == spans.iloc[0]["correlation_id"]
    assert spans.iloc[0]["latency_ms"] >= spans.iloc[1]["latency_ms"]
    data = trace.picture.data
    assert [s["depth"] for s in data["spans"]] == [0, 1, 1]
    assert data["spans"][0]["label"] == f"{client} → front.order"
    assert data["spans"][2]["label"].strip() == "front → shop.ordered"
    assert "<svg" in trace._repr_html_()
    failed = tap.trace("t-3").df
    assert list(failed["ok"]) == [False, False] and list(failed["error"]) == [
        "NuropbValidationError",
        "NuropbValidationError",
    ]


def test_save_and_load(shop: tuple[Lab, Any, Audit], tmp_path: Path) -> None:
    _, tap, _ = shop
    path = tap.save(tmp_path / "shop.jsonl")
    plain = pd.read_json(path, lines=True)
    assert len(plain) == len(tap.df)  # a format pandas reads as it is
    loaded = nl.load_tap(path)
    assert len(loaded.df) == len(tap.df) and len(loaded.calls) == len(tap.calls)
    assert list(loaded.calls["correlation_id"]) == list(tap.calls["correlation_id"])
    assert loaded.calls["latency_ms"].round(3).tolist() == tap.calls["latency_ms"].round(3).tolist()
    live = {
        (e["source"], e["target"], e["kind"]): e["count"] for e in tap.graph(None).data["edges"]
    }
    back = {
        (e["source"], e["target"], e["kind"]): e["count"] for e in loaded.graph(None).data["edges"]
    }
    assert back == live
    assert list(loaded.trace("t-1").df["depth"]) == [0, 1, 1]


def test_replay_a_captured_and_a_dead_lettered_request(shop: tuple[Lab, Any, Audit]) -> None:
    lab, tap, _ = shop
    df = tap.df
    first = df[(df["kind"] == "request") & (df["trace_id"] == "t-0") & (df["service"] == "front")]
    assert lab.replay(first.iloc[0]) == 99
    assert lab.replay(first.iloc[0], qty=2) == 98  # with an edit
    assert lab.history(1).iloc[0]["trace_id"] == "t-0"
    # the failed order was rejected to the dead-letter queue: replayed from there, fixed
    dead = lab.dead_letters()
    row = dead[(dead["trace_id"] == "t-3") & (dead["service"] == "front")].iloc[0]
    assert lab.replay(row, qty=3) == 97
    with pytest.raises(nl.NuropbValidationError):
        lab.replay(row)  # as it was: fails again
    # by correlation id; an encrypted request cannot be replayed
    cid = first.iloc[0]["correlation_id"]
    assert lab.replay(cid, {"qty": 4}) == 96
    secret = df[(df["kind"] == "request") & df["encrypted"]].iloc[0]
    with pytest.raises(nl.LabError, match="encrypted"):
        lab.replay(secret)


def test_tap_view_and_graph_view(lab: Lab, shop: tuple[Lab, Any, Audit]) -> None:
    from nuropb_lab.widgets import GraphView, TapView

    _, tap, _ = shop
    view = tap.widget(rows=5)
    try:
        assert isinstance(view, TapView) and len(view.shown) == 5
        assert "<svg" in view.graph.picture.value
        assert {n["name"] for n in view.graph.data["nodes"]} >= {"front", "back"}
        view.filter.value = "back.take"
        view.draw()
        assert view.shown and all(r[3] == "back" for r in view.shown)
        view.kind.value = "event"
        view.filter.value = ""
        view.draw()
        assert {r[1] for r in view.shown} == {"event"}
        view.pause_button.value = True
        assert tap.paused
        view.pause_button.value = False
        assert not tap.paused
    finally:
        view.close()
    graph = tap.graph_view(window=3600, interval=0.2)
    try:
        assert isinstance(graph, GraphView) and graph.redraws == 1
        assert "front" in graph.picture.value
    finally:
        graph.close()


# --- the magic ----------------------------------------------------------------------------


def run(ip: InteractiveShell, line: str) -> tuple[Any, str, str]:
    with capture_output() as captured:
        value = ip.run_line_magic("nuropb", line)
    return value, captured.stdout, captured.stderr


def test_the_magic(nuropb_mesh: str, shop: tuple[Lab, Any, Audit]) -> None:
    _, tap, _ = shop
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nuropb_lab")
    try:
        run(ip, f"connect {nuropb_mesh} --alias tapmagic")
        value, _, err = run(ip, "tap back --no-firehose --max 50 -o t")
        assert value is ip.user_ns["t"] and value.mode == "queue" and value.max_rows == 50
        assert err.count("note: no firehose (not asked for)") == 1
        value.stop()
        _, out, _ = run(ip, "firehose")
        assert out.strip() == f"firehose of {vhost_of(nuropb_mesh)!r}: off"
        picture, out, _ = run(ip, "graph --static")
        assert "started a tap" in out and "<svg" in picture.svg
        for started in get_lab().taps:
            started.stop()
        row = tap.df[(tap.df["kind"] == "request") & (tap.df["service"] == "back")].iloc[0]
        ip.user_ns["row"] = row
        answer, _, err = run(ip, "replay $row qty=5")
        assert answer == 95 and err == ""
        _, _, err = run(ip, "replay $row qty=9")
        assert err.strip() == "NuropbValidationError: not 9"
    finally:
        get_lab().disconnect("tapmagic")
