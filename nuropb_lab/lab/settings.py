"""The checks of the Lab's settings and options."""

from __future__ import annotations

import math
from typing import Any

from .errors import OptionError

__all__ = ["positive_seconds"]


def positive_seconds(name: str, value: Any) -> float:
    """``value`` as seconds, more than 0 (OptionError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise OptionError(f"{name} must be > 0 seconds, got {value!r}")
    if math.isinf(value):
        raise OptionError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)
