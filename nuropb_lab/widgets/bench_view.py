"""The live view of a run (a bench, a contract check): a progress bar, live rate and p50/p99,
and a Stop button."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ..lab.markup import join, tag
from ..lab.progress import Progress, ProgressRun
from .live import Live, idle_timeout_of

__all__ = ["BenchView"]

_STYLES = {"done": "success", "failed": "danger", "running": "info", "warmup": "info"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} ms"


class BenchView(w.VBox):
    """A view over a run (:class:`ProgressRun`: a bench, a check), redrawn from the Lab loop
    (traits only, throttled).

    Stop works for a run started in the background (``lab.start_bench``, ``lab.start_check``,
    ``%nuropb bench ... --background``). While a cell waits for a blocking run the kernel
    takes no button clicks (trait updates still reach the browser): interrupt the kernel
    instead, which stops the run and keeps what it measured. Once the run ended the view
    pauses after ``idle_timeout`` s without interaction (default: ``live_idle_timeout``).
    """

    def __init__(
        self, run: ProgressRun[Any], interval: float = 0.25, idle_timeout: float | None = None
    ) -> None:
        self.run = run
        self.bar = w.FloatProgress(
            value=0.0, min=0.0, max=1.0, description=run.label[:30], bar_style="info"
        )
        self.status = w.HTML()
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="warning")
        self.stop_button.on_click(self._on_stop)
        self.live = Live(
            run.runner,
            idle_timeout_of(run, idle_timeout),
            key=("run", id(run)),
            busy=lambda: not run.progress.finished,
        )
        self.live.watch(self.stop_button)
        self._redraw = self.live.redraw(self.draw, interval)
        run.add_listener(self._on_progress)
        super().__init__([self.live.bar, w.HBox([self.bar, self.stop_button]), self.status])
        self.draw()

    def _on_progress(self, _progress: Progress) -> None:
        self._redraw.request()

    def _on_stop(self, _button: Any = None) -> None:
        self.run.stop()
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"

    @property
    def redraws(self) -> int:
        return self._redraw.count

    def draw(self) -> None:
        """Set the bar and the status line (trait values only; safe from the loop thread)."""
        p = self.run.progress
        self.bar.value = p.fraction
        self.bar.bar_style = _STYLES.get(p.state, "warning")
        if p.total:
            amount = f"{p.done:,}/{p.total:,} {p.unit}"
        else:
            amount = f"{p.done:,} {p.unit}, {p.elapsed_s:.1f}/{p.duration_s or 0:g} s"
        parts: list[object] = [
            tag("b", p.state),
            amount,
            f"{p.rate:,.0f}/s",
            f"p50 {_ms(p.p50_ms)}",
            f"p99 {_ms(p.p99_ms)}",
        ]
        if p.errors:
            parts.append(tag("span", f"{p.errors:,} {p.flagged}", style="color:#b00020"))
        if p.behind:
            parts.append("the generator is behind its schedule")
        if p.message:
            parts.append(p.message)
        self.status.value = join(parts, " · ")
        if p.finished:
            self.stop_button.disabled = True
            self.stop_button.description = "Stop"
        elif self.run.blocking:
            self.stop_button.disabled = True
            self.stop_button.tooltip = "interrupt the kernel to stop a run the cell waits for"

    def close(self) -> None:
        self.live.close()
        self.run.remove_listener(self._on_progress)
        super().close()
