"""Live views go quiet when idle: after ``live_idle_timeout`` s without interaction they stop
redrawing and refreshing (a Resume button brings them back) while what is behind them keeps
collecting; a view made again takes over from its older copy; a view whose data did not change
sends nothing. In-process through the widgets' traits, and in a real kernel by counting its
iopub messages."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from support import wait_for

from nuropb_lab.lab import Lab
from nuropb_lab.widgets import ConnectionStatus, GraphView, ServiceBrowser, TailView


class Echo:
    def echo(self, x: Any) -> Any:
        return x


@pytest.fixture()
def traffic(lab: Lab) -> Iterator[None]:
    """Events on ``live.<n>`` a few dozen times a second until the test ends."""
    stop = threading.Event()

    def publish() -> None:
        n = 0
        while not stop.wait(0.03):
            n += 1
            try:
                lab.publish(f"live.{n % 3}", {"n": n})
            except Exception:  # the Lab closing under it at the end
                return

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


def test_an_idle_view_pauses_its_source_keeps_collecting_and_resume_brings_it_back(
    lab: Lab, traffic: None
) -> None:
    tail = lab.tail("live.#", max_rows=100_000)
    view = tail.widget(rows=5)
    assert isinstance(view, TailView)
    view.live.touch()
    try:
        lab.live_idle_timeout = 1.0  # read when checked: the view shown follows the setting
        wait_for(lambda: view.live.paused is not None, what="the view to pause")
        assert "no interaction for 1 s" in view.live.notice.value
        assert view.live.bar.layout.display is None  # the bar with Resume shows
        redraws, shown, received = view.redraws, view.status.value, tail.received
        wait_for(lambda: tail.received > received + 30, what="events while paused")
        assert view.redraws == redraws and view.status.value == shown  # nothing redrawn
        assert len(tail) == tail.received  # the tail kept collecting
        view.live.resume_button.click()
        assert view.live.paused is None and view.live.bar.layout.display == "none"
        wait_for(lambda: view.status.value != shown, what="a redraw after Resume")
        lab.live_idle_timeout = 600.0
        view.filter.value = "live.1"  # interaction resumes a paused view too
        view.live.pause("paused by the test")
        view.filter.value = "live.2"
        assert view.live.paused is None
    finally:
        lab.live_idle_timeout = 600.0
        view.close()
        tail.stop()


def test_a_view_made_again_takes_over_and_closing_one_stops_it(lab: Lab) -> None:
    first = ConnectionStatus(lab, interval=0.1)
    assert first.live.running == 1
    second = ConnectionStatus(lab, interval=0.1)  # the same cell run again
    try:
        assert first.live.paused == "paused: a newer copy of this view is live"
        wait_for(lambda: first.live.running == 0, what="the first copy's timer to stop")
        assert second.live.running == 1
        first.live.resume_button.click()  # the older copy can take over again
        assert first.live.running == 1 and second.live.paused is not None
    finally:
        first.close()
        second.close()
    wait_for(lambda: first.live.running == second.live.running == 0, what="timers to stop")
    assert first.live.closed and second.live.closed


def test_the_graph_of_a_stopped_tap_stops_redrawing(lab: Lab) -> None:
    tap = lab.tap(firehose=False)
    view = GraphView(tap, interval=0.1)
    try:
        assert view.live.running == 1
        tap.stop()
        wait_for(lambda: view.live.running == 0, what="the graph's timer to end")
        assert view.live.paused is None  # not paused: there is nothing more to show
    finally:
        view.close()


def test_a_browser_whose_mesh_did_not_change_sends_nothing(lab: Lab) -> None:
    lab.serve(Echo(), name="echo-live")
    browser = ServiceBrowser(lab, refresh_interval=0.1)
    try:
        wait_for(lambda: "echo-live" in browser.infos, what="the first discovery")
        browser.select("echo-live", "echo")
        start = browser.refreshes
        wait_for(lambda: browser.refreshes > start + 1, what="a refresh")
        changes: list[str] = []
        for widget in (browser.summary, browser.services, browser.detail, browser.methods):
            widget.observe(lambda change: changes.append(change["name"]), names=None)
        start = browser.refreshes
        wait_for(lambda: browser.refreshes >= start + 15, what="15 more refreshes")
        assert changes == []  # no clock-only redraws: a trait set to its value sends nothing
    finally:
        browser.close()
        lab.unserve("echo-live")


# --- in a kernel: the iopub messages of an idle notebook ------------------------------------

SETUP = """
%load_ext nuropb_lab
%config NuropbMagics.live_idle_timeout = {idle}
%nuropb connect
import json
import nuropb_lab
from IPython.display import display
from nuropb_lab.widgets import ConnectionStatus, ServiceBrowser

class Echo:
    def echo(self, x):
        return x

echo = Echo()
%nuropb serve echo --temporary
lab = nuropb_lab.get_lab()
"""

VIEWS = """
tail = lab.tail("live.#")
tap = lab.tap(firehose=False, events=True)
run = lab.start_bench("echo.echo", {{"x": 1}}, n=20)
run.wait()
views = {{
    "status": ConnectionStatus(lab),
    "browser": ServiceBrowser(lab, refresh_interval=0.5),
    "tail": tail.widget(),
    "tap": tap.widget(),
    "graph": tap.graph_view(),
    "bench": run.widget(),
}}
for view in views.values():
    display(view)
ids = {{name: [v.live.notice.model_id, v.live.resume_button.model_id] for name, v in views.items()}}
print(json.dumps({{"views": ids, "tail table": views["tail"].table.model_id}}))
"""


class Kernel:
    """A kernel, its iopub messages read as they come."""

    def __init__(self, client: BlockingKernelClient) -> None:
        self.client = client

    def read(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return None

    def execute(self, code: str, seen: list[dict[str, Any]], timeout: float = 60) -> str:
        """Run ``code``; its stdout (every iopub message read meanwhile goes to ``seen``).
        Fails on an error or on stderr."""
        msg_id = self.client.execute(code)
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.read(1)
            if msg is None:
                continue
            seen.append(msg)
            mine = msg["parent_header"].get("msg_id") == msg_id
            kind, content = msg["msg_type"], msg["content"]
            if mine and kind == "error":
                pytest.fail(f"{content['ename']}: {content['evalue']}")
            if mine and kind == "stream":
                assert content["name"] == "stdout", content["text"]
                out.append(content["text"])
            if mine and kind == "status" and content["execution_state"] == "idle":
                return "".join(out)
        pytest.fail(f"the kernel did not finish within {timeout} s: {code[:60]}")


@pytest.fixture()
def kernel(mesh_url: str) -> Iterator[Kernel]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(
        env=dict(os.environ, NUROPB_AMQP_URL=mesh_url),
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield Kernel(client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _updates(messages: list[dict[str, Any]], comm_id: str) -> list[dict[str, Any]]:
    return [
        m["content"]["data"].get("state", {})
        for m in messages
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
    ]


def test_an_idle_kernel_sends_only_status_and_resume_brings_updates_back(
    kernel: Kernel, lab: Lab, traffic: None
) -> None:
    """The Resume click is sent as a frontend sends it: a ``comm_msg`` to the button's comm
    (``{"method": "custom", "content": {"event": "click"}}``), not through the kernel's code."""
    seen: list[dict[str, Any]] = []
    kernel.execute(SETUP.format(idle=3), seen)
    printed = json.loads(kernel.execute(VIEWS.format(), seen).strip().splitlines()[-1])
    ids, table = printed["views"], printed["tail table"]
    notices = {name: notice for name, (notice, _) in ids.items() if name != "bench"}

    def paused() -> set[str]:
        return {
            name
            for name, notice in notices.items()
            if any("paused" in str(u.get("value", "")) for u in _updates(seen, notice))
        }

    deadline = time.monotonic() + 60
    while paused() != set(notices) and time.monotonic() < deadline:
        msg = kernel.read(1)
        if msg is not None:
            seen.append(msg)
    assert paused() == set(notices), f"not paused: {set(notices) - paused()}"
    busy = [m for m in seen if m["msg_type"] == "comm_msg"]
    assert len(busy) > 20  # the views did redraw while someone was there

    before = json.loads(kernel.execute("print(json.dumps(tail.received))", seen))
    quiet: list[dict[str, Any]] = []
    window = time.monotonic() + 6  # a measurement window, not a wait for something
    while time.monotonic() < window:
        msg = kernel.read(max(window - time.monotonic(), 0.01))
        if msg is not None:
            quiet.append(msg)
    assert {m["msg_type"] for m in quiet} <= {"status"}, [m["msg_type"] for m in quiet]
    after = json.loads(kernel.execute("print(json.dumps(tail.received))", seen))
    assert after > before + 50  # the tail behind the paused view kept collecting

    # Resume on the tail view, clicked as the browser would
    button = ids["tail"][1]
    client = kernel.client
    click = {"comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}}
    client.shell_channel.send(client.session.msg("comm_msg", click))
    resumed: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while not _updates(resumed, table) and time.monotonic() < deadline:
        msg = kernel.read(1)
        if msg is not None:
            resumed.append(msg)
    assert _updates(resumed, table), "no redraw of the tail view after Resume"
    assert kernel.execute("print(views['tail'].live.paused)", seen).strip() == "None"
    assert kernel.execute("print(views['status'].live.paused is not None)", seen).strip() == "True"
