"""The demo mesh: every demo service answers, sensors publish, the CLI starts and waits."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_for

import nuropb_lab as nl
from nuropb_lab.demo.broker import ensure_broker
from nuropb_lab.demo.run import run_demo, wait_for_demo
from nuropb_lab.demo.services import DEMO_TOKEN
from nuropb_lab.lab import Lab


@pytest.fixture(scope="module")
def demo(mesh_url: str) -> Iterator[Lab]:
    lab = Lab(timeout=10)
    stop = asyncio.Event()
    task = lab.runner.submit(run_demo(mesh_url, rate=50, stop=stop))
    lab.runner.run(wait_for_demo(mesh_url, 30), 40)
    lab.connect(mesh_url)
    yield lab
    lab.runner.loop.call_soon_threadsafe(stop.set)
    task.result(20)
    lab.close()


def test_services_are_listed_and_described(demo: Lab) -> None:
    frame = demo.services().set_index("service")
    assert set(frame.index) >= {"orders", "inventory", "vault", "sensors"}
    assert (frame.loc[["orders", "inventory", "vault", "sensors"], "instances"] == 1).all()
    assert bool(frame.loc["vault", "encrypted"]) and not bool(frame.loc["orders", "encrypted"])
    methods = set(demo.describe("sensors")["method"])
    assert methods == {"rooms", "set_rate"}  # the publishing loop is not a mesh method


def test_orders_and_inventory(demo: Lab) -> None:
    order = demo.call("orders.place_order", sku="C300", qty=2, express=True)
    assert order["order_id"].startswith("O-") and order["stock_left"] == 38
    assert order["placed_at"].endswith("Z")
    assert demo.call("orders.get_order", order_id=order["order_id"])["sku"] == "C300"
    assert demo.call("orders.list_orders")[-1]["order_id"] == order["order_id"]
    with pytest.raises(nl.NuropbValidationError, match="only 0 units of D400"):
        demo.call("orders.place_order", sku="D400")
    with pytest.raises(nl.NuropbException, match="no cancellations"):
        demo.call("orders.cancel_order", order_id=order["order_id"])
    with pytest.raises(nl.NuropbTimeoutError):
        demo.call("orders.slow_report", seconds=2, timeout=0.2)
    assert demo.call("orders.slow_report", seconds=0.05)["orders"] >= 1
    assert {"sku": "D400", "units": 0} in demo.call("inventory.low_stock")
    demo.command("inventory.restock", sku="D400", qty=5)
    deadline = time.monotonic() + 10
    while demo.call("inventory.stock", sku="D400")["units"] != 5:  # the command runs apart
        assert time.monotonic() < deadline, "the restock command never ran"
        time.sleep(0.02)


def test_vault_needs_encryption_and_the_token(demo: Lab) -> None:
    assert demo.call("vault.store", name="k", value="v") == {"stored": "k"}  # encrypted by itself
    with pytest.raises(nl.EncryptionRefused, match="requires encryption"):
        demo.call("vault.store", name="k", value="v", encrypt=False)
    with pytest.raises(nl.NuropbAuthenticationError):
        demo.call("vault.reveal", name="k")
    with pytest.raises(nl.NuropbAuthorizationError):
        demo.call("vault.reveal", name="k", context={"Authorization": "wrong"})
    revealed = demo.call("vault.reveal", name="k", context={"Authorization": DEMO_TOKEN})
    assert revealed == {"name": "k", "value": "v", "for": "demo-user"}
    assert demo.call("vault.names") == ["k", "launch-code"]


def test_the_planted_bug(demo: Lab) -> None:
    assert demo.call("inventory.days_of_stock", sku="C300", per_day=4) > 0
    with pytest.raises(nl.NuropbException, match="division by zero") as raised:
        demo.call("inventory.days_of_stock", sku="C300", per_day=0)
    assert raised.value.remote_name == "ZeroDivisionError"


def test_a_control_event_takes_a_service_off_the_mesh_and_back(demo: Lab) -> None:
    def consumers() -> int:
        found = demo.runner.run(demo.connection().api.queue_info("nuropb-inventory-sq"), 10)
        return found[1] if found is not None else -1

    demo.publish("demo.control", {"stop": "inventory"})
    wait_for(lambda: consumers() == 0, 15, "inventory to leave")
    with pytest.raises(nl.NuropbTimeoutError):  # its queue stays: the call waits there
        demo.call("inventory.stock", sku="A100", timeout=0.3)
    demo.publish("demo.control", {"start": "inventory"})
    wait_for(lambda: consumers() == 1, 15, "inventory to come back")
    assert demo.call("inventory.stock", sku="A100")["sku"] == "A100"


def test_sensors_publish_on_several_topics(demo: Lab) -> None:
    tail = demo.tail("sensors.#")
    loop = asyncio.new_event_loop()
    try:
        deadline = loop.time() + 15
        while len({e.topic.split(".")[1] for e in tail.snapshot()}) < 2 and loop.time() < deadline:
            loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        loop.close()
    kinds = {e.topic.split(".")[1] for e in tail.snapshot()}
    assert kinds <= {"temperature", "humidity", "door"} and len(kinds) >= 2
    assert all(e.event["room"] in demo.call("sensors.rooms") for e in tail.snapshot())
    assert demo.call("sensors.set_rate", per_second=20) == 20
    with pytest.raises(nl.NuropbValidationError):
        demo.call("sensors.set_rate", per_second=-1)
    tail.stop()


def test_cli_runs_for_a_while_and_wait_sees_it(fresh_mesh_url: str) -> None:
    ensure_broker()  # already running here: it is used, not started
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nuropb_lab.demo",
            "--url",
            fresh_mesh_url,
            "--for",
            "20",
            "--no-broker",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        line = run.stdout.readline()
        assert (
            line.startswith("demo mesh ready on amqp://guest:***@")
            and "orders, inventory, vault, sensors" in line
        )
        waited = subprocess.run(
            [
                sys.executable,
                "-m",
                "nuropb_lab.demo",
                "wait",
                "--url",
                fresh_mesh_url,
                "--timeout",
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert waited.returncode == 0 and "demo mesh answers" in waited.stdout
    finally:
        run.terminate()
        assert run.wait(20) == 0  # SIGTERM stops it cleanly


def test_wait_gives_up_with_a_clear_error(fresh_mesh_url: str) -> None:
    waited = subprocess.run(
        [
            sys.executable,
            "-m",
            "nuropb_lab.demo",
            "wait",
            "--url",
            fresh_mesh_url,
            "--timeout",
            "1.5",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert waited.returncode == 1 and "did not answer within 2 s" in waited.stderr


def test_two_first_uses_of_the_vault_key_get_the_same_whole_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two demo meshes (or test runs) started at once both make the key on first use: each
    reads a whole key, and the same one."""
    from concurrent.futures import ThreadPoolExecutor

    from nuropb_lab.demo.run import KEY_ENV, vault_key
    from nuropb_lab.mesh import crypto

    path = tmp_path / "key.pem"
    monkeypatch.setenv(KEY_ENV, str(path))
    with ThreadPoolExecutor(6) as pool:
        keys = list(pool.map(lambda _: crypto.private_pem(vault_key()), range(6)))
    assert set(keys) == {path.read_text()}
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]  # nothing left aside
    assert path.stat().st_mode & 0o777 == 0o600
