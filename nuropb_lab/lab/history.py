"""The session's call history: one row per call, bounded, as a DataFrame on demand."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import operator
import threading
from typing import Any

import pandas as pd

from ..mesh.errors import error_name
from ..mesh.limits import ERROR_BYTES, HISTORY_PARAMS, clip_text
from .redact import MARKER, Redactor, redactor

__all__ = ["CallRecord", "History"]


def _short(value: Any, width: int = HISTORY_PARAMS) -> str:
    try:
        text = json.dumps(value, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclasses.dataclass(frozen=True)
class CallRecord:
    time: datetime.datetime
    alias: str
    kind: str  # "call" or "command"
    service: str
    method: str
    params: str  # truncated JSON
    ok: bool
    # what a remote service said is kept bounded (limits.py)
    error: str | None  # the nuropb error class name
    description: str | None
    latency_ms: float
    encrypted: bool
    trace_id: str | None
    correlation_id: str | None
    note: str | None = None  # how encryption was decided, when not by the method's own say

    @classmethod
    def make(
        cls,
        alias: str,
        kind: str,
        service: str,
        method: str,
        params: Any,
        started: float,
        finished: float,
        error: BaseException | None,
        encrypted: bool,
        trace_id: str | None,
        correlation_id: str | None,
        note: str | None = None,
        redact: Redactor | None = None,
    ) -> CallRecord:
        """The record of a call; ``redact``: what it redacts in the params and the error's
        description before they are kept (default: the default redaction, redact.py)."""
        redact = redactor() if redact is None else redact
        params = redact.value(params)[0]
        name = description = None
        if error is not None:
            name = error_name(error)
            description = clip_text(redact.text(str(error))[0], ERROR_BYTES)
        return cls(
            time=datetime.datetime.now(datetime.UTC),
            alias=alias,
            kind=kind,
            service=service,
            method=method,
            params=_short(params),
            ok=error is None,
            error=name,
            description=description,
            latency_ms=round((finished - started) * 1000, 3),
            encrypted=encrypted,
            trace_id=None if trace_id is None else clip_text(trace_id),
            correlation_id=correlation_id,
            note=note,
        )


COLUMNS = [f.name for f in dataclasses.fields(CallRecord)]
_as_row = operator.attrgetter(*COLUMNS)


class History:
    """The newest ``size`` calls; appended from any thread."""

    def __init__(self, size: int = 10_000) -> None:
        self._rows: collections.deque[CallRecord] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self._rows.append(record)

    def records(self) -> list[CallRecord]:
        with self._lock:
            return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self, n: int | None = None) -> pd.DataFrame:
        """The calls made in this session (the last ``n``; newest last); ``attrs["redacted"]``:
        the values redacted in it."""
        rows = self.records()
        if n is not None:
            rows = rows[-n:] if n > 0 else []
        frame = pd.DataFrame([_as_row(r) for r in rows], columns=COLUMNS)
        # values redacted in what the table shows (params and error text, redact.py)
        frame.attrs["redacted"] = sum(
            r.params.count(MARKER) + (r.description or "").count(MARKER) for r in rows
        )
        return frame

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
