"""How a peer process of the tests lives: until its stdin closes (the test ended, or died) or
it gets SIGTERM/SIGINT; a nuropb service peer says READY once its APIs are connected.

Imported by the peer scripts: their folder is on ``sys.path`` when they are run, by any
interpreter (the nuropb 0.1.8 venv's too)."""

import asyncio
import contextlib
import os
import signal
import sys
import threading
from typing import Any

CONNECT_TIMEOUT = 20.0
DISCONNECT_TIMEOUT = 5.0


def until_stopped() -> asyncio.Event:
    """An event of the running loop, set on SIGTERM, SIGINT or EOF on stdin."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fd = sys.stdin.fileno()

    def read() -> None:
        # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader would
        # abort the interpreter's shutdown (when SIGTERM ends the process first)
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read, name="stdin-watch", daemon=True).start()
    return stop


async def serve(apis: list[Any], stop: asyncio.Event) -> int:
    """Connect nuropb's ``apis``, say READY, and disconnect them once ``stop`` is set; 1 when
    one could not connect (nuropb's connect logs and returns rather than raise)."""
    for api in apis:
        await asyncio.wait_for(api.connect(), CONNECT_TIMEOUT)
        if not api.connected:
            print(f"nuropb service {api.service_name} could not connect", file=sys.stderr)
            return 1
    print("READY", flush=True)
    await stop.wait()
    for api in apis:
        try:
            await asyncio.wait_for(api.disconnect(), DISCONNECT_TIMEOUT)
        except Exception as exc:  # leaving anyway (calls may still be held)
            print(f"{api.service_name}: disconnect failed: {exc!r}", file=sys.stderr)
    return 0
