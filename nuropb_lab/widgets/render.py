"""HTML for values, tables and errors shown in widgets (escaped and bounded)."""

from __future__ import annotations

import html
import json
from typing import Any

import pandas as pd

__all__ = ["error_html", "json_text", "result_html", "table_html"]

MAX_ROWS = 200


def json_text(value: Any, indent: int | None = 2, limit: int = 20_000) -> str:
    try:
        text = json.dumps(value, indent=indent, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table_html(frame: pd.DataFrame, max_rows: int = MAX_ROWS) -> str:
    shown = frame.tail(max_rows) if len(frame) > max_rows else frame
    note = (
        f"<div><i>last {max_rows} of {len(frame)} rows</i></div>" if len(frame) > max_rows else ""
    )
    return note + shown.to_html(
        index=False, escape=True, na_rep="", border=0, classes="nuropb-table"
    )


def result_html(value: Any) -> str:
    """A call result, readably: a list of dicts as a table, other JSON pretty-printed."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return table_html(pd.DataFrame(value))
    if isinstance(value, (dict, list)):
        return f"<pre>{html.escape(json_text(value))}</pre>"
    return f"<pre>{html.escape(json_text(value, indent=None))}</pre>"


def error_html(kind: str, description: str) -> str:
    return (
        f'<div style="color:#b00020"><b>{html.escape(kind)}</b>: {html.escape(description)}</div>'
    )
