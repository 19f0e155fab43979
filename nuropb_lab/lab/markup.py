"""HTML out of what the mesh sent: the one way any value reaches HTML.

Every peer on a mesh is untrusted, and a service's name, a topic, a header, a result or an
error's text may carry markup meant to run in the notebook. The lab's objects
(``_repr_html_``) and widgets build their HTML here: :func:`tag` escapes every child and
attribute value it is given (``& < > " '``, so text is inert in element content and in quoted
attributes alike), and only :class:`Markup`, HTML built by this module, passes as it is.
Tables of pandas go through :func:`frame`, which escapes their cells and headers, and a
notebook output through :func:`output`, which keeps math typesetting off the mesh's text.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Markup", "escape", "frame", "join", "output", "tag"]

#: classes whose text MathJax leaves as it is (``mathjax_ignore`` for MathJax 3, as JupyterLab
#: 4 runs it; ``tex2jax_ignore`` for MathJax 2, the classic Notebook's)
NO_MATH = "tex2jax_ignore mathjax_ignore"


class Markup(str):
    """HTML built by this module from escaped parts: never escaped again."""

    __slots__ = ()


def escape(value: object) -> Markup:
    """``value`` (any object, as its ``str``) as HTML text; Markup stays as it is."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def join(parts: Iterable[object], separator: str = "") -> Markup:
    """The parts, each escaped unless it is Markup, one after the other."""
    return Markup(escape(separator).join(escape(part) for part in parts))


def tag(name: str, *children: object, **attributes: object) -> Markup:
    """``<name a="...">children</name>``: children and attribute values escaped (Markup
    children pass as they are), attributes whose value is None left out. ``name`` and the
    attribute names are the caller's own words, never the mesh's."""
    attrs = "".join(f' {k}="{escape(v)}"' for k, v in attributes.items() if v is not None)
    return Markup(f"<{name}{attrs}>{join(children)}</{name}>")


def output(*children: object) -> Markup:
    """A notebook output (``_repr_html_``): the children in a block that math typesetting
    skips, so that ``$...$`` in a name shows as it is (JupyterLab typesets HTML outputs; a
    widget's HTML it does not)."""
    return tag("div", *children, **{"class": NO_MATH})


def frame(table: pd.DataFrame, **options: Any) -> Markup:
    """A DataFrame as an HTML table (``DataFrame.to_html`` options), cells and headers
    escaped whatever the options say."""
    return Markup(table.to_html(**{**options, "escape": True}))
