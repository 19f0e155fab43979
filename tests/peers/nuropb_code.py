"""Code written for nuropb 0.1.8, run with ``nuropb_lab.RMQAPI`` in place of nuropb's.

Run by the python of the compat venv, which has ``nuropb==0.1.8`` and the lab installed side
by side:

    python nuropb_code.py AMQP_URL

The one change from code written for nuropb is the import of RMQAPI. Everything else is
nuropb's: its exception classes in ``except``, its decorators, ``NuropbSuccess`` and
``NuropbCallAgain`` raised by the served object, ``transport.rmq_configuration``. Prints one
JSON object of what happened; the test asserts on it.
"""

import asyncio
import contextlib
import json
import sys
import uuid
from typing import Any

from nuropb.contexts.context_manager import NuropbContextManager
from nuropb.contexts.context_manager_decorator import nuropb_context
from nuropb.contexts.describe import publish_to_mesh
from nuropb.interface import (
    NuropbAuthorizationError,
    NuropbCallAgain,
    NuropbException,
    NuropbMessageError,
    NuropbNotDeliveredError,
    NuropbSuccess,
    NuropbTimeoutError,
    NuropbTransportError,
    NuropbValidationError,
)
from nuropb.rmq_api import RMQAPI as NuropbRMQAPI

from nuropb_lab import RMQAPI  # the one line that differs from code written for nuropb

TTL = 10_000


def authorise(token: str) -> Any:
    return {"user": "ann"} if token == "good" else None


class Inventory:
    """A service object written for nuropb."""

    _service_name = "compat-inventory"
    _version = "1.0.0"

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    def stock(self, sku: str) -> int:
        return {"A1": 3}.get(sku, 0)

    def reserve(self, sku: str) -> Any:
        # a predetermined outcome: answer now and announce it
        raise NuropbSuccess(
            result={"sku": sku, "reserved": True},
            events=[{"topic": "compat.reserved", "event": {"sku": sku}, "target": None}],
        )

    def flaky(self, key: str) -> int:
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if self.attempts[key] == 1:
            raise NuropbCallAgain(description="not yet")
        return self.attempts[key]

    def always_again(self) -> None:
        raise NuropbCallAgain(description="never")

    def check(self, qty: int) -> int:
        if qty < 0:
            raise NuropbValidationError(description="qty must not be negative")
        return qty

    async def slow(self) -> str:
        await asyncio.sleep(5)
        return "late"

    @nuropb_context
    @publish_to_mesh(description="Ship an order, telling the mesh")
    def ship(self, ctx: NuropbContextManager, order: str) -> str:
        ctx.add_event({"topic": "compat.shipped", "event": {"order": order}, "target": None})
        return f"shipped {order}"

    @nuropb_context
    @publish_to_mesh(authorize_func=authorise, context_token_key="Authorization")
    def whoami(self, ctx: NuropbContextManager) -> str:
        return str((ctx.user_claims or {}).get("user"))


def caught(exc: BaseException) -> list[str]:
    """The nuropb.interface classes that catch ``exc``."""
    classes = [
        NuropbAuthorizationError,
        NuropbException,
        NuropbMessageError,
        NuropbNotDeliveredError,
        NuropbTimeoutError,
        NuropbTransportError,
        NuropbValidationError,
    ]
    return [cls.__name__ for cls in classes if isinstance(exc, cls)]


async def attempt(coro: Any) -> dict[str, Any]:
    try:
        return {"result": await coro}
    except Exception as exc:  # what nuropb's classes make of it is the point
        return {"raised": type(exc).__name__, "caught_by": caught(exc), "text": str(exc)}


async def main(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    inventory = Inventory()
    service = RMQAPI(
        amqp_url=url,
        service_name="compat-inventory",
        instance_id=uuid.uuid4().hex,
        service_instance=inventory,
        transport_settings={"event_bindings": ["compat.#"], "prefetch_count": 1},
    )
    await service.connect()
    client = RMQAPI(amqp_url=url)
    await client.connect()
    seen: list[dict[str, Any]] = []
    three = asyncio.Event()

    def on_event(event: Any) -> None:
        seen.append({"topic": event.topic, "event": event.event})
        if len(seen) >= 3:
            three.set()

    await client.subscribe(["compat.#"], on_event)
    try:
        out["rmq_configuration"] = service.transport.rmq_configuration
        out["client_configuration"] = client.transport.rmq_configuration
        out["transport"] = {
            "amqp_url_is_given": service.transport.amqp_url == url,
            "service_name": service.transport.service_name,
            "instance_id_is_api_s": service.transport.instance_id == service.instance_id,
            "connected": service.transport.connected,
            "is_leader": service.transport.is_leader,
            "response_queue": service.transport.response_queue,
            "rpc_exchange": service.transport.rpc_exchange,
            "events_exchange": service.transport.events_exchange,
        }
        out["api"] = {
            "service_name": service.service_name,
            "client_only": [service.client_only, client.client_only],
            "connected": service.connected,
            "is_leader": service.is_leader,
        }

        def call(method: str, params: dict[str, Any], context: Any = None, ttl: int = TTL) -> Any:
            return client.request("compat-inventory", method, params, context or {}, ttl=ttl)

        out["stock"] = await attempt(call("stock", {"sku": "A1"}))
        out["missing"] = await attempt(client.request("compat-nobody", "x", {}, {}, ttl=TTL))
        out["unknown_method"] = await attempt(call("nope", {}))
        out["invalid"] = await attempt(call("check", {"qty": -1}))
        out["timeout"] = await attempt(call("slow", {}, ttl=300))
        out["reserve"] = await attempt(call("reserve", {"sku": "B"}))
        out["flaky"] = await attempt(call("flaky", {"key": "k"}))
        out["always_again"] = await attempt(call("always_again", {}))
        out["ship"] = await attempt(call("ship", {"order": "o1"}))
        out["whoami"] = await attempt(call("whoami", {}, {"Authorization": "good"}))
        out["whoami_bad"] = await attempt(call("whoami", {}, {"Authorization": "bad"}))
        out["describe"] = await client.describe_service("compat-inventory")
        out["bad_url"] = await attempt(
            RMQAPI(amqp_url=url.rsplit("/", 1)[0] + "/compat-no-such-vhost").connect()
        )
        # nuropb's own client calls the lab-served object written for nuropb
        theirs = NuropbRMQAPI(amqp_url=url)
        await asyncio.wait_for(theirs.connect(), 20)
        try:
            out["nuropb_reserve"] = await attempt(
                asyncio.wait_for(
                    theirs.request("compat-inventory", "reserve", {"sku": "C"}, {}), 10
                )
            )
        finally:
            await asyncio.wait_for(theirs.disconnect(), 10)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(three.wait(), 10)
        out["events"] = sorted(seen, key=lambda e: json.dumps(e, sort_keys=True))
        out["attempts"] = inventory.attempts
    finally:
        await client.disconnect()
        await service.disconnect()
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print(json.dumps(asyncio.run(main(sys.argv[1])), default=str))
