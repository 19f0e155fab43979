"""Running a cell again leaves the state one run leaves: the same connect is the connection there
is, a tail, a tap or a served object started again replaces the one before; a temporary service
takes its queue with it, and a queue nobody consumes is not asked to describe itself."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from support import wait_for

from nuropb_lab.lab import Lab, LabError, get_lab


class Adder:
    def add(self, a: int, b: int) -> int:
        return a + b


class Multiplier:
    _service_name = "adder"

    def add(self, a: int, b: int) -> int:
        return a * b


def queue(lab: Lab, service: str) -> tuple[int, int] | None:
    """(messages, consumers) of the service's queue, or None when there is none."""
    api = lab.connection().api
    return lab.runner.run(api.queue_info(f"nuropb-{service}-sq"), 10)


def test_the_same_connect_is_the_connection_there_is(lab: Lab) -> None:
    connection = lab.connection()
    assert lab.connect(connection.api.target, alias=connection.alias) is connection
    assert list(lab.connections) == [connection.alias]
    other = dataclasses.replace(connection.api.target, username="another-user")
    with pytest.raises(LabError, match=f"connection {connection.alias!r} is to amqp://"):
        lab.connect(other, alias=connection.alias)
    assert lab.connections == {connection.alias: connection}


def test_a_tail_started_again_replaces_the_one_before(lab: Lab) -> None:
    first = lab.tail("again.#", max_rows=50)
    other = lab.tail("again.#", max_rows=60)  # other arguments: another tail
    second = lab.tail("again.#", max_rows=50)
    try:
        assert first.stopped and second.replaced == 1 and not other.stopped
        assert [t for t in lab.tails if t.patterns == ["again.#"]] == [other, second]
        lab.publish("again.one", {"n": 1})
        assert lab.runner.run(_until(lambda: len(second) == 1), 15)
        assert len(first) == 0  # its queue is gone: it receives nothing
    finally:
        second.stop()
        other.stop()


def test_a_tap_started_again_replaces_the_one_before(lab: Lab) -> None:
    lab.serve(Adder(), name="tapped")
    try:
        first = lab.tap("tapped", firehose=False)
        second = lab.tap("tapped", firehose=False)
        assert first.stopped and second.replaced == 1 and lab.taps == [second]
        assert lab.call("tapped.add", a=1, b=2) == 3
        assert lab.runner.run(_until(lambda: len(second.df) >= 1), 15)
        assert len(first.df) == 0
        second.stop()
    finally:
        lab.unserve("tapped")


def test_serving_a_name_again_replaces_the_object(lab: Lab) -> None:
    before = lab.serve(Adder(), name="adder")
    try:
        assert lab.call("adder.add", a=3, b=4) == 7
        after = lab.serve(Multiplier())
        assert lab.call("adder.add", a=3, b=4) == 12
        assert before.transport.state == "closed" and lab.connection().served == {"adder": after}
        wait_for(lambda: queue(lab, "adder") == (0, 1), what="one instance: the new object")
    finally:
        assert lab.unserve("adder") is True
    assert lab.unserve("adder") is False
    wait_for(lambda: queue(lab, "adder") == (0, 0), what="a lasting queue without consumers")


def test_a_temporary_service_takes_its_queue_with_it(lab: Lab) -> None:
    name = f"temp-{uuid.uuid4().hex[:6]}"
    lab.serve(Adder(), name=name, temporary=True)
    assert queue(lab, name) == (0, 1) and lab.call(f"{name}.add", a=1, b=1) == 2
    lab.serve(Adder(), name=name, temporary=True)  # again: the queue is made again
    assert queue(lab, name) == (0, 1)
    lab.unserve(name)
    assert queue(lab, name) is None
    assert name not in set(lab.services()["service"])


def test_a_temporary_service_leaves_the_queue_other_instances_consume(lab: Lab) -> None:
    name = f"shared-{uuid.uuid4().hex[:6]}"
    other = Lab(timeout=10)
    try:
        other.connect(lab.connection().api.target)
        other.serve(Adder(), name=name)
        lab.serve(Adder(), name=name, temporary=True)
        assert queue(lab, name) == (0, 2)
        lab.unserve(name)
        assert queue(lab, name) == (0, 1) and lab.call(f"{name}.add", a=2, b=2) == 4
    finally:
        other.close()


def test_a_service_without_instances_is_not_asked_to_describe_itself(lab: Lab) -> None:
    name = f"gone-{uuid.uuid4().hex[:6]}"
    lab.serve(Adder(), name=name)
    lab.unserve(name)  # its queue stays, with no consumer
    services = lab.services().set_index("service")
    assert services.loc[name, "instances"] == 0
    assert services.loc[name, "error"] == "no instances running"
    keys = lab.keys().set_index("service")
    assert keys.loc[name, "warnings"] == []  # no describe waited for, so no timeout
    assert lab.keys(name).iloc[0]["warnings"] == []


async def _until(condition: Any, timeout: float = 10.0) -> bool:
    """Whether ``condition()`` became true within ``timeout`` s (polled on the Lab loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# --- the magic: a second run says what it reuses or replaces, in one line, and no error -------


@pytest.fixture(scope="module")
def ip(mesh_url: str) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nuropb_lab")
    shell.user_ns["adder"] = Adder()
    yield shell
    made = get_lab()
    if made.connections:
        made.disconnect(all=True)


def run(ip: InteractiveShell, line: str) -> tuple[Any, str, str]:
    with capture_output() as captured:
        value = ip.run_line_magic("nuropb", line)
    return value, captured.stdout, captured.stderr


def test_a_second_run_of_the_magic(ip: InteractiveShell, mesh_url: str) -> None:
    masked = mesh_url.replace(":guest@", ":***@")
    lines = [
        f"connect {mesh_url} --alias again",
        "serve adder --temporary",
        "tail again.# -o events",
        "tap adder --no-firehose -o tapped",  # its note (no firehose: asked) goes to stderr
    ]
    first = [run(ip, line) for line in lines]
    second = [run(ip, line) for line in lines]
    for _, _, err in first + second:
        assert err == "" or err.startswith("note: no firehose (not asked for)"), err
    said = [out.strip().splitlines()[-1] for _, out, _ in second]
    assert said == [
        f"already connected to {masked} as 'again': using that connection",
        "serving adder as 'adder' on again (in place of the object served before)",
        "stopped the tail of again.# on again started before",
        "stopped the tap of adder on again started before",
    ]
    made = get_lab()
    connection = made.connection("again")
    assert list(made.connections) == ["again"]
    assert [t.patterns for t in connection.tails] == [["again.#"]]
    assert connection.tails[0] is ip.user_ns["events"] and first[2][0].stopped
    assert connection.taps == [ip.user_ns["tapped"]] and first[3][0].stopped
    assert list(connection.served) == ["adder"] and queue(made, "adder") == (0, 1)
    _, out, err = run(ip, "disconnect again")
    assert err == "" and out.strip() == "disconnected again"
    probe = Lab(timeout=10)
    try:
        probe.connect(mesh_url)
        assert queue(probe, "adder") is None  # temporary: its queue went with it
    finally:
        probe.close()


EXITING = """
import sys
from nuropb_lab import Lab

class Adder:
    def add(self, a, b):
        return a + b

lab = Lab(timeout=10)
lab.connect(sys.argv[1])
lab.serve(Adder(), name=sys.argv[2], temporary=True)
lab.serve(Adder(), name=sys.argv[3])
print("serving", flush=True)
"""


def test_a_temporary_service_goes_when_its_process_exits(lab: Lab, mesh_url: str) -> None:
    """A kernel shut down (its interpreter exits) with a temporary service still served: the
    service stops at exit and its queue goes with it; a lasting one's queue stays."""
    temporary, lasting = f"exit-temp-{uuid.uuid4().hex[:6]}", f"exit-kept-{uuid.uuid4().hex[:6]}"
    done = subprocess.run(
        [sys.executable, "-c", EXITING, mesh_url, temporary, lasting],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == "serving\n", done.stderr
    assert queue(lab, temporary) is None  # deleted before the process ended
    # the broker drops the consumer of a connection that went with its process on its own time
    wait_for(lambda: queue(lab, lasting) == (0, 0), what="the lasting queue's consumer to go")
