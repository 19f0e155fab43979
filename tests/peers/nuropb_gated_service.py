"""A nuropb 0.1.8 service whose calls wait at a gate: the peer of the cluster tests.

Run by the python of the nuropb venv (not the lab's):

    python nuropb_gated_service.py AMQP_URL SERVICE_NAME PREFETCH

It serves ``job(n)`` (waits until the gate opens, then returns ``n * 2``) and ``ping()`` with
nuropb's own ``RMQAPI`` and prefetch PREFETCH, so that PREFETCH calls are held unacknowledged
while the gate is shut. SIGUSR1 opens the gate. It prints ``READY`` once connected (or
``NOT CONNECTED`` and exits 1), and when stdin closes or on SIGTERM it prints one line
``RUNS {json}``: how many times each ``n`` ran. nuropb's logging goes to stderr.

nuropb takes one URL: given a pika URL with ``connection_attempts`` and ``retry_delay`` in its
query, its one reconnection after a lost connection keeps trying that node for that long.

No ``from __future__ import annotations``: nuropb 0.1.8's describe reads annotations' names.
"""

import asyncio
import collections
import json
import logging
import signal
import sys

from nuropb.rmq_api import RMQAPI
from peer_life import until_stopped

CONNECT_TIMEOUT = 30.0
DISCONNECT_TIMEOUT = 5.0


class Gated:
    def __init__(self, gate: asyncio.Event) -> None:
        self._service_name = sys.argv[2]
        self._version = "0.1.8-gated"
        self._gate = gate
        self.runs: collections.Counter = collections.Counter()

    async def job(self, n: int) -> int:
        self.runs[n] += 1
        await self._gate.wait()
        return n * 2

    def ping(self) -> str:
        return "pong"


async def main(amqp_url: str, service_name: str, prefetch: int) -> int:
    stop, gate = until_stopped(), asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, gate.set)
    service = Gated(gate)
    api = RMQAPI(
        amqp_url=amqp_url,
        service_name=service_name,
        service_instance=service,
        transport_settings={"prefetch_count": prefetch},
    )
    try:
        await asyncio.wait_for(api.connect(), CONNECT_TIMEOUT)
    except Exception as exc:
        print(f"connect raised {type(exc).__name__}: {exc}", file=sys.stderr)
    if not api.connected:
        print("NOT CONNECTED", flush=True)
        return 1
    print("READY", flush=True)
    await stop.wait()
    print(f"RUNS {json.dumps(service.runs)}", flush=True)
    try:
        await asyncio.wait_for(api.disconnect(), DISCONNECT_TIMEOUT)
    except Exception as exc:  # leaving anyway
        print(f"disconnect failed: {exc!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
