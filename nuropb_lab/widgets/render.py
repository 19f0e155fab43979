"""HTML for values, tables and errors shown in widgets (escaped by lab/markup.py, bounded)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from ..lab.markup import Markup, frame, join, tag

__all__ = ["error_html", "json_text", "result_html", "table_html"]

MAX_ROWS = 200


def json_text(value: Any, indent: int | None = 2, limit: int = 20_000) -> str:
    try:
        text = json.dumps(value, indent=indent, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table_html(table: pd.DataFrame, max_rows: int = MAX_ROWS) -> Markup:
    over = len(table) > max_rows
    shown = table.tail(max_rows) if over else table
    note = tag("div", tag("i", f"last {max_rows} of {len(table)} rows")) if over else ""
    return join([note, frame(shown, index=False, na_rep="", border=0, classes="nuropb-table")])


def result_html(value: Any) -> Markup:
    """A call result, readably: a list of dicts as a table, other JSON pretty-printed."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return table_html(pd.DataFrame(value))
    return tag("pre", json_text(value, indent=2 if isinstance(value, (dict, list)) else None))


def error_html(kind: str, description: str) -> Markup:
    return tag("div", tag("b", kind), ": ", description, style="color:#b00020")
