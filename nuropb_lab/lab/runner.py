"""The Lab's own event loop, in a background thread.

A notebook kernel's loop is already running, so blocking calls cannot ``asyncio.run``; all
aio-pika connections live on this loop instead. Blocking entry points wait for a submitted
coroutine with a timeout, and a KeyboardInterrupt (Ctrl-C, kernel interrupt) cancels it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopRunner"]

T = TypeVar("T")
WAIT_SLICE = 0.1


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (``pip install nuropb-lab[fast]``; it takes events
    in about 15% faster), else asyncio's. ``NUROPB_LAB_UVLOOP=0`` keeps asyncio's."""
    if os.environ.get("NUROPB_LAB_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class LoopRunner:
    """One daemon thread running one event loop, started on first use."""

    def __init__(self, name: str = "nuropb-lab") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self._loop.is_running():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        loop = new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name=self._name, daemon=True)
        thread.start()
        if not started.wait(10):
            raise RuntimeError("the nuropb-lab event loop did not start")
        self._loop, self._thread = loop, thread

    @property
    def running(self) -> bool:
        """Whether its loop runs now (without starting it, as ``loop`` would)."""
        loop = self._loop
        return loop is not None and loop.is_running()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; returns at once (for widgets and async twins)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the loop and wait for it, at most ``timeout`` seconds.

        A KeyboardInterrupt while waiting cancels the coroutine and is re-raised.
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                "a blocking Lab call was made from the Lab's own loop; use the async twin"
            )
        future = self.submit(coro)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # Wait in short slices: an interrupt that only sets Python's signal flag (as a
            # kernel's interrupt may) is then seen promptly, not when the call ends.
            while not future.done():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    future.cancel()
                    raise TimeoutError(f"gave up waiting after {timeout:.3g} s")
                concurrent.futures.wait(
                    [future], timeout=WAIT_SLICE if left is None else min(left, WAIT_SLICE)
                )
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            with contextlib.suppress(BaseException):
                future.result(2)  # let the cancellation finish before returning
            raise

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` running on the Lab loop from another loop (top-level ``await``)."""
        if self.in_loop_thread():
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(5)
