"""A bench peer on nuropb_lab's RMQAPI (run by the lab's python).

    python lab_peer.py serve URL NAME PREFETCH [--uvloop]
    python lab_peer.py client URL PREFETCH [--uvloop]

See _common.py for the stdin/stdout protocol.
"""

import asyncio
import time
from typing import Any

from _common import command_loop, measure, peer_main

from nuropb_lab import RMQAPI, publish_to_mesh

PARAMS = {"value": "ping"}


class EchoService:
    """The echo service the RPC benchmarks call; counts commands and events."""

    def __init__(self) -> None:
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

    def _handle_event_(self, topic: str, event: Any, target: Any, context: Any) -> None:
        self.events += 1


async def serve(url: str, name: str, prefetch: int) -> int:
    settings = {"prefetch_count": prefetch, "event_bindings": [f"bench.{name}.#"]}
    api = RMQAPI(
        url, service_name=name, service_instance=EchoService(), transport_settings=settings
    )
    await api.connect()
    try:
        await command_loop({"stats": lambda _: _stats(api)})
    finally:
        await api.disconnect()
    return 0


async def _stats(api: RMQAPI) -> dict[str, Any]:
    return dict(api.stats)


async def wait_counts(api: RMQAPI, service: str, kind: str, target: int, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        counts = await api.request(service, "counts", {}, {}, ttl=10_000)
        if counts[kind] >= target:
            return True
        await asyncio.sleep(0.005)
    return False


async def client(url: str, prefetch: int) -> int:
    api = RMQAPI(url, transport_settings={"prefetch_count": prefetch})
    await api.connect()

    async def rpc(cmd: dict[str, Any]) -> dict[str, Any]:
        service, encrypted = cmd["service"], bool(cmd.get("encrypted"))
        method = "secret_echo" if encrypted else "echo"
        if encrypted:
            await api.describe_service(service, refresh=True)

        async def call() -> None:
            result = await api.request(service, method, PARAMS, {}, ttl=30_000, encrypted=encrypted)
            if result != "ping":
                raise AssertionError(f"echo answered {result!r}")

        return await measure(call, int(cmd["n"]), int(cmd["concurrency"]))

    async def publish(cmd: dict[str, Any]) -> dict[str, Any]:
        """Publish n commands (to ``note``) or events (on bench.SERVICE.x); the publish rate
        and the rate at which the service got them all."""
        service, n, kind = cmd["service"], int(cmd["n"]), cmd["kind"]
        before = (await api.request(service, "counts", {}, {}, ttl=10_000))[kind]
        cpu0 = time.process_time()
        start = time.perf_counter()
        if kind == "commands":
            tasks = [api.command(service, "note", PARAMS, {}) for _ in range(n)]
        else:
            tasks = [api.publish_event(f"bench.{service}.x", PARAMS, {}) for _ in range(n)]
        await asyncio.gather(*tasks)
        published = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        done = await wait_counts(api, service, kind, before + n, timeout=60)
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
        await api.disconnect()
    return 0


def main() -> None:
    peer_main(__doc__, serve, client)


if __name__ == "__main__":
    main()
