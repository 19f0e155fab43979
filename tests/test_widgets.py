"""The widgets, driven through their traits (no browser), against real services."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import ipywidgets as w
import pytest
from support import LabSetup, visible_connections, wait_for

import nuropb_lab as nl
from nuropb_lab.lab import Lab
from nuropb_lab.mesh import ManagementAPI, codec
from nuropb_lab.widgets import (
    BenchView,
    CallForm,
    ConnectionStatus,
    KeysView,
    ServiceBrowser,
    TailView,
)

PEERS = Path(__file__).parent / "peers"


class Orders:
    """Orders and their lines."""

    _version = "2.0"

    def place(
        self,
        sku: str,
        qty: int = 1,
        express: bool = False,
        weight: float = 1.5,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Place an order."""
        return {"sku": sku, "qty": qty, "express": express, "weight": weight, "tags": tags}

    def lines(self, n: int) -> list[dict[str, Any]]:
        return [{"line": i, "sku": f"S{i}"} for i in range(n)]

    def refuse(self) -> None:
        raise nl.NuropbAuthorizationError("not your order")

    @nl.publish_to_mesh(requires_encryption=True)
    def card(self, number: str) -> str:
        return number[-4:]

    def login(self, user_id: str, password: str) -> dict[str, Any]:
        return {"user_id": user_id, "session_token": f"tok-{password[::-1]}"}


@pytest.fixture(scope="module")
def lab_setup() -> LabSetup:
    return LabSetup(alias="w", serve={"orders": Orders()})


def test_browser_lists_services_and_opens_a_call_form(lab: Lab) -> None:
    browser = ServiceBrowser(lab, refresh_interval=0.5)
    try:
        wait_for(lambda: "orders" in browser.infos, what="the first discovery")
        labels = [label for label, _ in browser.services.options]
        assert any(
            label.startswith("orders") and "1 inst" in label and "🔒" in label and "v2.0" in label
            for label in labels
        )
        form = browser.select("orders", "place")
        assert "Orders and their lines." in browser.detail.value
        assert set(browser.methods.options) == {"card", "lines", "login", "place", "refuse"}
        assert isinstance(form, CallForm) and browser.form_box.children == (form,)
        # a service that appears shows up without user action
        lab.serve(Orders(), name="late-orders")
        wait_for(lambda: "late-orders" in browser.infos, what="the new service to show")
    finally:
        browser.close()


def test_a_stopped_service_leaves_the_browser(
    lab: Lab, management: ManagementAPI, mesh_url: str
) -> None:
    name = f"brief-{uuid.uuid4().hex[:4]}"
    api = lab.serve(Orders(), name=name)
    browser = ServiceBrowser(lab, refresh_interval=0.3)
    try:
        wait_for(lambda: name in browser.infos, what=f"{name} to show")
        browser.select(name)
        lab.runner.run(api.disconnect(), 10)
        lab.connection().served.pop(name)
        management.call_blocking("DELETE", f"queues/{mesh_url.rsplit('/', 1)[1]}/nuropb-{name}-sq")
        wait_for(lambda: name not in browser.infos, what=f"{name} to leave")
        assert (
            browser.services.value is None and browser.detail.value == "" and browser.form is None
        )
    finally:
        browser.close()


def test_call_form_inputs_follow_the_annotations(lab: Lab) -> None:
    spec = lab.description("orders")["methods"]["place"]
    form = CallForm(lab, "orders", "place", spec)
    kinds = {i.name: (type(i.widget), i.required) for i in form.inputs}
    assert kinds == {
        "sku": (w.Text, True),
        "qty": (w.IntText, False),
        "express": (w.Checkbox, False),
        "weight": (w.FloatText, False),
        "tags": (w.Textarea, False),
    }
    values = {i.name: i.widget.value for i in form.inputs}
    assert values == {"sku": "", "qty": 1, "express": False, "weight": 1.5, "tags": ""}
    assert form.inputs[0].widget.description == "sku *"
    assert not form.encrypt.value and not form.encrypt.disabled


def test_call_form_calls_and_shows_result_and_history(lab: Lab) -> None:
    form = CallForm(lab, "orders", "place", lab.description("orders")["methods"]["place"])
    inputs = {i.name: i.widget for i in form.inputs}
    inputs["sku"].value = "A7"
    inputs["qty"].value = 3
    inputs["express"].value = True
    inputs["tags"].value = '["gift", "fragile"]'
    form.trace_id.value = "trace-form"
    before = len(lab.history())
    form.call_button.click()
    assert form.pending is not None
    form.pending.result(10)
    wait_for(lambda: not form.call_button.disabled, what="the button to come back")
    assert form.last_result == {
        "sku": "A7",
        "qty": 3,
        "express": True,
        "weight": 1.5,
        "tags": ["gift", "fragile"],
    }
    assert "&quot;fragile&quot;" in form.result.value or "fragile" in form.result.value
    history = lab.history()
    assert len(history) == before + 1 and history.iloc[-1]["trace_id"] == "trace-form"
    magic, python = form.code_lines()
    assert magic == (
        "%nuropb call orders.place sku=A7 qty=3 express=true weight=1.5"
        ' tags=["gift","fragile"] --trace trace-form'
    )
    assert python == (
        "lab.call('orders.place', sku='A7', qty=3, express=True, weight=1.5,"
        " tags=['gift', 'fragile'], trace_id='trace-form')"
    )
    form.code_button.click()
    assert form.code.value.splitlines() == [magic, python]


def test_call_form_keeps_and_shows_no_credential(lab: Lab) -> None:
    form = CallForm(lab, "orders", "login", lab.description("orders")["methods"]["login"])
    inputs = {i.name: i.widget for i in form.inputs}
    assert isinstance(inputs["password"], w.Password) and isinstance(inputs["user_id"], w.Text)
    inputs["user_id"].value = "u-77"
    inputs["password"].value = "pw-form-secret"
    form.context.value = '{"Authorization": "Bearer form0token1234"}'
    form.call_button.click()
    assert form.pending is not None
    form.pending.result(10)
    wait_for(lambda: not form.call_button.disabled, what="the button to come back")
    assert form.last_result == {"user_id": "u-77", "session_token": "[redacted]"}
    form.code_button.click()
    shown = form.result.value + form.code.value + lab.history().to_string()
    assert "u-77" in shown
    for secret in ("terces-mrof-wp", "pw-form-secret", "form0token1234"):
        assert secret not in shown


def test_call_form_invalid_input_calls_nothing(lab: Lab) -> None:
    form = CallForm(lab, "orders", "place", lab.description("orders")["methods"]["place"])
    before = len(lab.history())
    form.call_button.click()
    assert "sku is required" in form.result.value and form.pending is None
    {i.name: i for i in form.inputs}["sku"].widget.value = "x"
    {i.name: i for i in form.inputs}["tags"].widget.value = "[oops"
    form.call_button.click()
    assert "tags is not valid JSON" in form.result.value and form.pending is None
    form.context.value = "[1]"
    {i.name: i for i in form.inputs}["tags"].widget.value = ""
    form.call_button.click()
    assert "context must be a JSON object" in form.result.value
    assert len(lab.history()) == before


def test_call_form_checks_params_with_the_labs_validator(lab: Lab) -> None:
    form = CallForm(lab, "orders", "place", lab.description("orders")["methods"]["place"])
    inputs = {i.name: i.widget for i in form.inputs}
    inputs["sku"].value = "A1"
    inputs["tags"].value = '"gift"'  # valid JSON, but a str where the method takes a list
    before = len(lab.history())
    form.call_button.click()
    assert "tags: expected list, got &#x27;gift&#x27;" in form.result.value
    assert form.pending is None and len(lab.history()) == before
    form.check.value = False  # sent anyway, as --no-check does
    magic, python = form.code_lines()
    assert magic.endswith("--no-check") and python.endswith("check=False)")
    form.call_button.click()
    assert form.pending is not None and form.pending.result(10)["tags"] == "gift"
    assert len(lab.history()) == before + 1


def test_call_form_shows_tables_errors_and_locks_encryption(lab: Lab) -> None:
    methods = lab.description("orders")["methods"]
    lines = CallForm(lab, "orders", "lines", methods["lines"])
    lines.inputs[0].widget.value = 3
    lines.call_button.click()
    lines.pending.result(10)  # type: ignore[union-attr]
    wait_for(lambda: "<table" in lines.result.value, what="a table")
    assert lines.result.value.count("<tr") == 4  # header + 3 rows
    refuse = CallForm(lab, "orders", "refuse", methods["refuse"])
    refuse.call_button.click()
    with pytest.raises(nl.NuropbAuthorizationError):
        refuse.pending.result(10)  # type: ignore[union-attr]
    wait_for(lambda: "NuropbAuthorizationError" in refuse.result.value, what="the error")
    assert "not your order" in refuse.result.value
    card = CallForm(lab, "orders", "card", methods["card"])
    assert card.encrypt.value and card.encrypt.disabled
    card.inputs[0].widget.value = "4111111111111111"
    card.call_button.click()
    assert card.pending.result(10) == "1111"  # type: ignore[union-attr]
    assert bool(lab.history(1).iloc[0]["encrypted"])


def test_tail_view_live_filter_pause_clear(lab: Lab) -> None:
    tail = lab.tail("view.#", max_rows=500)
    view = tail.widget(rows=5)
    assert isinstance(view, TailView)
    try:
        lab.runner.run(_publish(lab, 2000), 30)
        wait_for(lambda: tail.received == 2000, timeout=30, what="the events")
        wait_for(lambda: "2000 received" in view.status.value, what="the redraw")
        assert view.redraws < 100  # throttled, not one redraw per event
        assert len(view.shown) == 5 and [e.event["i"] for e in view.shown] == [
            1995,
            1996,
            1997,
            1998,
            1999,
        ]
        assert view.table.value.count("<tr>") == 6
        assert "view.odd" in view.status.value and "/s" in view.status.value
        view.filter.value = "view.even"
        wait_for(
            lambda: all(e.topic == "view.even" for e in view.shown) and view.shown, what="filtered"
        )
        view.filter.value = "*.odd"
        wait_for(lambda: view.shown and all(e.topic == "view.odd" for e in view.shown), what="glob")
        view.pause_button.value = True
        assert tail.paused and view.pause_button.description == "Resume"
        lab.publish("view.odd", {"i": -1})
        wait_for(lambda: tail.skipped == 1, what="an event skipped while paused")
        view.pause_button.value = False
        view.clear_button.click()
        wait_for(lambda: view.shown == [] and "0 kept" in view.status.value, what="cleared")
        assert len(tail.df) == 0
    finally:
        view.close()
        tail.stop()


async def _publish(lab: Lab, n: int) -> None:
    api = lab.connection().api
    for i in range(n):
        api.publish_event("view.odd" if i % 2 else "view.even", {"i": i}, {})
    await asyncio.sleep(0)


async def _fake_describer(
    url: str, name: str, description: dict[str, Any], stop: asyncio.Event
) -> None:
    """A bare responder answering nuropb_describe with a crafted description."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            f"nuropb-{name}-sq",
            durable=True,
            arguments={"x-dead-letter-exchange": "nuropb-dl-exchange"},
        )
        await queue.bind("nuropb-rpc-exchange", routing_key=name)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                body = {
                    "tag": "response",
                    "correlation_id": message.correlation_id,
                    "context": {},
                    "trace_id": None,
                    "result": description,
                    "error": None,
                    "warning": None,
                    "reply_to": message.reply_to,
                }
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        codec.encode_json(body),
                        correlation_id=message.correlation_id,
                        headers=codec.headers_for("response", None, False, "0.1.8"),
                    ),
                    routing_key=message.reply_to or "",
                )

        await queue.consume(on_message)
        await stop.wait()
        await queue.delete(if_unused=False, if_empty=False)


class Waiter:
    async def wait(self, seconds: float = 0.005) -> None:
        await asyncio.sleep(seconds)


def test_bench_view_shows_progress_and_stops_a_background_run(lab: Lab) -> None:
    lab.serve(Waiter(), name="waiter")
    run = lab.start_bench("waiter.wait", {"seconds": 0.005}, duration=60, label="view")
    view = run.widget()
    assert isinstance(view, BenchView) and not view.stop_button.disabled
    try:
        wait_for(
            lambda: "running" in view.status.value and "/s" in view.status.value, what="a redraw"
        )
        # calls answered, and the view has drawn them (the bar moves with time alone)
        wait_for(lambda: run.progress.done > 0, what="answered calls")
        wait_for(lambda: view.bar.value > 0 and " 0/s" not in view.status.value, what="a rate")
        assert view.bar.bar_style == "info" and "p99" in view.status.value
        view.stop_button.click()  # a background run: the button works
        result = run.wait(timeout=20)
        assert result.state == "stopped" and result.summary()["count"] > 0
        wait_for(lambda: "stopped" in view.status.value, what="the final redraw")
        assert view.stop_button.disabled and view.bar.bar_style == "warning"
        assert view.redraws < 60  # throttled: a few a second, not one per call
    finally:
        view.close()
    blocking = lab.start_bench("waiter.wait", {"seconds": 0.001}, n=20)
    blocking.blocking = True  # as the magic's blocking run: Stop cannot act while the cell waits
    blocking_view = blocking.widget()
    blocking.wait(timeout=20)
    wait_for(lambda: "done" in blocking_view.status.value, what="the done redraw")
    assert blocking_view.bar.value == 1.0 and blocking_view.bar.bar_style == "success"
    assert blocking_view.stop_button.disabled
    blocking_view.close()


def test_keys_view_warnings(lab: Lab, mesh_url: str) -> None:
    name = f"keyless-{uuid.uuid4().hex[:4]}"
    description = {
        "service_name": name,
        "service_version": None,
        "description": None,
        "warnings": [],
        "encrypted_methods": True,
        "public_key": None,
        "methods": {
            "secret": {
                "description": None,
                "requires_encryption": True,
                "parameters": {"type": "object", "properties": [], "required": []},
            }
        },
    }
    stop = asyncio.Event()
    responder = lab.runner.submit(_fake_describer(mesh_url, name, description, stop))
    try:
        wait_for(
            lambda: (
                lab.runner.run(lab.connection().api.queue_info(f"nuropb-{name}-sq"), 5) == (0, 1)
            ),
            what="the fake service",
        )
        view = KeysView(lab, service=name)
        view.pending.result(10)  # type: ignore[union-attr]
        wait_for(lambda: view.rows, what="rows")
        assert view.warnings[name] == ["encrypted methods but no public key"]
        assert "⚠ encrypted methods but no public key" in view.table.value
    finally:
        lab.runner.loop.call_soon_threadsafe(stop.set)
        responder.result(10)


def test_keys_view_flags_a_changed_key(lab: Lab, mesh_url: str) -> None:
    name = f"rekey-{uuid.uuid4().hex[:4]}"

    def serve() -> nl.RMQAPI:  # served elsewhere (not by this Lab), with a key of its own
        api = nl.RMQAPI(mesh_url, service_name=name, service_instance=Orders())
        lab.runner.run(api.connect(), 10)
        return api

    first = serve()
    view = KeysView(lab, service=name)
    view.pending.result(10)  # type: ignore[union-attr]
    wait_for(lambda: view.rows, what="rows")
    fingerprint = view.rows[0]["fingerprint"]
    assert len(fingerprint) == 64 and view.rows[0]["pinned"] == fingerprint
    assert view.warnings[name] == []
    lab.runner.run(first.disconnect(), 10)
    second = serve()  # a new instance, a new key: not used until trusted
    try:
        view.refresh().result(10)
        wait_for(lambda: view.rows and view.rows[0]["fingerprint"] != fingerprint, what="new key")
        new = view.rows[0]["fingerprint"]
        assert view.rows[0]["pinned"] == fingerprint
        assert any("not the one pinned" in x and new[:16] in x for x in view.warnings[name])
        lab.trust(name, new)
        view.refresh().result(10)
        wait_for(lambda: view.rows and view.rows[0]["pinned"] == new, what="the trusted key")
        assert view.warnings[name] == []
    finally:
        lab.runner.run(second.disconnect(), 10)


def test_connection_status_follows_the_connection(
    lab: Lab, management: ManagementAPI, mesh_url: str
) -> None:
    status = ConnectionStatus(lab, interval=0.2)
    try:
        assert (
            "● connected" in status.value
            and "guest:***@" in status.value
            and "orders" in status.value
        )
        names = asyncio.run(
            visible_connections(management, mesh_url.rsplit("/", 1)[1], 1, "-client-")
        )
        reconnects = lab.connection().api.transport.reconnects
        for name in names:
            asyncio.run(management.close_connection(name, "widget test"))
        wait_for(
            lambda: lab.connection().api.transport.reconnects > reconnects,
            timeout=20,
            what="reconnection",
        )
        wait_for(
            lambda: (
                "● connected" in status.value and f"reconnects {reconnects + 1}" in status.value
            ),
            what="redraw",
        )
    finally:
        status.close()


def test_widgets_with_a_nuropb_service(lab: Lab, mesh_url: str, nuropb_python: Path) -> None:
    name = f"ref-{uuid.uuid4().hex[:6]}"
    peer = subprocess.Popen(
        [str(nuropb_python), str(PEERS / "nuropb_service.py"), mesh_url, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert peer.stdout is not None and peer.stdout.readline().strip() == b"READY"
        browser = ServiceBrowser(lab, refresh_interval=60)
        try:
            wait_for(lambda: name in browser.infos, what="the nuropb service")
            form = browser.select(name, "add")
            assert form is not None
            {i.name: i for i in form.inputs}["a"].widget.value = 40
            form.call_button.click()
            assert form.pending.result(10) == 42  # type: ignore[union-attr]
            secret = browser.select(name, "secret")
            assert secret is not None and secret.encrypt.disabled
            secret.inputs[0].widget.value = "abc"
            secret.call_button.click()
            assert secret.pending.result(10) is not None  # type: ignore[union-attr]
        finally:
            browser.close()
        keys = KeysView(lab, service=name)
        keys.pending.result(10)  # type: ignore[union-attr]
        wait_for(lambda: keys.rows, what="the key row")
        assert keys.rows[0]["public_key"] and keys.rows[0]["key_size"] == 2048
        tail = lab.tail(f"nuropb.{name}.#")
        view = tail.widget()
        lab.call(f"{name}.announce", topic=f"nuropb.{name}.hello", event={"hi": 1})
        wait_for(lambda: view.shown, what="the nuropb event in the view")
        view.close()
        tail.stop()
    finally:
        peer.kill()
        peer.wait(10)
