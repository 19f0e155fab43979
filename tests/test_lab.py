"""The Lab API directly (no IPython): connect, discover, describe, call, tail, keys, serve."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import time
from typing import Any

import pandas as pd
import pytest
from support import LabSetup, close_connections, ctrl_c_after, wait_for

import nuropb_lab as nl
from nuropb_lab.lab import Lab, LabError, Settings, Tail
from nuropb_lab.lab.faces import Face
from nuropb_lab.lab.tap import Tap
from nuropb_lab.mesh import ManagementAPI


class Inventory:
    """Stock levels."""

    _service_name = "inventory"
    _version = "3.2"

    def stock(self, sku: str, warehouse: str = "main") -> dict[str, Any]:
        """Units of a SKU."""
        return {"sku": sku, "warehouse": warehouse, "units": 7}

    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    def fail(self) -> None:
        raise nl.NuropbValidationError("bad sku")

    @nl.publish_to_mesh(requires_encryption=True)
    def secret(self, code: str) -> str:
        return code.upper()

    def ping(self) -> str:
        return "pong"


@pytest.fixture(scope="module")
def lab_setup() -> LabSetup:
    settings = {"timeout": 10, "describe_timeout": 2}
    return LabSetup(alias="m", settings=settings, serve={"inventory": Inventory()})


def test_connect_status_masks_the_password(lab: Lab, mesh_url: str) -> None:
    status = lab.status()
    assert list(status["alias"]) == ["m"]
    row = status.iloc[0]
    assert row["current"] and row["state"] == "connected" and row["served"] == "inventory"
    assert "guest:***@" in row["url"] and ":guest@" not in row["url"]
    assert "guest:guest" not in repr(lab.connection()) + repr(lab)


def test_services_lists_and_describes(lab: Lab) -> None:
    frame = lab.services()
    assert list(frame.columns) == [
        "service",
        "instances",
        "queued",
        "methods",
        "encrypted",
        "version",
        "description",
        "error",
    ]
    row = frame.set_index("service").loc["inventory"]
    assert row["instances"] == 1 and row["queued"] == 0 and row["methods"] == 5
    assert row["encrypted"] and row["version"] == "3.2" and row["description"] == "Stock levels."
    assert pd.isna(row["error"])
    assert "inventory" in lab.service_names()
    assert "stock" in lab.method_names("inventory")


def test_describe_frame(lab: Lab) -> None:
    frame = lab.describe("inventory", "stock")
    assert frame.to_dict("records") == [
        {
            "method": "stock",
            "parameter": "sku",
            "type": "str",
            "required": True,
            "default": None,
            "requires_encryption": False,
            "description": "Units of a SKU.",
        },
        {
            "method": "stock",
            "parameter": "warehouse",
            "type": "str",
            "required": False,
            "default": "main",
            "requires_encryption": False,
            "description": "Units of a SKU.",
        },
    ]
    everything = lab.describe("inventory")
    assert set(everything["method"]) == {"stock", "slow", "fail", "secret", "ping"}
    assert bool(everything.set_index("method").loc["secret", "requires_encryption"])
    with pytest.raises(LabError, match="has no method 'nope'"):
        lab.describe("inventory", "nope")


def test_calls_and_history(lab: Lab) -> None:
    before = len(lab.history())
    assert lab.call("inventory.stock", sku="A1") == {"sku": "A1", "warehouse": "main", "units": 7}
    assert lab.call("inventory.stock", {"sku": "B"}, warehouse="x")["warehouse"] == "x"
    with pytest.raises(nl.NuropbValidationError, match="bad sku"):
        lab.call("inventory.fail")
    with pytest.raises(nl.NuropbTimeoutError):
        lab.call("inventory.slow", seconds=2, timeout=0.2)
    raw = lab.call("inventory.ping", raw=True, trace_id="trace-7")
    assert raw["result"] == "pong" and raw["trace_id"] == "trace-7"
    history = lab.history()
    assert len(history) == before + 5
    last = history.tail(5)
    assert list(last["ok"]) == [True, True, False, False, True]
    assert list(last["error"])[2:4] == ["NuropbValidationError", "NuropbTimeoutError"]
    assert last.iloc[-1]["trace_id"] == "trace-7"
    assert last.iloc[-1]["correlation_id"] == raw["correlation_id"]
    assert (last["latency_ms"] > 0).all() and set(last["service"]) == {"inventory"}
    assert lab.history(2).shape[0] == 2


def test_encryption_is_automatic_and_plain_is_refused(lab: Lab) -> None:
    assert lab.call("inventory.secret", code="abc") == "ABC"
    assert bool(lab.history(1).iloc[0]["encrypted"])
    with pytest.raises(nl.EncryptionRefused, match="requires encryption"):
        lab.call("inventory.secret", code="abc", encrypt=False)
    assert lab.call("inventory.ping", encrypt=True) == "pong"
    keys = lab.keys("inventory").iloc[0]
    assert keys["public_key"] and keys["key_size"] == 2048 and len(keys["fingerprint"]) == 64
    assert keys["encrypted_methods"] == ["secret"]
    assert keys["encrypted_calls"] >= 2 and keys["encrypted_failed"] == 0


def test_bad_targets_and_aliases(lab: Lab) -> None:
    with pytest.raises(LabError, match=r"SERVICE\.METHOD"):
        lab.call("nodot")
    with pytest.raises(LabError, match="no connection named 'zz'"):
        lab.call("inventory.ping", alias="zz")
    with pytest.raises(nl.NuropbNotDeliveredError):
        lab.call("ghost.ping")
    current = lab.connection()
    other = dataclasses.replace(current.api.target, username="someone-else")
    with pytest.raises(LabError, match=f"connection {current.alias!r} is to amqp://"):
        lab.connect(other, alias=current.alias)


def test_commands_and_publish(lab: Lab) -> None:
    tail = lab.tail("lab.test.*", max_rows=50)
    lab.publish("lab.test.a", {"n": 1, "topic": "shadowed"}, context={"c": 1}, trace_id="t")
    lab.command("inventory.ping")
    with pytest.raises(nl.NuropbNotDeliveredError):
        lab.command("ghost.ping")
    wait_for(lambda: len(tail) == 1, what="the event")
    frame = tail.df
    assert list(frame.columns[:7]) == [
        "received_at",
        "topic",
        "event",
        "context",
        "trace_id",
        "correlation_id",
        "target",
    ]
    assert frame.iloc[0]["n"] == 1 and frame.iloc[0]["event.topic"] == "shadowed"
    assert frame.iloc[0]["topic"] == "lab.test.a" and frame.iloc[0]["trace_id"] == "t"
    assert str(frame["received_at"].dtype).startswith("datetime64")
    # the ghost's command was not sent (its describe found no queue): only the other counts
    assert list(lab.history(1)[["kind", "service"]].iloc[0]) == ["command", "inventory"]
    tail.stop()


def test_tail_holds_exactly_the_newest_rows(lab: Lab) -> None:
    # a backlog past the burst: this test is about the ring buffer, not the broker's bound
    tail = lab.tail("flood.#", max_rows=100, backlog=20_000)

    async def flood() -> None:
        api = lab.connection().api
        for i in range(10_500):
            api.publish_event("flood.x" if i % 2 else "flood.y", {"i": i}, {})
        await asyncio.sleep(0)

    lab.runner.run(flood(), 30)
    wait_for(lambda: tail.received == 10_500, timeout=90, what="all flood events")
    frame = tail.df
    assert len(frame) == 100
    assert list(frame["i"]) == list(range(10_400, 10_500))
    rates = tail.rates().set_index("topic")
    assert set(rates.index) == {"flood.x", "flood.y"}
    assert rates["events"].sum() == 10_500 and (rates["per_second"] > 0).all()
    tail.pause()
    lab.publish("flood.z", {"i": -1})
    wait_for(lambda: tail.skipped == 1, what="the skipped event")
    assert len(tail) == 100 and tail.state == "paused"
    tail.resume()
    tail.clear()
    assert len(tail) == 0 and tail.df.empty
    tail.stop()
    assert tail.state == "stopped" and tail not in lab.tails


def test_tails_at_once_and_repr(lab: Lab) -> None:
    a = lab.tail("multi.a")
    b = lab.tail("multi.#")
    lab.publish("multi.a", 1)
    wait_for(lambda: len(a) == 1 and len(b) == 1, what="both tails")
    assert "live" in repr(a) and "1/10000 rows" in repr(a)
    a.stop()
    b.stop()


def test_async_twins(lab: Lab) -> None:
    async def main() -> Any:
        return await lab.acall("inventory.stock", sku="Z"), await lab.aservices()

    result, frame = asyncio.run(main())
    assert result["sku"] == "Z" and "inventory" in set(frame["service"])


def test_a_tail_stops_from_another_loop_too(lab: Lab) -> None:
    async def main() -> Any:
        tail = await lab.atail("astop.#")
        await tail.astop()
        await tail.astop()  # once is enough; again does nothing
        return tail

    tail = asyncio.run(main())
    assert tail.stopped and tail.state == "stopped" and tail not in lab.tails


def faces_of(kind: type) -> dict[str, Face[Any, Any]]:
    return {
        name: face
        for name in dir(kind)
        if isinstance(face := inspect.getattr_static(kind, name), Face)
    }


def test_each_face_has_its_name_doc_signature_and_async_twin() -> None:
    faces = faces_of(Lab)
    assert {"call", "acall", "start_call", "tap", "atap", "start_tap", "bench", "abench"} <= set(
        faces
    )
    for name, face in faces.items():
        function = getattr(Lab, name)
        assert function.__name__ == name and function.__qualname__ == f"Lab.{name}"
        assert function.__doc__ and function.__doc__ == face.method.__doc__, name
        parameters = inspect.signature(function).parameters
        assert list(parameters)[1:] == list(inspect.signature(face.method).parameters)[1:]
        if face.kind == "blocking":  # what waits for I/O can be awaited too
            twin = faces.get(f"a{name}")
            assert twin is not None and twin.kind == "awaitable", name
            assert twin.method is face.method
            assert inspect.iscoroutinefunction(getattr(Lab, f"a{name}"))
        if name.startswith("start_"):  # starts and returns a handle at once
            assert face.kind in ("background", "delegate"), name
    assert {"check", "acheck", "start_check", "prepare_check", "mock", "amock"} <= set(faces)
    for name in ("bench", "capacity", "check"):  # a run's own blocking face, and its twin
        assert faces[f"a{name}"].kind == "awaitable"
    lab = Lab()
    signature = inspect.signature(lab.call)
    assert "self" not in signature.parameters and signature.return_annotation is Any
    assert signature.parameters["timeout"].annotation == float | None
    assert inspect.signature(lab.start_call).return_annotation == concurrent.futures.Future[Any]
    assert inspect.signature(Lab.start_tap).return_annotation == concurrent.futures.Future[Tap]
    assert inspect.signature(Lab.tail).return_annotation is Tail


def test_settings_are_checked_once_for_the_lab() -> None:
    lab = Lab(timeout=5)
    assert lab.timeout == lab.settings.timeout == 5.0
    lab.describe_timeout = 0.5
    assert lab.settings.describe_timeout == 0.5
    for name, value in (("timeout", 0), ("tail_max_rows", 0), ("failover_strategy", "random")):
        with pytest.raises(nl.OptionError, match=name):
            setattr(lab, name, value)
    with pytest.raises(nl.OptionError, match="timeout must be > 0 seconds"):
        Lab(timeout=-1)
    assert Lab().timeout == Settings().timeout  # the defaults are the settings'


def test_serve_and_disconnect(mesh_url: str) -> None:
    lab = Lab(timeout=5)
    try:
        lab.connect(mesh_url, alias="one")
        lab.connect(mesh_url, alias="two")
        assert lab.current == "two"

        class Adder:
            def add(self, a: int, b: int) -> int:
                return a + b

        lab.serve(Adder(), name="adder", alias="one")
        assert lab.call("adder.add", a=1, b=2) == 3  # through "two"
        assert lab.disconnect("one") == ["one"]
        with pytest.raises(nl.NuropbException):  # no one serves it any more
            lab.call("adder.add", a=1, b=2, timeout=1)
        assert list(lab.status()["alias"]) == ["two"]
        lab.disconnect(all=True)
        with pytest.raises(LabError, match="not connected"):
            lab.call("adder.add")
    finally:
        lab.close()


def test_interrupt_cancels_a_waiting_call(lab: Lab) -> None:
    started = time.monotonic()
    with ctrl_c_after(0.3), pytest.raises(KeyboardInterrupt):
        lab.call("inventory.slow", seconds=5, timeout=10)
    assert time.monotonic() - started < 3
    wait_for(lambda: lab.connection().api.in_flight == 0, what="the call to be cancelled")
    assert lab.history(1).iloc[0]["error"] == "CancelledError"


def test_a_service_that_does_not_answer_still_appears(lab: Lab, mesh_url: str) -> None:
    async def mute_service() -> Any:
        import aio_pika

        connection = await aio_pika.connect(mesh_url)
        channel = await connection.channel()
        queue = await channel.declare_queue(
            "nuropb-mute-sq",
            durable=True,
            arguments={"x-dead-letter-exchange": "nuropb-dl-exchange"},
        )
        await queue.bind("nuropb-rpc-exchange", routing_key="mute")

        async def never_answer(message: Any) -> None:
            pass

        await queue.consume(never_answer)  # takes messages, never answers
        return connection, queue

    connection, queue = lab.runner.run(mute_service(), 10)
    try:
        lab.describe_timeout = 0.5
        started = time.monotonic()
        frame = lab.services().set_index("service")
        assert time.monotonic() - started < 5
        assert frame.loc["mute", "instances"] == 1
        assert str(frame.loc["mute", "error"]).startswith("NuropbTimeoutError")
        assert pd.isna(frame.loc["inventory", "error"])  # the others are described as usual
    finally:
        lab.describe_timeout = 2

        async def close() -> None:
            await queue.delete(if_unused=False, if_empty=False)
            await connection.close()

        lab.runner.run(close(), 10)


def test_without_the_management_api_known_names_are_probed(mesh_url: str) -> None:
    lab = Lab(timeout=5, management_url="http://127.0.0.1:1")  # nothing listens there
    try:
        lab.connect(mesh_url)
        first = lab.services(names=["inventory", "nobody"])
        assert "management API at http://127.0.0.1:1 is unreachable" in first.attrs["notice"]
        rows = first.set_index("service")
        assert rows.loc["inventory", "instances"] == 1 and rows.loc["inventory", "methods"] == 5
        assert rows.loc["nobody", "error"] == "no such service on the mesh"
        lab.call("inventory.ping")  # a called service is known from now on
        second = lab.services()
        assert "notice" not in second.attrs  # said once
        assert set(second["service"]) == {"inventory", "nobody"}
    finally:
        lab.close()


def test_tail_survives_a_connection_drop_and_shows_the_gap(
    fresh_mesh_url: str, management: ManagementAPI
) -> None:
    lab = Lab(timeout=5)
    try:
        lab.connect(fresh_mesh_url)
        tail = lab.tail("gap.#")
        lab.publish("gap.before", 1)
        wait_for(lambda: len(tail) == 1, what="the first event")
        vhost = fresh_mesh_url.rsplit("/", 1)[1]
        asyncio.run(close_connections(management, vhost, expect=1))
        wait_for(
            lambda: lab.connection().api.transport.reconnects == 1, timeout=20, what="reconnection"
        )
        wait_for(lambda: tail.state == "live", what="the tail to resume")
        status = tail.status()
        assert status["gaps"] == 1 and "1 gap(s)" in repr(tail)
        lost_at, resumed_at = tail.gaps[0]
        assert resumed_at is not None and resumed_at >= lost_at
        lab.publish("gap.after", 2)
        wait_for(lambda: len(tail) == 2, what="an event after the gap")
        assert [e.topic for e in tail.snapshot()] == ["gap.before", "gap.after"]
    finally:
        lab.close()


def test_tail_shows_itself_in_a_notebook(lab: Lab) -> None:
    tail = lab.tail("html.#")
    try:
        assert "0 received" in tail._repr_html_() and "<table" not in tail._repr_html_()
        lab.publish("html.x", {"<b>": "&"})
        wait_for(lambda: len(tail) == 1, what="the event")
        shown = tail._repr_html_()
        assert "html.x" in shown and "<table" in shown and "<b>" not in shown  # escaped
    finally:
        tail.stop()
