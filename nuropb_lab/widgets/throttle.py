"""Throttled redraws: any thread may ask; the redraw runs in the Lab loop, a few times a second."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..lab import LoopRunner

__all__ = ["Redraw"]

log = logging.getLogger(__name__)


class Redraw:
    """Coalesces redraw requests: at most one ``draw()`` per ``interval`` seconds.

    ``draw`` only sets trait values (never ``with output:`` from a thread). ``gate``: asked
    before a redraw is scheduled and again before it runs; False skips it (a paused view).
    """

    def __init__(
        self,
        runner: LoopRunner,
        draw: Callable[[], None],
        interval: float = 0.25,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        self._runner = runner
        self._draw = draw
        self._gate = gate
        self.interval = interval
        self._pending = False
        self._lock = threading.Lock()
        self.count = 0  # redraws done (tests and curiosity)

    def request(self) -> None:
        if self._gate is not None and not self._gate():
            return
        with self._lock:
            if self._pending:
                return
            self._pending = True
        loop = self._runner.loop
        if self._runner.in_loop_thread():
            loop.call_later(self.interval, self._run)
        else:
            loop.call_soon_threadsafe(loop.call_later, self.interval, self._run)

    def now(self) -> None:
        """Redraw at once in the calling thread (for the first paint)."""
        self._run()

    def _run(self) -> None:
        with self._lock:
            self._pending = False
        if self._gate is not None and not self._gate():
            return
        try:
            self._draw()
            self.count += 1
        except Exception:
            log.exception("widget redraw failed")
