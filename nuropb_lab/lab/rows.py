"""The newest rows, bounded twice: in number and in bytes (a tap's and a tail's)."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import OptionError

__all__ = ["Rows"]

T = TypeVar("T")


class Rows(Generic[T]):
    """At most ``max_rows`` rows and ``max_bytes`` of them in all (each row's cost given
    when it is added); the oldest go first. O(1) a row. Not locked: its owner locks."""

    def __init__(self, max_rows: int, max_bytes: int) -> None:
        if max_rows < 1 or max_bytes < 1:
            raise OptionError(
                f"max_rows and max_bytes must be at least 1, got {max_rows!r} and {max_bytes!r}"
            )
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._rows: collections.deque[T] = collections.deque(maxlen=max_rows)
        self._costs: collections.deque[int] = collections.deque(maxlen=max_rows)
        self.kept_bytes = 0
        self.dropped = 0  # rows dropped to stay within max_bytes (not those past max_rows)

    def append(self, row: T, cost: int) -> None:
        costs = self._costs
        if len(costs) == self.max_rows:  # the deques drop their oldest themselves
            self.kept_bytes -= costs[0]
        self._rows.append(row)
        costs.append(cost)
        self.kept_bytes += cost
        while self.kept_bytes > self.max_bytes and len(costs) > 1:
            self._rows.popleft()
            self.kept_bytes -= costs.popleft()
            self.dropped += 1

    def newest(self, last: int | None = None) -> list[T]:
        """The newest ``last`` rows (all if None), oldest first."""
        rows = self._rows
        if last is None or last >= len(rows):
            return list(rows)
        return [rows[i] for i in range(len(rows) - last, len(rows))]

    def clear(self) -> None:
        self._rows.clear()
        self._costs.clear()
        self.kept_bytes = 0

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[T]:
        return iter(self._rows)
