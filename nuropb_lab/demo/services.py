"""Demo services that exercise every feature of the lab.

- ``orders``: typed parameters and defaults, a slow async method, one that fails, one that
  returns a list of records; placing an order takes the stock from ``inventory`` over the
  mesh (carrying the trace id) and publishes ``orders.placed``.
- ``inventory``: stock levels, a command-friendly ``restock``, low-stock records, and a
  planted bug for ``lab.check`` to find: ``days_of_stock`` divides by ``per_day``, which may
  be 0.
- ``vault``: encrypted methods and an authorize function (token ``demo-token``).
- ``sensors``: publishes readings on ``sensors.<kind>.<room>`` several times a second.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import logging
import random
from typing import Any

from ..mesh import (
    RMQAPI,
    NuropbContextManager,
    NuropbException,
    NuropbValidationError,
    nuropb_context,
    publish_to_mesh,
)
from ..mesh.service import current_trace_id

__all__ = ["DEMO_TOKEN", "Inventory", "Orders", "Sensors", "Vault", "publish_readings"]

log = logging.getLogger(__name__)

DEMO_TOKEN = "demo-token"
ROOMS = ("kitchen", "lab", "office", "server-room")


class Inventory:
    """Stock levels per SKU."""

    _service_name = "inventory"
    _version = "1.4.0"

    def __init__(self) -> None:
        self.orders_seen = 0  # orders.placed events heard (the service graph shows them)
        # K100: what the web shop (traffic.py) sells, so the other SKUs stay as the tours expect
        self.levels: dict[str, int] = {"A100": 12, "B200": 3, "C300": 40, "D400": 0, "K100": 400}

    def stock(self, sku: str) -> dict[str, Any]:
        """Units in stock for one SKU."""
        if sku not in self.levels:
            raise NuropbValidationError(f"unknown SKU {sku!r}")
        return {"sku": sku, "units": self.levels[sku]}

    def restock(self, sku: str, qty: int = 10) -> dict[str, Any]:
        """Add units (works as a command too)."""
        if qty <= 0:
            raise NuropbValidationError("qty must be positive")
        self.levels[sku] = self.levels.get(sku, 0) + qty
        return {"sku": sku, "units": self.levels[sku]}

    def low_stock(self, threshold: int = 5) -> list[dict[str, Any]]:
        """SKUs at or below ``threshold`` units, as records."""
        return [{"sku": s, "units": u} for s, u in sorted(self.levels.items()) if u <= threshold]

    def days_of_stock(self, sku: str, per_day: int) -> float:
        """How many days the stock of a SKU lasts, selling ``per_day`` units a day."""
        # the planted bug (notebook 07 finds it): nothing stops per_day from being 0
        return self.levels.get(sku, 0) / per_day

    def take(self, sku: str, qty: int) -> int:
        """Remove units; fails when there are not enough."""
        have = self.levels.get(sku, 0)
        if qty > have:
            raise NuropbValidationError(f"only {have} units of {sku} in stock")
        self.levels[sku] = have - qty
        return self.levels[sku]

    def _handle_event_(self, topic: str, event: Any, target: Any, context: Any) -> None:
        # subscribed to orders.placed (see run.py): what was sold, for the next stock count
        self.orders_seen += 1


class Orders:
    """Orders: place, list, and report on them."""

    _service_name = "orders"
    _version = "2.3.1"

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        #: the orders service's own API, set when it is served: stock is then taken over the
        #: mesh (inventory.take), else from ``inventory`` directly
        self.api: RMQAPI | None = None
        self.orders: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1001)
        self._web_ids = itertools.count(1001)

    async def _take(self, sku: str, qty: int) -> int:
        if self.api is None:
            return self.inventory.take(sku, qty)
        left = await self.api.request(
            "inventory", "take", {"sku": sku, "qty": qty}, {}, trace_id=current_trace_id(), ttl=5000
        )
        return int(left)

    @nuropb_context
    async def place_order(
        self,
        ctx: NuropbContextManager,
        sku: str,
        qty: int = 1,
        express: bool = False,
        note: str = "",
    ) -> dict[str, Any]:
        """Place an order for ``qty`` units of ``sku``; publishes ``orders.placed``."""
        if qty < 1:
            raise NuropbValidationError("qty must be at least 1")
        left = await self._take(sku, qty)
        # the web shop's orders (context channel "web") are numbered apart: W-1001, ...
        web = ctx.context.get("channel") == "web"
        order_id = f"W-{next(self._web_ids)}" if web else f"O-{next(self._ids)}"
        order: dict[str, Any] = {
            "order_id": order_id,
            "sku": sku,
            "qty": qty,
            "express": express,
            "note": note,
            "placed_at": datetime.datetime.now(datetime.UTC),
            "stock_left": left,
        }
        self.orders[order_id] = order
        ctx.add_event(
            {"topic": "orders.placed", "event": {k: order[k] for k in ("order_id", "sku", "qty")}}
        )
        return order

    def get_order(self, order_id: str) -> dict[str, Any]:
        """One order by id."""
        try:
            return self.orders[order_id]
        except KeyError:
            raise NuropbValidationError(f"no order {order_id!r}") from None

    def list_orders(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest orders, as records (a table in the call form)."""
        return list(self.orders.values())[-limit:]

    def cancel_order(self, order_id: str) -> None:
        """Always fails: cancelling is not implemented in the demo."""
        raise NotImplementedError(f"cannot cancel {order_id}: the demo has no cancellations")

    async def slow_report(self, seconds: float = 2.0) -> dict[str, Any]:
        """A slow async method: sleeps, then summarises (try a short --timeout)."""
        await asyncio.sleep(seconds)
        units = sum(o["qty"] for o in self.orders.values())
        return {"orders": len(self.orders), "units": units, "took_s": seconds}


def authorize(token: str) -> dict[str, Any] | None:
    """The demo's authorize function: one valid token."""
    return {"sub": "demo-user", "scope": ["vault"]} if token == DEMO_TOKEN else None


class Vault:
    """Secrets, only over encrypted calls; reading needs the demo token."""

    _service_name = "vault"
    _version = "0.9.0"

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {"launch-code": "0000"}

    @publish_to_mesh(requires_encryption=True, description="Store a secret (encrypted calls only).")
    def store(self, name: str, value: str) -> dict[str, Any]:
        self.secrets[name] = value
        return {"stored": name}

    @nuropb_context
    @publish_to_mesh(
        requires_encryption=True,
        authorize_func=authorize,
        description="Read a secret: encrypted, and with context Authorization = the demo token.",
    )
    def reveal(self, ctx: NuropbContextManager, name: str) -> dict[str, Any]:
        if name not in self.secrets:
            raise NuropbValidationError(f"no secret {name!r}")
        return {
            "name": name,
            "value": self.secrets[name],
            "for": (ctx.user_claims or {}).get("sub"),
        }

    def names(self) -> list[str]:
        """Names of the stored secrets (plaintext is fine for names)."""
        return sorted(self.secrets)


class Sensors:
    """Room sensors publishing readings on sensors.<kind>.<room>."""

    _service_name = "sensors"
    _version = "1.0.0"

    def __init__(self, rate: float = 8.0, seed: int | None = None) -> None:
        self.rate = rate
        self.published = 0
        self._random = random.Random(seed)
        self._temperature = {room: 20.0 + 2 * i for i, room in enumerate(ROOMS)}

    def rooms(self) -> list[str]:
        """The rooms with sensors."""
        return list(ROOMS)

    def set_rate(self, per_second: float) -> float:
        """Change how many readings a second are published (0 pauses)."""
        if not 0 <= per_second <= 1000:
            raise NuropbValidationError("per_second must be between 0 and 1000")
        self.rate = per_second
        return self.rate

    def _reading(self) -> tuple[str, dict[str, Any]]:
        """The next reading: (topic, event)."""
        room = self._random.choice(ROOMS)
        roll = self._random.random()
        if roll < 0.6:
            self._temperature[room] += self._random.uniform(-0.3, 0.3)
            return f"sensors.temperature.{room}", {
                "room": room,
                "celsius": round(self._temperature[room], 2),
            }
        if roll < 0.9:
            return f"sensors.humidity.{room}", {
                "room": room,
                "percent": round(self._random.uniform(30, 60), 1),
            }
        return f"sensors.door.{room}", {"room": room, "open": self._random.random() < 0.5}


async def publish_readings(sensors: Sensors, api: RMQAPI, stop: asyncio.Event) -> None:
    """Publish the sensors' readings until ``stop`` is set."""
    while not stop.is_set():
        if sensors.rate <= 0 or not api.connected:  # paused, or reconnecting
            await asyncio.sleep(0.2)
            continue
        topic, event = sensors._reading()
        try:
            await api.publish_event(topic, event, {"source": "demo"})
            sensors.published += 1
        except NuropbException as exc:  # e.g. while reconnecting: skip this reading
            log.debug("sensor reading not published: %s", exc)
        await asyncio.sleep(1.0 / sensors.rate)
