"""A tap's file: JSON lines, written and read back (loaded.py makes a tap of it).

JSON lines because pandas reads it with nothing more (``pd.read_json(path, lines=True)``):
parquet would need pyarrow or fastparquet, which are not dependencies. One line per message,
with ``tap.df``'s columns; the line of a request or command also carries its call's columns
(``call_`` prefixed where a name is taken), so ``load_tap`` gives back both tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .calls import CALL_COLUMNS
from .capture import COLUMNS

__all__ = ["read", "save"]

# call columns stored under another name on a message's line
RENAMED = {
    "started": "call_started",
    "kind": "call_kind",
    "caller": "call_caller",
    "service": "call_service",
    "method": "call_method",
    "ok": "call_ok",
    "error": "call_error",
    "trace_id": "call_trace_id",
    "encrypted": "call_encrypted",
}


def save(df: pd.DataFrame, calls: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    requests = df["kind"].isin(["request", "command"])
    calls = calls.drop_duplicates("correlation_id", keep="last").rename(columns=RENAMED)
    calls["_call"] = True
    on_lines = df[requests].merge(calls, on="correlation_id", how="left")
    # calls whose message fell out of the row buffer still get a line of their own
    unseen = calls[~calls["correlation_id"].isin(df.loc[requests, "correlation_id"])]
    unseen = unseen.assign(
        time=unseen["call_started"],
        kind=unseen["call_kind"],
        caller=unseen["call_caller"],
        service=unseen["call_service"],
        method=unseen["call_method"],
        trace_id=unseen["call_trace_id"],
        encrypted=unseen["call_encrypted"],
    )
    frame = pd.concat([df[~requests], on_lines, unseen], ignore_index=True)
    frame = frame.sort_values("time", kind="stable", ignore_index=True)
    frame["_call"] = frame["_call"].eq(True)
    frame.to_json(path, orient="records", lines=True, date_format="iso", date_unit="us")
    return path


def read(path: str | Path) -> tuple[pd.DataFrame, list[tuple[Any, ...]]]:
    """What :func:`save` wrote: ``df``, and the calls as rows of CALL_COLUMNS."""
    path = Path(path)
    frame = pd.read_json(path, lines=True, orient="records", dtype=False)
    if frame.empty:
        frame = pd.DataFrame(columns=[*COLUMNS, "_call"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    df = frame[frame["kind"].notna() & ~_synthetic(frame)][list(COLUMNS)].reset_index(drop=True)
    df["routed_to"] = [tuple(v) if isinstance(v, list) else v for v in df["routed_to"]]
    lines = frame[frame.get("_call", pd.Series(False, index=frame.index)).eq(True)]
    back = {v: k for k, v in RENAMED.items()}
    rows = []
    for record in lines.to_dict("records"):
        call = {back.get(k, k): v for k, v in record.items() if k in back or k in CALL_COLUMNS}
        started = pd.Timestamp(call["started"]).timestamp() if call.get("started") else None
        rows.append(tuple(started if c == "started" else _none(call.get(c)) for c in CALL_COLUMNS))
    return df, rows


def _synthetic(frame: pd.DataFrame) -> pd.Series:
    """Lines made for calls whose message was not kept (they have no byte count)."""
    return frame["bytes"].isna() if "bytes" in frame else pd.Series(False, index=frame.index)


def _none(value: object) -> object:
    try:
        return None if pd.isna(value) else value  # type: ignore[call-overload]
    except (TypeError, ValueError):  # a list or dict
        return value
