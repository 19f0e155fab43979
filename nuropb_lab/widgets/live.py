"""What the live views (tail, tap) share: a text-or-glob filter, and Pause/Clear controls."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import ipywidgets as w

__all__ = ["LiveSource", "PauseClear", "matches"]


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
