"""A service on the published nuropb 0.1.8, the interop peer of the lab's tests.

Run by the python of the nuropb venv (not the lab's):

    python nuropb_service.py AMQP_URL SERVICE_NAME

It serves :class:`InteropService` under SERVICE_NAME with nuropb's own ``RMQAPI``, prints one
line ``READY`` on stdout once connected, and runs until stdin closes or it gets SIGTERM/SIGINT.
Nothing else is written to stdout; nuropb's logging goes to stderr.

Events: the service queue is bound to ``lab.{SERVICE_NAME}.#``. Every event received there is
recorded and echoed back, through nuropb's ``publish_event``, on ``nuropb.{SERVICE_NAME}.echo``.
The ``remember`` command publishes ``nuropb.{SERVICE_NAME}.remembered``.

The mesh's exchanges must exist already: nuropb 0.1.8 does not declare them when it connects.

No ``from __future__ import annotations`` here: nuropb 0.1.8's describe reads
``annotation.__name__`` and fails on string annotations.
"""

import asyncio
import logging
import sys
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from nuropb.contexts.context_manager import NuropbContextManager
from nuropb.contexts.context_manager_decorator import nuropb_context
from nuropb.contexts.describe import publish_to_mesh
from nuropb.interface import NuropbValidationError
from nuropb.rmq_api import RMQAPI
from peer_life import serve, until_stopped

SERVICE_VERSION = "0.1.8-interop"


class InteropService:
    """The nuropb 0.1.8 reference service of the lab's interop tests."""

    def __init__(self, service_name: str) -> None:
        # nuropb's describe reads these private attributes
        self._service_name = service_name
        self._version = SERVICE_VERSION
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._api: RMQAPI | None = None
        self._memory: dict[str, Any] = {}
        self._events: list[dict[str, Any]] = []

    # --- requests -------------------------------------------------------------------

    def add(self, a: int, b: int = 2) -> int:
        """Add two numbers."""
        return a + b

    async def async_add(self, a: int, b: int = 2) -> int:
        await asyncio.sleep(0.01)
        return a + b

    def fail(self, message: str) -> None:
        raise ValueError(message)

    async def async_fail(self, message: str) -> None:
        await asyncio.sleep(0)
        raise NuropbValidationError(description=message)

    @publish_to_mesh(requires_encryption=True, description="Reverse a secret text")
    def secret(self, text: str) -> dict[str, Any]:
        return {"reversed": text[::-1], "length": len(text)}

    @nuropb_context
    def announce(
        self, ctx: NuropbContextManager, topic: str, event: Any, trace_id: str | None = None
    ) -> str:
        """Publish ``event`` on ``topic`` through the nuropb API, with the request's context."""
        self._publish(topic, event, ctx.context, trace_id)
        return "published"

    def recall(self, key: str) -> Any:
        return self._memory.get(key)

    def seen_events(self) -> list[dict[str, Any]]:
        return self._events

    # --- commands -------------------------------------------------------------------

    def remember(self, key: str, value: str) -> None:
        """A command: store ``value`` and announce it on ``nuropb.{service}.remembered``."""
        self._memory[key] = value
        self._publish(
            f"nuropb.{self._service_name}.remembered",
            {"key": key, "value": value},
            {"service": self._service_name},
            None,
        )

    # --- events ---------------------------------------------------------------------

    def _handle_event_(
        self, topic: str, event: Any, target: list[Any] | None = None, context: Any = None
    ) -> None:
        record = {"topic": topic, "event": event, "target": target, "context": context}
        self._events.append(record)
        self._publish(f"nuropb.{self._service_name}.echo", record, {"echo": True}, None)

    def _publish(self, topic: str, event: Any, context: Any, trace_id: str | None) -> None:
        assert self._api is not None, "the service is not on the mesh"
        self._api.publish_event(topic=topic, event=event, context=context, trace_id=trace_id)


async def main(amqp_url: str, service_name: str) -> int:
    stop = until_stopped()
    service = InteropService(service_name)
    api = RMQAPI(
        amqp_url=amqp_url,
        service_name=service_name,
        service_instance=service,
        transport_settings={
            "event_bindings": [f"lab.{service_name}.#"],
            "prefetch_count": 1,
        },
    )
    service._api = api
    return await serve([api], stop)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} AMQP_URL SERVICE_NAME", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
