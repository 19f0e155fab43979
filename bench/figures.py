"""The figures of a benchmark run, shared by the parts: medians over rounds, the median of
per-round ratios, this process's resident set size, and how a figure is printed in the
table."""

from __future__ import annotations

import os
import statistics
from typing import Any

__all__ = ["fmt", "median", "ratios", "rss_bytes", "summarize"]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarize(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, float]:
    return {key: median([r[key] for r in runs if key in r]) for key in keys}


def ratios(per_round: dict[int, dict[str, float]], top: str, bottom: str) -> float:
    values = [
        r[top] / r[bottom] for r in per_round.values() if r.get(bottom) and r.get(top) is not None
    ]
    return median(values)


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"
