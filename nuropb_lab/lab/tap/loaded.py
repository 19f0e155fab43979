"""A tap read back from its file (store.py): the same tables, statistics, traces and graph."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..redact import Redactor, redactor
from ..settings import Settings
from .capture import DESCRIBE
from .store import read
from .tables import TapData, calls_frame

__all__ = ["LoadedTap", "load_tap"]


class LoadedTap(TapData):
    """A tap read back from a file: the same tables, statistics, traces and graph."""

    def __init__(
        self,
        df: pd.DataFrame,
        calls: pd.DataFrame,
        source: str = "",
        redact: Redactor | None = None,
    ) -> None:
        self.redactor = redactor() if redact is None else redact
        self.redacted = 0
        if self.redactor.enabled:  # a file saved without redaction, or by someone else
            df = df.copy()
            describing = df["method"].eq(DESCRIBE).tolist()
            for column in ("payload", "context", "error"):
                values = []
                for value, describe in zip(df[column], describing, strict=True):
                    walk = self.redactor.description if describe else self.redactor.value
                    new, n = walk(value)
                    values.append(new)
                    self.redacted += n
                df[column] = pd.Series(values, index=df.index, dtype=object)
        self._df = df
        self._calls = calls
        self.source = source

    @property
    def df(self) -> pd.DataFrame:
        frame = self._df.copy()
        frame.attrs["redaction"] = self.redactor.describe()
        frame.attrs["redacted"] = self.redacted
        return frame

    @property
    def calls(self) -> pd.DataFrame:
        return self._calls.copy()

    def _clock(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        times = self._df["time"]
        if times.empty:
            now = pd.Timestamp.now(tz="UTC")
            return now, now
        return times.min(), times.max()

    def __len__(self) -> int:
        return len(self._df)

    def __repr__(self) -> str:
        redacted = f"{self.redacted} redacted" if self.redactor.enabled else "redaction off"
        return (
            f"<LoadedTap {self.source!r}: {len(self._df)} messages, {len(self._calls)} calls,"
            f" {redacted}>"
        )


def load_tap(path: str | Path, redact: bool | Iterable[str] = True) -> LoadedTap:
    """A tap saved with ``tap.save(path)``, what is sensitive in it redacted as it is read
    (``redact``: True, keys to add to the default ones, or False; redact.py): a file saved
    without redaction, or by another lab, shows no credential either."""
    df, calls = read(path)
    keys = () if isinstance(redact, bool) else Settings.check("redact_keys", redact)
    return LoadedTap(df, calls_frame(calls), str(path), redactor(redact is not False, keys))
