"""The demo mesh's traffic: a web shop whose customers call the mesh a few times a second.

Each visit is a trace of its own (``web-00001`` ...): mostly orders of kettles (SKU K100;
orders -> inventory.take, then the ``orders.placed`` event), stock lookups and order lookups,
now and then a room list or an encrypted call to the vault; a few fail (an order larger than
the stock, an order id that does not exist). Stock is restocked by a command when it runs
low. The shop calls as its own client (response queue ``nuropb-shopper-{id}-rq``), so the
service graph shows it as ``shopper``. It leaves the SKUs and orders of the tours alone.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid

from ..mesh import RMQAPI, NuropbException, Topology

__all__ = ["SHOPPER", "shop", "shopper_api"]

log = logging.getLogger(__name__)

SHOPPER = "shopper"
SKU = "K100"
LOW = 60  # restock below this many
TTL = 5000  # ms


def shopper_api(url: str) -> RMQAPI:
    """A client API whose response queue names it ``shopper``."""
    queue = Topology.response_queue(SHOPPER, uuid.uuid4().hex)
    return RMQAPI(url, transport_settings={"response_queue": queue})


async def shop(api: RMQAPI, stop: asyncio.Event, rate: float = 3.0, seed: int | None = None) -> int:
    """Visit the shop about ``rate`` times a second until ``stop`` is set; returns the visits."""
    rnd = random.Random(seed)
    visits = placed = 0
    while not stop.is_set():
        if rate <= 0 or not api.connected:
            await asyncio.sleep(0.2)
            continue
        visits += 1
        trace = f"web-{visits:05d}"
        roll = rnd.random()
        try:
            if roll < 0.5:
                qty = rnd.choice((1, 1, 1, 2, 3)) if rnd.random() > 0.08 else 999  # too many
                order = await api.request(
                    "orders", "place_order", {"sku": SKU, "qty": qty}, {"channel": "web"},
                    trace_id=trace, ttl=TTL,
                )  # fmt: skip
                placed += 1
                if isinstance(order, dict) and order.get("stock_left", LOW) < LOW:
                    await api.command(
                        "inventory", "restock", {"sku": SKU, "qty": 300}, {}, trace_id=trace
                    )
            elif roll < 0.7:
                await api.request("inventory", "stock", {"sku": SKU}, {}, trace_id=trace, ttl=TTL)
            elif roll < 0.85:
                order_id = f"W-{rnd.randint(1001, 1003 + placed)}"  # now and then not placed
                await api.request(
                    "orders", "get_order", {"order_id": order_id}, {}, trace_id=trace, ttl=TTL
                )
            elif roll < 0.95:
                await api.request("sensors", "rooms", {}, {}, trace_id=trace, ttl=TTL)
            else:
                await api.request(
                    "vault", "store", {"name": "web-session", "value": uuid.uuid4().hex}, {},
                    trace_id=trace, ttl=TTL, encrypted=True,
                )  # fmt: skip
        except NuropbException as exc:  # the failures are part of the show
            log.debug("visit %s: %s: %s", trace, type(exc).__name__, exc)
        try:
            await asyncio.wait_for(stop.wait(), rnd.uniform(0.5, 1.5) / rate)
        except TimeoutError:
            pass
    return visits
