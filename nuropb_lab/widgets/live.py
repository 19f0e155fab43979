"""What the live views share: one mechanism that keeps them live while someone uses them and
quiet when nobody does (:class:`Live`); for the tail and tap views a text-or-glob filter and
Pause/Clear controls over their source."""

from __future__ import annotations

import asyncio
import concurrent.futures
import fnmatch
import inspect
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, Protocol

import ipywidgets as w

from ..lab import LoopRunner, Settings
from ..lab.markup import tag
from .throttle import Redraw

__all__ = ["Live", "LiveSource", "PauseClear", "idle_timeout_of", "matches"]

log = logging.getLogger(__name__)


def matches(fields: Iterable[str], pattern: str) -> bool:
    """Whether any field matches ``pattern``: a glob when it has ``*?[``, else a substring
    (an empty pattern matches everything)."""
    if not pattern:
        return True
    if any(c in pattern for c in "*?["):
        return any(fnmatch.fnmatchcase(f, pattern) for f in fields)
    return any(pattern in f for f in fields)


class LiveSource(Protocol):
    """A tail or a tap: something that can be paused, resumed and cleared."""

    @property
    def paused(self) -> bool: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def clear(self) -> None: ...


class PauseClear:
    """A Pause/Resume toggle and a Clear button over a live source; each asks for a redraw."""

    def __init__(self, source: LiveSource, redraw: Callable[[], None]) -> None:
        self._source = source
        self._redraw = redraw
        self.pause_button = w.ToggleButton(value=source.paused, description="Pause", icon="pause")
        self.clear_button = w.Button(description="Clear", icon="trash")
        self.pause_button.observe(self._on_pause, names="value")
        self.clear_button.on_click(self._on_clear)

    def _on_pause(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._source.pause()
        else:
            self._source.resume()
        self.pause_button.description = "Resume" if change["new"] else "Pause"
        self.pause_button.icon = "play" if change["new"] else "pause"
        self._redraw()

    def _on_clear(self, _button: Any = None) -> None:
        self._source.clear()
        self._redraw()


Refresh = Callable[[], Awaitable[None] | None]


class Live:
    """What keeps a view live, once for every view: its periodic refreshes (:meth:`every`)
    and its throttled redraws (:meth:`redraw`) run while someone interacts with it. After
    ``idle_timeout()`` seconds without interaction (what :meth:`watch` sees, or
    :meth:`touch`), or when a newer copy of the same view (same ``key``) is made, they pause:
    ``bar`` says so, with a Resume button, and nothing more is sent to the browser (an idle
    culler counts kernel messages as activity). Resume, or any interaction, starts them again
    and redraws at once; ``close()`` stops them for good. While ``busy()`` (a run in
    progress) the view does not pause. What is behind the view (a tail, a tap) keeps
    collecting: only the view waits."""

    def __init__(
        self,
        runner: LoopRunner,
        idle_timeout: Callable[[], float],
        key: Hashable | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.runner = runner
        self.key = key
        self._idle_timeout = idle_timeout
        self._busy = busy
        self.last_interaction = time.monotonic()
        self.paused: str | None = None  # why, while paused
        self.closed = False
        self.notice = w.HTML()
        self.resume_button = w.Button(description="Resume", icon="play", button_style="info")
        self.resume_button.on_click(lambda _b: self.resume())
        self.bar = w.HBox([self.resume_button, self.notice], layout=w.Layout(display="none"))
        self._periodic: list[tuple[float, Refresh, Callable[[], bool] | None]] = []
        self._tasks: list[concurrent.futures.Future[None]] = []
        self._redraws: list[Redraw] = []
        self._generation = 0
        self._lock = threading.Lock()
        _take_over(self)

    # --- what runs while live -----------------------------------------------------------------

    def every(
        self,
        interval: float,
        refresh: Refresh,
        at_once: bool = False,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Call ``refresh()`` (a function, or one returning an awaitable) in the Lab loop every
        ``interval`` s while live (and at once with ``at_once``, and on resuming), and no more
        once ``until()`` is true after one (what the view shows is final: its tap stopped)."""
        self._periodic.append((interval, refresh, until))
        with self._lock:
            if self.paused is None and not self.closed:
                self._start(interval, refresh, until, at_once)

    def redraw(self, draw: Callable[[], None], interval: float = 0.25) -> Redraw:
        """A throttled redraw (throttle.py) that does nothing while the view is paused."""
        made = Redraw(self.runner, draw, interval, gate=self.awake)
        self._redraws.append(made)
        return made

    def _start(
        self, interval: float, refresh: Refresh, until: Callable[[], bool] | None, at_once: bool
    ) -> None:
        """(Under the lock.) A periodic task of the current generation."""
        repeat = self._repeat(interval, refresh, until, at_once, self._generation)
        self._tasks.append(self.runner.submit(repeat))

    async def _repeat(
        self,
        interval: float,
        refresh: Refresh,
        until: Callable[[], bool] | None,
        at_once: bool,
        generation: int,
    ) -> None:
        if not at_once:
            await asyncio.sleep(interval)
        while self._generation == generation and self.awake():
            try:
                result = refresh()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("live view refresh failed")
            if until is not None and until():
                return
            await asyncio.sleep(interval)

    @property
    def running(self) -> int:
        """Its periodic refreshes running now (none while paused or closed)."""
        with self._lock:
            return sum(not task.done() for task in self._tasks)

    # --- interaction, pausing and resuming ------------------------------------------------------

    def awake(self) -> bool:
        """Whether the view may redraw now; past the idle timeout this pauses it (False)."""
        if self.closed or self.paused is not None:
            return False
        now = time.monotonic()
        if self._busy is not None and self._busy():
            self.last_interaction = now  # the idle time counts from the end of the run
            return True
        idle = now - self.last_interaction
        timeout = self._idle_timeout()
        if idle > timeout:
            self.pause(f"paused: no interaction for {timeout:g} s (live_idle_timeout)")
            return False
        return True

    def touch(self, *_args: Any) -> None:
        """Someone used the view: its idle time starts again (a paused view resumes)."""
        self.last_interaction = time.monotonic()
        if self.paused is not None:
            self.resume()

    def watch(self, *controls: w.Widget) -> None:
        """Count a click on these buttons, or a new value of these controls, as interaction."""
        for control in controls:
            if isinstance(control, w.Button):
                control.on_click(self.touch)
            else:
                control.observe(self.touch, names="value")

    def pause(self, reason: str) -> None:
        """Stop refreshing and redrawing (from any thread); the bar says ``reason``."""
        with self._lock:
            if self.closed or self.paused is not None:
                return
            self.paused = reason
            self._generation += 1
            tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        self.notice.value = tag("i", reason)
        self.bar.layout.display = None

    def resume(self) -> None:
        """Refresh and redraw again, at once (from any thread); a copy that a newer one
        replaced takes over from it."""
        with self._lock:
            self.last_interaction = time.monotonic()
            if self.closed or self.paused is None:
                return
            self.paused = None
            for interval, refresh, until in self._periodic:
                self._start(interval, refresh, until, True)
        _take_over(self)
        self.bar.layout.display = "none"
        for made in self._redraws:
            made.request()

    def close(self) -> None:
        """Stop for good (the view is closed)."""
        with self._lock:
            self.closed = True
            self._generation += 1
            tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        with _current_lock:
            if self.key is not None and _current.get(self.key) is self:
                del _current[self.key]
        self.bar.close()


# the live copy of each view (by key): a copy made again (a cell run again) takes over
_current: weakref.WeakValueDictionary[Hashable, Live] = weakref.WeakValueDictionary()
_current_lock = threading.Lock()


def _take_over(live: Live) -> None:
    if live.key is None:
        return
    with _current_lock:
        earlier = _current.get(live.key)
        _current[live.key] = live
    if earlier is not None and earlier is not live:
        earlier.pause("paused: a newer copy of this view is live")


def idle_timeout_of(holder: Any, given: float | None = None) -> Callable[[], float]:
    """``given``, else the live_idle_timeout of what a view shows (a Lab, or a handle with its
    Lab's ``settings``), read when it is checked: a change applies to the views shown."""
    if given is not None:
        seconds = Settings.check("live_idle_timeout", given)
        return lambda: float(seconds)
    settings = getattr(holder, "settings", None)
    if isinstance(settings, Settings):
        return lambda: settings.live_idle_timeout
    return lambda: float(Settings.live_idle_timeout)
