"""How a peer process of the tests lives: until its stdin closes (the test ended, or died) or
it gets SIGTERM/SIGINT. Imported by the peer scripts (their folder is on ``sys.path`` when run
by any interpreter, the nuropb 0.1.8 venv's included)."""

import asyncio
import contextlib
import os
import signal
import sys
import threading


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
