"""A bench peer on the published nuropb 0.1.8 (run by the nuropb venv's python).

    python nuropb_peer.py serve URL NAME PREFETCH
    python nuropb_peer.py client URL PREFETCH

See _common.py for the stdin/stdout protocol. No ``from __future__ import annotations``:
nuropb 0.1.8's describe reads ``annotation.__name__``.
"""

import asyncio
import logging
import sys
import time
from typing import Any

from _common import command_loop, measure, peer_main
from cryptography.hazmat.primitives.asymmetric import rsa
from nuropb.contexts.describe import publish_to_mesh
from nuropb.rmq_api import RMQAPI

PARAMS = {"value": "ping"}
CONNECT_TIMEOUT = 20.0


class EchoService:
    """The echo service the RPC benchmarks call; counts commands and events."""

    def __init__(self, name: str) -> None:
        self._service_name = name  # nuropb's describe reads these
        self._version = "bench"
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.commands = 0
        self.events = 0

    def echo(self, value: Any = None) -> Any:
        return value

    @publish_to_mesh(requires_encryption=True)
    def secret_echo(self, value: Any = None) -> Any:
        return value

    def note(self, value: Any = None) -> None:
        self.commands += 1

    def counts(self) -> dict[str, int]:
        return {"commands": self.commands, "events": self.events}

    def _handle_event_(self, topic: str, event: Any, target: Any = None, context: Any = None):
        self.events += 1


async def connect(api: RMQAPI) -> None:
    await asyncio.wait_for(api.connect(), CONNECT_TIMEOUT)
    if not api.connected:
        raise RuntimeError("nuropb could not connect")


async def serve(url: str, name: str, prefetch: int) -> int:
    api = RMQAPI(
        amqp_url=url,
        service_name=name,
        service_instance=EchoService(name),
        transport_settings={"prefetch_count": prefetch, "event_bindings": [f"bench.{name}.#"]},
    )
    await connect(api)
    try:
        await command_loop({})
    finally:
        await asyncio.wait_for(api.disconnect(), 5)
    return 0


async def counts(api: RMQAPI, service: str) -> dict[str, int]:
    return await asyncio.wait_for(api.request(service, "counts", {}, {}), 10)


async def client(url: str, prefetch: int) -> int:
    api = RMQAPI(amqp_url=url, transport_settings={"prefetch_count": prefetch})
    await connect(api)

    async def rpc(cmd: dict[str, Any]) -> dict[str, Any]:
        service, encrypted = cmd["service"], bool(cmd.get("encrypted"))
        method = "secret_echo" if encrypted else "echo"
        if encrypted:
            await asyncio.wait_for(api.describe_service(service), 10)

        async def call() -> None:
            # nuropb has no client-side timeout: bound the wait here
            result = await asyncio.wait_for(
                api.request(service, method, PARAMS, {}, encrypted=encrypted), 30
            )
            if result != "ping":
                raise AssertionError(f"echo answered {result!r}")

        return await measure(call, int(cmd["n"]), int(cmd["concurrency"]))

    async def publish(cmd: dict[str, Any]) -> dict[str, Any]:
        service, n, kind = cmd["service"], int(cmd["n"]), cmd["kind"]
        before = (await counts(api, service))[kind]
        cpu0 = time.process_time()
        start = time.perf_counter()
        if kind == "commands":
            for _ in range(n):
                api.command(service, "note", PARAMS, {})
        else:
            for _ in range(n):
                api.publish_event(f"bench.{service}.x", PARAMS, {})
        await asyncio.sleep(0)
        published = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        deadline = start + 60
        done = False
        while time.perf_counter() < deadline:
            if (await counts(api, service))[kind] >= before + n:
                done = True
                break
            await asyncio.sleep(0.005)
        delivered = time.perf_counter() - start
        return {
            "n": n,
            "publish_rps": n / published,
            "delivered_rps": n / delivered if done else 0.0,
            "client_cpu_s": cpu,
            "complete": done,
        }

    try:
        await command_loop({"rpc": rpc, "publish": publish})
    finally:
        await asyncio.wait_for(api.disconnect(), 5)
    return 0


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    peer_main(__doc__, serve, client)  # nuropb's peers run on asyncio (no --uvloop given)


if __name__ == "__main__":
    main()
