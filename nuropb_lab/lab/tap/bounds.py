"""How long a tap on the firehose may run: a time limit (five minutes unless asked otherwise)
and, if given, a number of records, after which it stops by itself as ``tap.stop()`` does.

The firehose makes the broker copy every message published and delivered on the vhost, which
slows every client on it (``FIREHOSE_COST``, from the bench); a tap left running in a
forgotten notebook would keep that on for good. So a firehose tap ends on its own, and says
when, as it starts.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import time
from typing import Any, Final

from ..errors import OptionError

__all__ = ["DEFAULT_MAX_DURATION", "FIREHOSE_COST", "TapBounds"]

DEFAULT_MAX_DURATION: Final = 300.0  # s a firehose tap runs unless told otherwise

# lab->lab RPC round trips (100 in flight) with a tap on the firehose against without, in the
# same run: `python -m bench --parts tap`, bench/RESULTS.md (2026-12-04, median of 5 runs,
# 0.46-0.56x; 0.45-0.55x in the runs before)
FIREHOSE_COST: Final = (
    "the broker copies every message published and delivered on it to the tap, which slowed"
    " every client's RPC throughput to about 0.5x in the bench (0.53x, bench/RESULTS.md)"
)


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%H:%M:%S UTC")


@dataclasses.dataclass
class TapBounds:
    """A tap's limits: ``max_duration`` seconds (None: none) from ``started`` (time.time()),
    and ``max_records`` records taken in (None: none); ``ended`` says why it stopped by
    itself, once it did."""

    max_duration: float | None
    max_records: int | None
    started: float = dataclasses.field(default_factory=time.time)
    ended: str | None = None

    @classmethod
    def make(cls, max_duration: Any, max_records: Any) -> TapBounds:
        """Checked limits (OptionError, one line, for a bad value)."""
        if max_duration is not None and (
            isinstance(max_duration, bool)
            or not isinstance(max_duration, (int, float))
            or not max_duration > 0
            or math.isinf(max_duration)
        ):
            raise OptionError(
                f"max_duration must be a finite number of seconds > 0, or None for no limit,"
                f" got {max_duration!r}"
            )
        if max_records is not None and (
            isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1
        ):
            raise OptionError(f"max_records must be at least 1, or None, got {max_records!r}")
        duration = float(max_duration) if max_duration is not None else None
        return cls(duration, max_records)

    @property
    def ends_at(self) -> float | None:
        """When the time limit is up (time.time()), if there is one."""
        return None if self.max_duration is None else self.started + self.max_duration

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.started

    def left(self, now: float | None = None) -> float | None:
        """Seconds until the time limit (at least 0), or None without one."""
        at = self.ends_at
        return None if at is None else max(0.0, at - (time.time() if now is None else now))

    def describe(self, received: int, now: float | None = None) -> str:
        """Its age and what is left: ``12 s old, 288 s left`` (and the records, if bounded)."""
        if self.ended is not None:
            return f"ended by itself: {self.ended}"
        left = self.left(now)
        text = f"{self.age(now):.0f} s old, " + (
            "no time limit" if left is None else f"{left:.0f} s left"
        )
        if self.max_records is not None:
            text += f", {received:,} of {self.max_records:,} records"
        return text

    def promise(self, then: str = "") -> str:
        """When it will end (and what it does ``then``), said as it starts."""
        limits = []
        at = self.ends_at
        if at is not None:
            limits.append(f"in {self.max_duration:g} s (at {_when(at)})")
        if self.max_records is not None:
            limits.append(f"after {self.max_records:,} records")
        if not limits:
            return "it has no limit (max_duration=None): it runs until tap.stop()"
        return f"it ends by itself {' or '.join(limits)}{then}, or sooner with tap.stop()"
