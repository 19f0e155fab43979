"""A run's live progress (a bench, a contract check): what one view shows for either.

A run publishes :class:`Progress` to its listeners a few times a second, from the Lab loop;
the widget (``run.widget()``, widgets/bench_view.py, registered from above) and the magic show
the same thing. The live rate and percentiles are over the last :data:`WINDOW_S` seconds.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, Self, TypeVar

from ..views import view_of
from .runner import LoopRunner
from .settings import Settings

__all__ = ["WINDOW_S", "Progress", "ProgressRun", "window_stats"]

log = logging.getLogger(__name__)

T = TypeVar("T")

WINDOW_S: Final = 2.0  # live rate and percentiles over the last seconds
WINDOW_CALLS: Final = 20_000  # at most this many of the newest calls in the percentiles


@dataclasses.dataclass(frozen=True)
class Progress:
    """A run's state, published a few times a second (read from any thread)."""

    state: str  # preparing, warmup, running, finishing, done, stopped, interrupted, failed...
    done: int  # calls that ended (a bench's measured ones; warmup calls while warming up)
    total: int | None  # how many are planned, when known
    elapsed_s: float
    duration_s: float | None
    rate: float  # calls ended per second over the last WINDOW_S
    p50_ms: float | None  # over the last WINDOW_S
    p99_ms: float | None
    errors: int
    in_flight: int
    behind: bool  # the open model's generator sends late
    message: str = ""  # why it failed or stopped; what it does now
    unit: str = "calls"  # what ``done`` counts
    flagged: str = "errors"  # what ``errors`` counts

    @property
    def fraction(self) -> float:
        if self.state in ("done",):
            return 1.0
        if self.total:
            return min(self.done / self.total, 1.0)
        if self.duration_s:
            return min(self.elapsed_s / self.duration_s, 1.0)
        return 0.0

    @property
    def finished(self) -> bool:
        return self.state not in ("preparing", "warmup", "running", "finishing")


def window_stats(
    ended: Sequence[float], started: Sequence[float], now: float, origin: float
) -> tuple[float, float | None, float | None]:
    """(calls ended per second, p50 ms, p99 ms) over the last WINDOW_S seconds of calls that
    ended at ``ended`` (ascending) having started at ``started``; ``origin``: the run's start."""
    k = len(ended)
    since = bisect.bisect_left(ended, now - WINDOW_S, 0, k)
    window = min(WINDOW_S, max(now - origin, 1e-3))
    recent = sorted(ended[i] - started[i] for i in range(max(since, k - WINDOW_CALLS), k))
    count = len(recent)
    if not count:
        return (k - since) / window, None, None
    p50 = recent[max(0, math.ceil(0.5 * count) - 1)] * 1000
    p99 = recent[max(0, math.ceil(0.99 * count) - 1)] * 1000
    return (k - since) / window, p50, p99


class ProgressRun(Generic[T]):
    """A run on the Lab loop with a live progress: ``start()`` it (or ``wait()``, which starts
    it and blocks), ``stop()`` it from any thread; what the progress view needs (its label,
    its progress with listeners). ``blocking``: a cell waits for it (the kernel then takes no
    button clicks: Stop is the kernel's interrupt). ``grace_s``: how long a stopped run may
    take to hand back its result."""

    def __init__(self, label: str, runner: LoopRunner, progress: Progress, grace_s: float) -> None:
        self.label = label
        self.runner = runner
        self.grace_s = grace_s
        self.blocking = False
        self.settings = Settings()  # its Lab's, given by its part (its view reads them)
        self.future: concurrent.futures.Future[T] | None = None
        self._progress = progress
        self._listeners: list[Callable[[Progress], None]] = []
        self._lock = threading.Lock()

    async def execute(self) -> T:
        """The run itself, on the Lab loop; its result (kept when it is stopped)."""
        raise NotImplementedError

    def start(self) -> Self:
        """Run it on the Lab loop; returns at once (``wait()``, ``stop()``, ``widget()``)."""
        with self._lock:
            if self.future is None:
                self.future = self.runner.submit(self.execute())
        return self

    def wait(self, timeout: float | None = None) -> T:
        """Start the run if need be and wait for its result (at most ``timeout`` s, else its
        own bound). Ctrl-C (a kernel interrupt) stops it and returns what it found."""
        if self.runner.in_loop_thread():
            raise RuntimeError("a blocking wait on the Lab's own loop; await run.execute()")
        self.blocking = True
        future = self.start().future
        assert future is not None
        # the run bounds itself (each call by its ttl, the run by its duration or a watchdog)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not future.done():
                if deadline is not None and time.monotonic() > deadline:
                    self.stop("overran")
                    break
                concurrent.futures.wait([future], timeout=0.1)
        except KeyboardInterrupt:
            self.stop("interrupted")
        return future.result(timeout=self.grace_s)

    @property
    def progress(self) -> Progress:
        return self._progress

    def add_listener(self, listener: Callable[[Progress], None]) -> None:
        """Call ``listener(progress)`` at each update (in the Lab loop thread; keep it cheap)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Progress], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, progress: Progress) -> None:
        self._progress = progress
        for listener in list(self._listeners):
            try:
                listener(progress)
            except Exception:
                log.exception("progress listener failed")

    def stop(self, reason: str = "stopped") -> None:
        """End the run now (from any thread), keeping what it found."""
        raise NotImplementedError

    def widget(self) -> Any:
        """A live view of this run (ipywidgets): progress bar, live rate and p50/p99, Stop."""
        return view_of(self)  # registered by the widget layer, above this one
