"""Run the demo mesh: configure it, serve the demo services, publish sensor readings.

A tour may take a service off the mesh and put it back, as if it went down and came up
again: an event on ``demo.control``, ``{"stop": "inventory"}`` or ``{"start": "inventory"}``
(orders, inventory or vault), e.g. ``%nuropb publish demo.control {"stop": "inventory"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ..mesh import RMQAPI, MeshEvent, NuropbException, configure_mesh, crypto, parse_amqp_url
from .services import Inventory, Orders, Sensors, Vault, publish_readings
from .traffic import shop, shopper_api

__all__ = ["CONTROL_TOPIC", "DemoMesh", "demo_process", "run_demo", "vault_key", "wait_for_demo"]

log = logging.getLogger(__name__)

CONTROL_TOPIC = "demo.control"
CONTROLLED = ("orders", "inventory", "vault")  # sensors' publisher holds its API
KEY_ENV = "NUROPB_DEMO_KEY"


def vault_key() -> rsa.RSAPrivateKey:
    """The demo vault's RSA key, the same every run: a new one each time would be a changed
    key to every Lab that pinned it. Kept in ``$NUROPB_DEMO_KEY``, else in the user's data
    directory (made on first use, readable by the user only)."""
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    path = Path(os.environ.get(KEY_ENV) or Path(data) / "nuropb-lab" / "demo-vault-key.pem")
    try:
        try:
            return crypto.load_private_pem(path.read_bytes())
        except FileNotFoundError:
            key = crypto.new_private_key()
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # written aside, then linked into place: two first uses at once (two demo meshes,
            # two test runs) each read a whole key, and the same one
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
            aside = Path(name)
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(crypto.private_pem(key))
            try:
                os.link(aside, path)
            except FileExistsError:
                return crypto.load_private_pem(path.read_bytes())
            finally:
                aside.unlink()
            return key
    except (OSError, ValueError, TypeError) as exc:
        raise RuntimeError(f"the demo vault's key {path} cannot be used: {exc}") from None


class DemoMesh:
    """The demo services, served on one mesh."""

    def __init__(self, url: str, rate: float = 8.0) -> None:
        self.url = url
        self.inventory = Inventory()
        self.orders = Orders(self.inventory)
        self.vault = Vault()
        self.sensors = Sensors(rate)
        objects: dict[str, Any] = {
            "orders": self.orders,
            "inventory": self.inventory,
            "vault": self.vault,
            "sensors": self.sensors,
        }
        self.objects = objects
        self.vault_key = vault_key()  # one key, kept when the vault is stopped and started
        self.apis = {name: self._api(name) for name in objects}
        self.clients: dict[str, RMQAPI] = {}  # the control's; the web shop's, with traffic
        self._control: set[asyncio.Task[None]] = set()

    def _api(self, name: str) -> RMQAPI:
        # inventory hears of every order placed (an event edge in the service graph)
        settings: dict[str, dict[str, Any]] = {
            "inventory": {"event_bindings": ["orders.placed"]},
            "vault": {"private_key": self.vault_key},
        }
        api = RMQAPI(
            self.url,
            name,
            service_instance=self.objects[name],
            transport_settings=settings.get(name),
        )
        if name == "orders":
            self.orders.api = api  # orders takes stock over the mesh
        return api

    async def start(self) -> None:
        await configure_mesh(self.url)
        for api in self.apis.values():
            await api.connect()
        control = self.clients["control"] = RMQAPI(self.url)
        await control.connect()
        await control.subscribe([CONTROL_TOPIC], self._on_control)

    def _on_control(self, event: MeshEvent) -> None:
        """``{"stop": NAME}`` / ``{"start": NAME}`` on demo.control: a service goes off the
        mesh (its queue stays, so calls wait there) or comes back."""
        order = event.event if isinstance(event.event, dict) else {}
        for action in ("stop", "start"):
            name = order.get(action)
            if name in CONTROLLED:
                task = asyncio.get_running_loop().create_task(self._switch(action, name))
                self._control.add(task)
                task.add_done_callback(self._control.discard)
            elif name is not None:
                log.warning("demo.control: %s %r is not one of %s", action, name, CONTROLLED)

    async def _switch(self, action: str, name: str) -> None:
        running = self.apis[name]
        if action == "stop" and running.connected:
            await running.disconnect()
            log.info("demo.control: %s stopped", name)
        elif action == "start" and not running.connected:
            self.apis[name] = api = self._api(name)
            await api.connect()
            log.info("demo.control: %s started", name)

    async def stop(self) -> None:
        for api in [*self.clients.values(), *self.apis.values()]:
            with contextlib.suppress(Exception):
                await api.disconnect()


async def run_demo(
    url: str,
    seconds: float | None = None,
    rate: float = 8.0,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[DemoMesh], None] | None = None,
    traffic: float = 0.0,
) -> DemoMesh:
    """Serve the demo until ``stop`` is set or ``seconds`` pass; with ``traffic``, a web shop
    visits the mesh that many times a second (see traffic.py)."""
    stop = stop or asyncio.Event()
    demo = DemoMesh(url, rate)
    await demo.start()
    publisher = asyncio.create_task(publish_readings(demo.sensors, demo.apis["sensors"], stop))
    shopper: asyncio.Task[int] | None = None
    if traffic > 0:
        shopper_client = shopper_api(url)
        await shopper_client.connect()
        demo.clients["shopper"] = shopper_client  # disconnected with the services
        shopper = asyncio.create_task(shop(shopper_client, stop, traffic))
    if on_ready is not None:
        on_ready(demo)
    try:
        if seconds is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
    finally:
        stop.set()
        await publisher
        if shopper is not None:
            await shopper
        await demo.stop()
    return demo


async def wait_for_demo(url: str, timeout: float = 60.0) -> float:
    """Wait until the demo mesh answers a call; returns the seconds it took."""
    started = time.monotonic()
    parse_amqp_url(url)  # a bad URL fails at once
    last: Exception | None = None
    while time.monotonic() - started < timeout:
        try:
            async with RMQAPI(
                url, transport_settings={"reconnect": False, "connect_timeout": 3}
            ) as api:
                await api.request("orders", "list_orders", {"limit": 1}, {}, ttl=2000)
                await api.request("sensors", "rooms", {}, {}, ttl=2000)
                return time.monotonic() - started
        except NuropbException as exc:
            last = exc
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the demo mesh did not answer within {timeout:.0f} s: {last}")


@contextlib.contextmanager
def demo_process(
    url: str,
    rate: float = 8.0,
    timeout: float = 60.0,
    output: Any = None,
    traffic: float | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m nuropb_lab.demo`` in a child process (the broker must answer already),
    waited for until it answers; stopped with SIGTERM on exit. ``output``: a file for its
    stdout and stderr (default: discarded). ``traffic``: the web shop's visits a second (None:
    the CLI's default; 0: none)."""
    command = [sys.executable, "-m", "nuropb_lab.demo", "--url", url, "--no-broker"]
    if traffic is not None:
        command += ["--traffic", str(traffic)]
    process = subprocess.Popen(
        [*command, "--rate", str(rate)],
        stdin=subprocess.DEVNULL,
        stdout=output if output is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output is not None else None,
    )
    try:
        waited = asyncio.run(_wait_or_exit(url, timeout, process))
        log.info("the demo mesh answered after %.1f s", waited)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


async def _wait_or_exit(url: str, timeout: float, process: subprocess.Popen[bytes]) -> float:
    waiter = asyncio.ensure_future(wait_for_demo(url, timeout))
    while not waiter.done():
        if process.poll() is not None:
            waiter.cancel()
            raise RuntimeError(f"the demo mesh exited with {process.returncode} before answering")
        await asyncio.wait([waiter], timeout=0.2)
    return waiter.result()
