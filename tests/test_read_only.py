"""Read-only connections on a mesh that nuropb 0.1.8's own configure_mesh set up, with a real
nuropb 0.1.8 service and a lab service run by an operator's Lab.

Every operation that would send or change something is refused in one line and sends nothing:
a witness (the operator's tap through a queue of its own, bound to both services' routing keys
and to every event) sees none of it, the services count none of it, and the firehose stays as
it was. Every reading operation works.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from support import (
    nuropb_made_mesh_with_firehose,
    peer_process,
    vhost_of,
    wait_for,
)

import nuropb_lab as nl
from nuropb_lab.lab import Lab, LabError, OptionError, get_lab
from nuropb_lab.mesh import ManagementAPI
from nuropb_lab.widgets import CallForm, ConnectionStatus

WAIT = 15.0


class Counter:
    """The operator's lab service: counts what reaches it."""

    def __init__(self) -> None:
        self.calls = 0
        self.notes: list[str] = []
        self.events: list[str] = []

    def add(self, a: int, b: int = 2) -> int:
        self.calls += 1
        return a + b

    def note(self, text: str) -> None:
        self.notes.append(text)

    def refuse(self) -> None:
        raise nl.NuropbValidationError(description="refused")  # dead-lettered

    def _handle_event_(self, topic: str, event: Any, target: Any, context: Any) -> None:
        self.events.append(topic)


@pytest.fixture(scope="module")
def mesh(nuropb_python: Path, management: ManagementAPI) -> Iterator[str]:
    yield from nuropb_made_mesh_with_firehose(nuropb_python, management, "readonly")


@pytest.fixture(scope="module")
def ops(mesh: str, nuropb_python: Path) -> Iterator[tuple[Lab, Counter, str]]:
    """The operator's Lab (read-write), serving ``counter``, beside a nuropb 0.1.8 service."""
    counter = Counter()
    admin = Lab(timeout=10)
    admin.connect(mesh, alias="ops")
    admin.serve(counter, name="counter", settings={"event_bindings": ["ro.#"]})
    ref = f"ref-{uuid.uuid4().hex[:6]}"
    try:
        with peer_process(nuropb_python, "nuropb_service.py", mesh, ref):
            yield admin, counter, ref
    finally:
        admin.close()


@pytest.fixture
def ro(mesh: str) -> Iterator[Lab]:
    lab = Lab(timeout=10)
    lab.connect(mesh, alias="ro", read_only=True)
    try:
        yield lab
    finally:
        lab.close()


def tracing(management: ManagementAPI, url: str) -> bool:
    return bool(management.call_blocking("GET", f"vhosts/{vhost_of(url)}")["tracing"])


def refused(what: str) -> Any:
    """The one-line refusal of ``what`` on the connection ``ro``: a LabError."""
    return pytest.raises(LabError, match=rf"^connection 'ro' is read-only: {what} is refused")


def test_every_sending_operation_is_refused_and_sends_nothing(
    mesh: str, ops: tuple[Lab, Counter, str], ro: Lab, management: ManagementAPI
) -> None:
    admin, counter, ref = ops
    witness = admin.tap(ref, "counter", events=True, firehose=False)
    assert witness.mode == "queue" and witness.subscription.services == [ref, "counter"]
    with pytest.raises(nl.NuropbValidationError):
        admin.call("counter.refuse")  # one dead letter, for the consume below
    wait_for(lambda: len(admin.dead_letters()) == 1, WAIT, "the dead letter")
    calls_before, notes_before = counter.calls, list(counter.notes)
    try:
        ro.services()  # known to the read-only Lab (describes are allowed)
        witness.clear()
        row = {"kind": "request", "service": ref, "method": "add", "payload": {"a": 1}}
        with refused("a call"):
            ro.call(f"{ref}.add", a=1)
        with refused("a call"):
            ro.call("counter.add", a=1, check=False)
        with refused("a call"):
            ro.start_call(f"{ref}.add", {"a": 1}).result(WAIT)
        with refused("a command"):
            ro.command(f"{ref}.remember", key="k", value="v")
        with refused("publishing an event"):
            ro.publish(f"lab.{ref}.hello", {"n": 1})
        with refused("publishing an event"):
            ro.publish("ro.hello", {"n": 2})
        with refused("serving an object"):
            ro.serve(Counter(), name="ro-served")
        with refused("a bench"):
            ro.bench(f"{ref}.add", {"a": 1}, n=5)
        with refused("a capacity sweep"):
            ro.capacity(f"{ref}.add", {"a": 1}, concurrency=[1], n=5)
        with refused("a replay"):
            ro.replay(row)
        with refused("a check"):
            ro.check(ref, max_examples=5)
        with refused("a mock"):
            ro.mock("ghost", handlers={"m": lambda: 1})
        with refused("consuming dead letters"):
            ro.dead_letters(consume=True)
        with refused("switching the firehose on"):
            ro.tap(firehose=True)
        assert not tracing(management, mesh)
        with refused("switching the firehose off"):
            ro.firehose_off()
        # nothing reached the mesh: the witness sees only the operator's sentinel after it all
        admin.command("counter.note", text="sentinel")
        wait_for(lambda: "note" in set(witness.df["method"]), WAIT, "the sentinel")
        seen = witness.df[witness.df["method"] != "nuropb_describe"]
        assert seen[["kind", "service", "method"]].values.tolist() == [
            ["command", "counter", "note"]
        ]
        assert counter.calls == calls_before and counter.notes == [*notes_before, "sentinel"]
        assert counter.events == []
        assert admin.call(f"{ref}.recall", key="k") is None  # the command never came
        assert admin.call(f"{ref}.seen_events") == []
        assert (
            admin.runner.run(admin.connection().api.queue_info("nuropb-ro-served-sq"), 10) is None
        )
        assert len(admin.dead_letters()) == 1  # not consumed
        assert ro.connection().served == {} and ro.connection().mocks == {}
        assert len(ro.history()) == 0  # nothing was sent, so nothing was recorded
    finally:
        witness.stop()


def test_every_reading_operation_works(
    mesh: str, ops: tuple[Lab, Counter, str], ro: Lab, management: ManagementAPI
) -> None:
    admin, _, ref = ops
    services = ro.services()
    assert {"counter", ref} <= set(services["service"])
    assert set(ro.describe("counter")["method"]) == {"add", "note", "refuse"}
    assert ref in set(ro.keys(ref)["service"])
    status = ro.status().set_index("alias").loc["ro"]
    assert status["mode"] == "read-only" and status["state"] == "connected"
    assert admin.status().set_index("alias").loc["ops", "mode"] == "read-write"
    assert "read-only" in repr(ro.connection())
    widget = ConnectionStatus(ro)
    try:
        assert widget.value.endswith(" · read-only</div>")
    finally:
        widget.close()
    assert list(ro.history().columns)  # the history is there (empty: nothing was sent)
    assert len(ro.dead_letters()) >= 0  # read, put back

    tail = ro.tail("ro.#")
    tap = ro.tap()  # the firehose is off: a queue of its own, and it says why
    try:
        assert tap.mode == "queue" and tap.bounds is None
        assert tap.notice is not None and "connection 'ro' is read-only" in tap.notice
        assert not tracing(management, mesh)
        admin.publish("ro.ping", {"n": 1})
        assert admin.call("counter.add", a=4) == 6
        wait_for(lambda: len(tail.df) == 1, WAIT, "the event in the read-only tail")
        wait_for(
            lambda: "add" in set(tap.df["method"]) and "event" in set(tap.df["kind"]),
            WAIT,
            "the call and the event in the read-only tap",
        )
    finally:
        tail.stop()
        tap.stop()

    # on a firehose that is on already (the operator's tap) a read-only tap rides it ...
    held = admin.tap(max_duration=None)
    try:
        assert tracing(management, mesh)
        riding = ro.tap()
        assert riding.mode == "firehose" and riding.bounds is not None
        assert admin.call("counter.add", a=1) == 3
        wait_for(lambda: "response" in set(riding.df["kind"]), WAIT, "the response")
        riding.stop()
        assert tracing(management, mesh)  # ... and leaves it as it was
    finally:
        held.stop()
    assert not tracing(management, mesh)


def test_the_call_form_shows_the_refusal(ops: tuple[Lab, Counter, str], ro: Lab) -> None:
    _, counter, _ = ops
    calls = counter.calls
    form = CallForm(ro, "counter", "add", ro.description("counter")["methods"]["add"])
    next(i for i in form.inputs if i.name == "a").widget.value = 5
    form.call_button.click()
    assert form.pending is not None
    wait_for(lambda: not form.call_button.disabled, WAIT, "the form to come back")
    assert isinstance(form.last_error, LabError)
    assert "LabError" in form.result.value and "is read-only" in form.result.value
    assert counter.calls == calls


def test_a_read_only_lab_opens_every_connection_read_only(mesh: str) -> None:
    lab = Lab(timeout=10, read_only=True)
    try:
        assert lab.read_only
        lab.connect(mesh, alias="first")
        lab.read_only = False  # a setting: connections opened after are read-write
        lab.connect(mesh, alias="second")
        assert lab.connection("first").read_only and not lab.connection("second").read_only
        with pytest.raises(LabError, match=r"^connection 'first' is read-only: a call"):
            lab.call("counter.add", a=1, alias="first")
        with pytest.raises(OptionError, match="read_only must be True or False"):
            lab.read_only = "yes"  # type: ignore[assignment]
        with pytest.raises(OptionError, match="cannot configure the mesh"):
            lab.connect(mesh, alias="third", configure=True, read_only=True)
        assert "third" not in lab.connections
    finally:
        lab.close()


def run(ip: InteractiveShell, line: str) -> tuple[Any, str, str]:
    with capture_output() as captured:
        value = ip.run_line_magic("nuropb", line)
    return value, captured.stdout, captured.stderr


def test_the_magic(mesh: str, ops: tuple[Lab, Counter, str]) -> None:
    _, counter, ref = ops
    calls = counter.calls
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nuropb_lab")
    try:
        _, out, _ = run(ip, f"connect {mesh} --alias romagic --read-only")
        assert out.strip().endswith("as 'romagic', read-only")
        _, _, err = run(ip, "call counter.add a=1")
        assert err.strip().startswith(
            "LabError: connection 'romagic' is read-only: a call is refused and sends nothing"
        )
        _, _, err = run(ip, f"publish lab.{ref}.x {{}}")
        assert err.strip().startswith("LabError: connection 'romagic' is read-only: publishing")
        frame, _, _ = run(ip, "status")
        assert frame.set_index("alias").loc["romagic", "mode"] == "read-only"
        _, out, _ = run(ip, "help connect")
        assert "--read-only" in out
        assert counter.calls == calls
    finally:
        get_lab().disconnect("romagic")
