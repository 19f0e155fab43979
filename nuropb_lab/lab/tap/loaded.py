"""A tap read back from its file (store.py): the same tables, statistics, traces and graph."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .store import read
from .tables import TapData, calls_frame

__all__ = ["LoadedTap", "load_tap"]


class LoadedTap(TapData):
    """A tap read back from a file: the same tables, statistics, traces and graph."""

    def __init__(self, df: pd.DataFrame, calls: pd.DataFrame, source: str = "") -> None:
        self._df = df
        self._calls = calls
        self.source = source

    @property
    def df(self) -> pd.DataFrame:
        return self._df.copy()

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
        return f"<LoadedTap {self.source!r}: {len(self._df)} messages, {len(self._calls)} calls>"


def load_tap(path: str | Path) -> LoadedTap:
    """A tap saved with ``tap.save(path)``."""
    df, calls = read(path)
    return LoadedTap(df, calls_frame(calls), str(path))
