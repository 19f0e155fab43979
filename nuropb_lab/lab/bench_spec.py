"""What a bench is asked to do, checked: ``BenchSpec.make`` (see bench.py for the run).

n, duration, concurrency, rate, warmup and timeout out of range, a malformed target or params
of the wrong kind are one line (:class:`BenchError`), before anything is sent.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, Final

from .errors import BenchError

__all__ = ["BenchError", "BenchSpec", "ParamsArg"]

MAX_N: Final = 10_000_000
MAX_CONCURRENCY: Final = 10_000
MAX_RATE: Final = 100_000.0
MAX_DURATION: Final = 86_400.0
MAX_WARMUP: Final = 1_000_000
DEFAULT_N: Final = 1_000
DEFAULT_CONCURRENCY: Final = 10
OPEN_IN_FLIGHT: Final = 1_000  # the open model's cap on calls in flight, unless given
CHECKED_PARAMS: Final = 100  # distinct params of a list checked before a run

ParamsArg = dict[str, Any] | Sequence[dict[str, Any]] | Callable[[int], dict[str, Any]] | None


def _whole(name: str, value: Any, low: int, high: int, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BenchError(
            f"{name} must be a whole number{unit} from {low:,} to {high:,}, got {value!r}"
        )
    return value


def _positive(name: str, value: Any, high: float, unit: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not 0 < value <= high or math.isnan(value):
        raise BenchError(f"{name} must be more than 0 and at most {high:,g} {unit}, got {value!r}")
    return float(value)


def _param_source(
    params: ParamsArg,
) -> tuple[Callable[[int], dict[str, Any]], list[dict[str, Any]]]:
    """(params of call i, the params to check before the run)."""
    if params is None:
        params = {}
    if isinstance(params, dict):
        constant = params
        return (lambda _i: constant), [constant]
    if callable(params):
        make = params

        def made(i: int) -> dict[str, Any]:
            value = make(i)
            if not isinstance(value, dict):
                raise BenchError(f"params({i}) returned a {type(value).__name__}, not a dict")
            return value

        return made, [made(0)]
    if isinstance(params, (list, tuple)):
        items = list(params)
        if not items or not all(isinstance(p, dict) for p in items):
            raise BenchError("params must be a dict, a non-empty list of dicts or a function")
        count = len(items)
        return (lambda i: items[i % count]), items[:CHECKED_PARAMS]
    raise BenchError(
        "params must be a dict, a list of dicts (cycled) or a function of the call number,"
        f" not {type(params).__name__}"
    )


@dataclasses.dataclass(frozen=True)
class BenchSpec:
    """A bench as asked, checked (``BenchSpec.make`` raises BenchError in one line)."""

    target: str
    service: str
    method: str
    params_for: Callable[[int], dict[str, Any]]
    samples: list[dict[str, Any]]
    n: int | None
    duration: float | None
    concurrency: int
    rate: float | None
    warmup: int
    timeout: float
    encrypt: bool | None
    kind: str
    label: str
    context: dict[str, Any]
    check: bool

    @classmethod
    def make(
        cls,
        target: str,
        params: ParamsArg = None,
        *,
        n: int | None = None,
        duration: float | None = None,
        concurrency: int | None = None,
        rate: float | None = None,
        warmup: int = 0,
        timeout: float | None = None,
        encrypt: bool | None = None,
        kind: str = "call",
        label: str | None = None,
        context: dict[str, Any] | None = None,
        check: bool = True,
        default_timeout: float = 30.0,
    ) -> BenchSpec:
        """``n`` calls (default 1,000) or for ``duration`` seconds; ``concurrency`` in flight
        (closed model, default 10) or ``rate`` calls/s (open model; ``concurrency`` then caps
        the calls in flight, default 1,000); ``warmup`` calls first, not measured; each call
        waits at most ``timeout`` s; ``kind`` "call" (requests) or "command"; ``encrypt``
        None follows the method's description; ``check`` the params against it first."""
        if not isinstance(target, str):
            raise BenchError(f"target must look like SERVICE.METHOD, got {target!r}")
        service, dot, method = target.rpartition(".")
        if not dot or not service or not method:
            raise BenchError(f"target must look like SERVICE.METHOD, got {target!r}")
        if n is not None and duration is not None:
            raise BenchError("give n or duration, not both")
        if n is not None:
            _whole("n", n, 1, MAX_N)
        if duration is not None:
            duration = _positive("duration", duration, MAX_DURATION, "s")
        if rate is not None:
            rate = _positive("rate", rate, MAX_RATE, "calls/s")
        default = OPEN_IN_FLIGHT if rate is not None else DEFAULT_CONCURRENCY
        concurrency = _whole(
            "concurrency", default if concurrency is None else concurrency, 1, MAX_CONCURRENCY
        )
        _whole("warmup", warmup, 0, MAX_WARMUP, " of calls")
        timeout = default_timeout if timeout is None else timeout
        timeout = _positive("timeout", timeout, MAX_DURATION, "s")
        if kind not in ("call", "command"):
            raise BenchError(f"kind must be 'call' or 'command', got {kind!r}")
        if context is not None and not isinstance(context, dict):
            raise BenchError(f"context must be a dict, not {type(context).__name__}")
        if label is not None and not isinstance(label, str):
            raise BenchError(f"label must be a string, not {type(label).__name__}")
        if n is None and duration is None:
            n = DEFAULT_N
        params_for, samples = _param_source(params)
        return cls(
            target=target,
            service=service,
            method=method,
            params_for=params_for,
            samples=samples,
            n=n,
            duration=duration,
            concurrency=concurrency,
            rate=rate,
            warmup=warmup,
            timeout=timeout,
            encrypt=encrypt,
            kind=kind,
            label=label or target,
            context=dict(context or {}),
            check=check,
        )

    @property
    def model(self) -> str:
        return "open" if self.rate is not None else "closed"

    def bound_s(self) -> float | None:
        """How long the load may take at most (None: n calls of a closed run, each bounded)."""
        if self.duration is not None:
            return self.duration + self.timeout
        if self.rate is not None and self.n is not None:
            return self.n / self.rate + self.timeout
        return None
