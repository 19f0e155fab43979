"""Many small lab services in one process, for the discovery benchmark.

    python many_peer.py URL PREFIX N

Serves ``N`` services ``PREFIX-00`` ... on the mesh; see _common.py for the protocol.
"""

import asyncio
import sys
from typing import Any

from _common import command_loop, run

from nuropb_lab import RMQAPI


class Small:
    """A small service with a few methods to describe."""

    _version = "1.0"

    def ping(self) -> str:
        return "pong"

    def add(self, a: int, b: int = 1) -> int:
        return a + b

    async def fetch(self, key: str, default: Any = None) -> Any:
        return default


async def main() -> int:
    url, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    apis = [RMQAPI(url, f"{prefix}-{i:02d}", service_instance=Small()) for i in range(n)]
    await asyncio.gather(*(api.connect() for api in apis))
    try:
        await command_loop({})
    finally:
        await asyncio.gather(*(api.disconnect() for api in apis))
    return 0


if __name__ == "__main__":
    run(main)
