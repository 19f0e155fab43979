"""A hostile peer on the mesh can do nothing to the notebook (issue 20, items 5-7): a served
object answers exactly what its describe lists; check_servable refuses file, process and
network operations; what the lab keeps of what the mesh sends is bounded in bytes (taps,
tails, topic rates, discovery, remote error classes, the history); JSON from the mesh is
decoded within the codec's limits everywhere (dead letters, replay, the tap); the management
API client keeps its credentials to the host it was given.

The attacker is made of aio-pika and the standard library only: no nuropb_lab code runs on
its side. Memory is measured as the process's resident set (/proc/self/statm)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import pandas as pd
import pytest
from support import wait_for

import nuropb_lab as nl
from nuropb_lab.lab import Lab, LabError, check_servable
from nuropb_lab.mesh import RMQAPI, ManagementAPI, ManagementUnavailable, limits, parse_amqp_url

T = TypeVar("T")

PEERS = Path(__file__).resolve().parent / "peers"
RPC = "nuropb-rpc-exchange"
EVENTS = "nuropb-events-exchange"
DLQ = "nuropb-dl-queue"
HEADERS = {"nuropb_protocol": "0.1.1", "nuropb_version": "0.1.8", "encrypted": ""}
WAIT = 60.0
MB = 1024 * 1024


def rss() -> int:
    """This process's resident set, in bytes, once what is free is given back (glibc keeps
    freed heap memory, which would count what a flood passed through as kept)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def message(kind: str, body: Any, **properties: Any) -> aio_pika.Message:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**HEADERS, "nuropb_type": kind}
    return aio_pika.Message(raw, headers=headers, content_type="application/json", **properties)


class Peer:
    """The attacker: an aio-pika connection on a loop of its own, in a thread, so that it
    answers while the test blocks on the Lab."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        self.asked: list[tuple[str, str]] = []  # (routing key, method) of each request seen
        self.run(self._open())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _open(self) -> None:
        self.connection = await aio_pika.connect_robust(self.url)
        self.channel = await self.connection.channel()

    def close(self) -> None:
        if self.connection is not None:
            self.run(self.connection.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def publish(self, exchange: str, key: str, msg: aio_pika.Message) -> None:
        assert self.channel is not None
        target = (
            self.channel.default_exchange
            if not exchange
            else await self.channel.get_exchange(exchange, ensure=False)
        )
        await target.publish(msg, routing_key=key)

    async def answer(
        self, queue_name: str, keys: list[str], respond: Callable[[str, dict[str, Any]], Any]
    ) -> None:
        """Bind a queue of its own to the RPC exchange with ``keys`` and answer each request
        with ``respond(key, body)`` (a result, or an {"error": ...} dict as the error)."""
        assert self.channel is not None
        # durable: a strict broker denies transient queues that are not exclusive
        queue = await self.channel.declare_queue(queue_name, durable=True, auto_delete=True)
        for key in keys:
            await queue.bind(RPC, routing_key=key)

        async def on_message(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with incoming.process():
                body = json.loads(incoming.body)
                key = incoming.routing_key or ""
                self.asked.append((key, body.get("method")))
                outcome = respond(key, body)
                error = outcome.pop("error", None) if isinstance(outcome, dict) else None
                response = {
                    "tag": "response",
                    "correlation_id": incoming.correlation_id,
                    "context": body.get("context") or {},
                    "trace_id": body.get("trace_id"),
                    "result": None if error is not None else outcome,
                    "error": error,
                    "warning": None,
                    "reply_to": "",
                }
                await self.publish(
                    "",
                    incoming.reply_to or "",
                    message("response", response, correlation_id=incoming.correlation_id),
                )

        await queue.consume(on_message)

    async def request(self, service: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """A request as any client sends it; the whole response body."""
        assert self.channel is not None
        replies = await self.channel.declare_queue(exclusive=True)
        correlation_id = uuid.uuid4().hex
        body = {
            "tag": "request",
            "service": service,
            "method": method,
            "params": params,
            "context": {},
            "correlation_id": correlation_id,
            "trace_id": None,
        }
        msg = message("request", body, correlation_id=correlation_id, reply_to=replies.name)
        await self.publish(RPC, service, msg)
        async with replies.iterator(timeout=20) as answers:
            async for answer in answers:
                await answer.ack()
                found: dict[str, Any] = json.loads(answer.body)
                return found
        raise AssertionError("no answer")


@pytest.fixture
def peer(mesh_url: str) -> Iterator[Peer]:
    peer = Peer(mesh_url)
    yield peer
    peer.close()


# --- 5. serving exactly what is listed --------------------------------------------------

RAN: list[str] = []


class Gadget:
    def __init__(self) -> None:
        RAN.append("Gadget")


class Vault:
    """A served object with things a caller must not reach."""

    Gadget = Gadget  # a class: calling it runs its __init__

    def __init__(self) -> None:
        self.stored = functools.partial(self._note, "partial")  # a callable attribute

    def ping(self) -> str:
        return "pong"

    @nl.publish_to_mesh(hide_method=True)
    def hidden(self) -> str:
        RAN.append("hidden")
        return "the secret"

    def _note(self, what: str) -> None:
        RAN.append(what)


def test_a_served_object_answers_exactly_what_its_describe_lists(lab: Lab, peer: Peer) -> None:
    vault = Vault()
    lab.serve(vault, name="vault")
    Vault.late = lambda self: RAN.append("late")  # type: ignore[attr-defined]  # after serve
    try:
        described = peer.run(peer.request("vault", "nuropb_describe", {}))
        assert sorted(described["result"]["methods"]) == ["ping"]
        assert peer.run(peer.request("vault", "ping", {}))["result"] == "pong"
        for method in ("hidden", "stored", "Gadget", "late"):
            answer = peer.run(peer.request("vault", method, {}))
            assert answer["result"] is None
            assert answer["error"] == {
                "error": "NuropbHandlingError",
                "description": f"Unknown method {method}",
            }, method
        assert RAN == []  # nothing ran
    finally:
        del Vault.late  # type: ignore[attr-defined]
        lab.runner.run(lab.connection().served.pop("vault").disconnect(), 30)
        RAN.clear()


def test_check_servable_refuses_file_process_and_network_operations(
    lab: Lab, tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    with pytest.raises(LabError) as refused:
        check_servable(path)
    said = str(refused.value)
    assert "\n" not in said
    for name in ("write_text", "unlink", "chmod"):
        assert name in said, said
    with pytest.raises(LabError, match="write_text"):
        lab.serve(path, name="notes")
    assert "notes" not in lab.connection().served
    check_servable(path, allow_any=True)  # --unsafe: the user's call

    class Cleaner:
        def __init__(self) -> None:
            self.sweep = shutil.rmtree  # a dangerous function under a harmless name

        def status(self) -> str:
            return "ok"

    with pytest.raises(LabError, match=r"sweep \(shutil\.rmtree\)"):
        check_servable(Cleaner())
    with socket.socket() as sock, pytest.raises(LabError, match="connect"):
        check_servable(sock)
    with path.open("w") as handle, pytest.raises(LabError, match="write"):
        check_servable(handle)
    check_servable(Vault())  # an object of one's own: served as it is


# --- 6. byte budgets ----------------------------------------------------------------------


def flood(url: str, *args: object) -> None:
    """peers/hostile_flood.py: publishes a flood from a process of its own."""
    done = subprocess.run(
        [sys.executable, str(PEERS / "hostile_flood.py"), url, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.strip() == "DONE", done.stderr[-3000:]


def test_a_tap_and_a_tail_flooded_with_huge_fields_keep_bounded_bytes(
    lab: Lab, mesh_url: str
) -> None:
    tail = lab.tail("flood.#")
    tap = lab.tap()  # the firehose: requests, responses and events
    try:
        assert tap.mode == "firehose"
        before = rss()
        n = 40  # of each kind, every field 0.7 MB (bodies under the tap's 4 MiB to decode)
        flood(mesh_url, "big", n, 700_000)  # before the fix: 2 MB and more kept a row
        wait_for(lambda: tail.received + tail.status()["undecodable"] >= n + 1, WAIT, "the tail")
        wait_for(lambda: tap.capture.received >= 3 * n + 1, WAIT, "the tap")
        grown = rss() - before
        assert grown < 64 * MB, f"RSS grew by {grown / MB:.0f} MB for {4 * n + 1} rows"
        for kept in (tap.status(), tail.status()):
            assert 0 < kept["kept_bytes"] <= kept["max_bytes"]
        assert tail.status()["kept_bytes"] <= n * (limits.ROW_BYTES + 80 * 1024)
        assert tap.status()["kept_bytes"] <= (3 * n + 1) * (limits.ROW_BYTES + 16 * 1024)
        df = tap.df
        for column in ("method", "topic", "trace_id"):
            assert df[column].dropna().map(len).max() <= limits.TEXT_BYTES + 32, column
        assert df["error"].dropna().map(len).max() <= limits.ERROR_BYTES + 32
        assert df["context"].dropna().map(lambda c: len(str(c))).max() <= limits.CONTEXT_BYTES + 32
        assert df[df["encrypted"].eq(False) & df["kind"].ne("event")]["truncated"].all()
        deep = df[df["error"].str.contains("nested 901 levels", na=False)]
        assert len(deep) == 1, "a body nested past the codec's depth is not decoded"
        repr(df)  # printable
        events = tail.df
        assert events["topic"].map(len).max() <= limits.TEXT_BYTES + 32
        assert events["event"].map(lambda e: len(str(e))).max() <= limits.EVENT_BYTES + 32
        assert tail.status()["undecodable"] == 1  # the deep one
    finally:
        tap.stop()
        tail.stop()


def test_distinct_topics_are_capped(lab: Lab, mesh_url: str) -> None:
    n = 20 * limits.RATE_TOPICS  # every one a topic of its own
    tail = lab.tail("spray.#", max_rows=1000, backlog=2 * n)
    tap = lab.tap(firehose=False, max_rows=1000, backlog=2 * n)
    try:
        before = rss()
        flood(mesh_url, "topics", n)
        wait_for(lambda: tail.received >= n, WAIT, "the tail")
        wait_for(lambda: tap.capture.received >= n, WAIT, "the tap")
        rates = tail.rates()
        assert len(rates) <= limits.RATE_TOPICS + 1
        other = rates[rates["topic"] == limits.OTHER_TOPICS]
        assert len(other) == 1 and int(other["events"].iloc[0]) >= rates["events"].sum() / 2
        assert len(tail) == 1000 and len(tap) == 1000
        grown = rss() - before
        assert grown < 64 * MB, f"RSS grew by {grown / MB:.0f} MB"
    finally:
        tap.stop()
        tail.stop()


def test_one_discovery_probes_a_bounded_number_of_services(lab: Lab, peer: Peer) -> None:
    keys = [f"fake-{i:04d}" for i in range(4 * limits.DISCOVERY_PROBES)]
    padding = "p" * 10_000

    def describe(key: str, body: dict[str, Any]) -> Any:
        return {"service_name": key, "description": padding, "methods": {}, "warnings": []}

    peer.run(peer.answer("nuropb-fake-flood-rq", keys, describe))
    frame = lab.services()
    described = [key for key, method in peer.asked if method == "nuropb_describe"]
    assert 0 < len(described) <= limits.DISCOVERY_PROBES
    fakes = frame[frame["service"].str.startswith("fake-")]
    assert len(fakes) == len(keys)  # all listed
    unprobed = fakes[fakes["error"].str.startswith("not probed", na=False)]
    assert len(unprobed) == len(keys) - len(described)
    assert f"{limits.DISCOVERY_PROBES}" in unprobed["error"].iloc[0]


def test_remote_error_names_share_one_class(lab: Lab, peer: Peer) -> None:
    describe = {
        "service_name": "liar",
        "methods": {"x": {"requires_encryption": False, "parameters": {}}},
        "encrypted_methods": False,
    }

    def answer(key: str, body: dict[str, Any]) -> Any:
        if body["method"] == "nuropb_describe":
            return dict(describe)
        n = body["params"]["n"]
        name = "Q" * MB if n == 0 else f"Invented{n}Error"
        return {"error": {"error": name, "description": "d" * (2 * MB if n == 0 else 10)}}

    peer.run(peer.answer("nuropb-liar-x-rq", ["liar"], answer))
    classes = set()
    for n in range(50):
        with pytest.raises(nl.NuropbMessageError) as raised:
            lab.call("liar.x", n=n, check=False)
        classes.add(type(raised.value))
        if n:
            assert getattr(raised.value, "remote_name", None) == f"Invented{n}Error"
    assert len(classes) == 1
    history = lab.history(50)
    assert history["error"].map(len).max() <= limits.TEXT_BYTES + 32
    assert history["description"].map(len).max() <= limits.ERROR_BYTES + 32


# --- 7. JSON within the codec's limits, the management client -------------------------------


def test_a_deeply_nested_dead_letter(lab: Lab, peer: Peer) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    msg = message("request", deep, correlation_id="deep-h20", reply_to="nuropb-x-y-rq")
    peer.run(peer.publish("", DLQ, msg))
    wait_for(
        lambda: "deep-h20" in set(lab.dead_letters(1000)["correlation_id"]), WAIT, "the letter"
    )
    rows = lab.dead_letters(1000)
    row = rows[rows["correlation_id"] == "deep-h20"].iloc[0]
    assert pd.isna(row["method"]) and row["body"].startswith("(not decoded: body is nested")
    assert len(row["body"]) <= 400
    with pytest.raises(LabError, match="nested"):
        lab.replay("deep-h20")
    with pytest.raises(LabError, match="nested"):
        lab.replay(row)


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records the Authorization header of each request; redirects when told to."""

    seen: list[tuple[int, str | None]]
    redirect_to: str | None = None

    def do_GET(self) -> None:
        self.seen.append((self.server.server_address[1], self.headers.get("Authorization")))
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
            self.end_headers()
            return
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def http_server(
    seen: list[tuple[int, str | None]], redirect_to: str | None = None
) -> Iterator[str]:
    handler = type("Handler", (Recorder,), {"seen": seen, "redirect_to": redirect_to})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_no_credentials_follow_a_redirect() -> None:
    seen: list[tuple[int, str | None]] = []
    with http_server(seen) as other, http_server(seen, redirect_to=other) as redirecting:
        api = ManagementAPI(redirecting, "guest", "s3cr3t")
        with pytest.raises(ManagementUnavailable, match="redirect") as refused:
            api.call_blocking("GET", "overview")
        assert "s3cr3t" not in str(refused.value)
    other_port = int(other.rsplit(":", 1)[1])
    assert [auth for port, auth in seen if port == other_port] == []
    assert len(seen) == 1  # the redirecting one was asked, nothing followed


def test_plain_http_warned_and_refused_for_an_amqps_mesh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUROPB_MANAGEMENT_URL", raising=False)
    monkeypatch.delenv("NUROPB_MANAGEMENT_ALLOW_HTTP", raising=False)
    with pytest.warns(UserWarning, match="plain http"):
        ManagementAPI("http://10.11.12.13:15672", "u", "p")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ManagementAPI("http://127.0.0.1:15672", "u", "p")  # loopback: nothing said
        ManagementAPI("https://10.11.12.13:15671", "u", "p")
    seen: list[tuple[int, str | None]] = []
    with http_server(seen) as plain:
        target = parse_amqp_url("amqps://u:s3cr3t@127.0.0.1:5671/mesh")
        api = ManagementAPI.for_target(target, plain)
        with pytest.raises(ManagementUnavailable, match="amqps") as refused:
            api.call_blocking("GET", "overview")
        assert "NUROPB_MANAGEMENT_ALLOW_HTTP" in str(refused.value)
        assert seen == []
        allowed = ManagementAPI.for_target(target, plain, allow_http=True)
        assert allowed.call_blocking("GET", "overview") == {"ok": True}
        monkeypatch.setenv("NUROPB_MANAGEMENT_ALLOW_HTTP", "1")
        assert ManagementAPI.for_target(target, plain).call_blocking("GET", "overview") == {
            "ok": True
        }
    assert len(seen) == 2 and all(auth for _, auth in seen)


def test_the_management_override_applies_to_the_host_it_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, str | None]] = []
    with http_server(seen) as broker_a:
        monkeypatch.setenv("NUROPB_MANAGEMENT_URL", broker_a)  # A's endpoint: host 127.0.0.1
        b = parse_amqp_url("amqp://guest:guest@localhost:5672/mesh")  # broker B, another host
        api_b = ManagementAPI.for_target(b)
        assert api_b.base_urls == ["http://localhost:15672"]
        api_b.call_blocking("GET", "overview")  # B's own API (the test broker)
        assert seen == []  # B's password never went to A
        a = parse_amqp_url("amqp://guest:guest@127.0.0.1:5672/mesh")
        assert ManagementAPI.for_target(a).base_urls == [broker_a]
        monkeypatch.setenv(
            "NUROPB_MANAGEMENT_URL", f"localhost={broker_a}, rabbit2=https://mgmt2:443"
        )
        assert ManagementAPI.for_target(b).base_urls == [broker_a]
        assert ManagementAPI.for_target(a).base_urls == ["http://127.0.0.1:15672"]
        two = parse_amqp_url("amqp://u:p@rabbit2:5672/mesh")
        assert ManagementAPI.for_target(two).base_urls == ["https://mgmt2:443"]


def test_the_transport_settings_show_no_password() -> None:
    api = RMQAPI("amqp://h20user:s3cr3t-h20@127.0.0.1:5672/mesh")
    shown = [repr(api), repr(api.transport.config), repr(api.transport.rmq_configuration)]
    shown.append(
        repr(
            RMQAPI(
                {"host": "127.0.0.1", "username": "u", "password": "s3cr3t-h20", "vhost": "mesh"}
            ).transport.config
        )
    )
    for text in shown:
        assert "s3cr3t-h20" not in text, text
