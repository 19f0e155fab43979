"""Pictures (graphs, waterfalls, plots): drawn with matplotlib, kept as SVG.

One way to render a picture for the Lab, the magic and the widgets alike. A :class:`Picture`
is SVG text plus the data it was drawn from: a notebook shows it inline (``image/svg+xml``),
a saved notebook and nbconvert's HTML keep it without a kernel or widget state, a widget
shows it by setting a trait (``ipywidgets.HTML(value=picture.svg)``), and a test asserts on
``picture.data`` rather than on pixels.

Figures are made with ``matplotlib.figure.Figure`` directly, never pyplot. What the SVG needs
of matplotlib's settings (text as text, math never parsed) is in its process-wide rcParams,
which ``rc_context`` sets and restores as it leaves: so pictures are drawn one at a time
(``_DRAWING``), or a widget redrawing in a worker thread while the kernel draws would get the
defaults back halfway (its names drawn as paths, or parsed as math).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .markup import Markup

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Picture", "draw", "new_figure"]

_DRAWING = threading.Lock()  # rcParams are the process's: one rc_context at a time


class Picture:
    """An SVG picture and what it was drawn from."""

    def __init__(self, svg: str, data: Any = None, title: str = "") -> None:
        self.svg = svg
        self.data = data
        self.title = title

    def __repr__(self) -> str:
        return f"<Picture {self.title!r}, {len(self.svg):,} bytes of SVG>"

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: str | Path) -> Path:
        """Write the SVG to ``path``."""
        path = Path(path)
        path.write_text(self.svg, encoding="utf-8")
        return path


def new_figure(width: float = 8.0, height: float = 4.0) -> Figure:
    """A figure of its own (not pyplot's), ``width`` x ``height`` inches."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("pictures need matplotlib: pip install matplotlib") from exc
    return Figure(figsize=(width, height), layout="constrained")


def draw(
    paint: Callable[[Figure], None],
    data: Any = None,
    title: str = "",
    width: float = 8.0,
    height: float = 4.0,
) -> Picture:
    """Make a figure, let ``paint(figure)`` draw on it, and keep it as an SVG Picture."""
    import matplotlib

    with (
        _DRAWING,
        matplotlib.rc_context(
            {
                # text as text (smaller, selectable); fixed ids and no date: the same data, the
                # same SVG
                "svg.fonttype": "none",
                "svg.hashsalt": "nuropb-lab",
                # names come from the mesh: drawn literally, never parsed as math text ($...$) or
                # LaTeX ("$\foo$" would fail the whole picture, "$x^2$" would draw as math)
                "text.parse_math": False,
                "text.usetex": False,
            }
        ),
    ):
        figure = new_figure(width, height)
        paint(figure)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    # matplotlib escapes the text it writes into SVG, and draws it as it is: the picture is
    # HTML that can be shown inline
    return Picture(Markup(buffer.getvalue()), data, title)
