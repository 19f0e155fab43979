"""The Lab's settings, held once: each one's default, meaning and check.

``Lab(timeout=10, ...)`` takes them as keyword arguments and ``lab.timeout = 10`` changes one
(checked); the magic's traitlets (``%config NuropbMagics.timeout = 10``) are made from the same
fields, so a default or a check is written here only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, get_args, overload

from ..mesh.nodes import FailoverStrategy
from .errors import OptionError

__all__ = ["FAILOVER_STRATEGIES", "Setting", "Settings", "positive_seconds", "setting_fields"]

FAILOVER_STRATEGIES: tuple[str, ...] = get_args(FailoverStrategy)

T = TypeVar("T")


def positive_seconds(name: str, value: Any) -> float:
    """``value`` as seconds, more than 0 (OptionError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise OptionError(f"{name} must be > 0 seconds, got {value!r}")
    if math.isinf(value):
        raise OptionError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def _at_least_one(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"{name} must be at least 1, got {value!r}")
    return value


def _text_or_none(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise OptionError(f"{name} must be a string or None, got {type(value).__name__}")
    return value or None


def _strategy(name: str, value: Any) -> str:
    if value not in FAILOVER_STRATEGIES:
        raise OptionError(f"{name} must be one of {', '.join(FAILOVER_STRATEGIES)}, not {value!r}")
    return str(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise OptionError(f"{name} must be True or False, got {value!r}")
    return value


def _keys(name: str, value: Any) -> tuple[str, ...]:
    """Keys as a tuple of non-empty strings (a comma-separated string is taken too)."""
    if isinstance(value, str):
        value = [k.strip() for k in value.split(",") if k.strip()]
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
        isinstance(k, str) and k.strip() for k in value
    ):
        raise OptionError(f"{name} must be a list of non-empty strings, got {value!r}")
    return tuple(k.strip() for k in value)


def _setting(default: Any, help: str, check: Callable[[str, Any], Any], **more: Any) -> Any:
    return dataclasses.field(default=default, metadata={"help": help, "check": check, **more})


@dataclasses.dataclass
class Settings:
    """What the Lab's operations use unless told otherwise; every value is checked as it is set
    (OptionError, one line)."""

    timeout: float = _setting(30.0, "Seconds a call waits for its answer.", positive_seconds)
    describe_timeout: float = _setting(
        2.0, "Seconds discovery waits for each describe.", positive_seconds
    )
    tail_max_rows: int = _setting(10_000, "Events a tail keeps (newest).", _at_least_one)
    management_url: str | None = _setting(
        None,
        "Management API URL (default: beside each node, its AMQP port + 10000).",
        _text_or_none,
    )
    failover_strategy: str = _setting(
        "round-robin",
        "Order to try several nodes in: as given (round-robin), or shuffled.",
        _strategy,
        choices=FAILOVER_STRATEGIES,
    )
    read_only: bool = _setting(
        False,
        "Open every connection read-only: calls, commands, events, serving, benches, checks,"
        " mocks, replays and the firehose switch are refused.",
        _flag,
    )
    live_idle_timeout: float = _setting(
        600.0,
        "Seconds without interaction after which a live view stops redrawing (Resume restarts it).",
        positive_seconds,
    )
    redact: bool = _setting(
        True,
        "Redact credentials in what is shown or kept of messages (taps, tails, dead letters,"
        " history): see redact.py.",
        _flag,
    )
    redact_keys: tuple[str, ...] = _setting(
        (),
        "Keys redacted besides the default ones (a key that is or contains one, any case).",
        _keys,
    )

    def __setattr__(self, name: str, value: Any) -> None:
        check = _CHECKS.get(name)
        super().__setattr__(name, value if check is None else check(name, value))

    @classmethod
    def check(cls, name: str, value: Any) -> Any:
        """``value`` as setting ``name`` takes it (OptionError when it does not)."""
        return _CHECKS[name](name, value)


def setting_fields() -> tuple[dataclasses.Field[Any], ...]:
    """The settings, with their default, ``metadata["help"]`` and, for one of a few values,
    ``metadata["choices"]`` (the magic's traits are made of them)."""
    return dataclasses.fields(Settings)


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    f.name: f.metadata["check"] for f in dataclasses.fields(Settings)
}


class _HasSettings(Protocol):
    settings: Settings


class Setting(Generic[T]):
    """A setting as an attribute of what holds the settings (``lab.timeout = 10``, checked)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, holder: None, owner: type | None = None) -> Setting[T]: ...

    @overload
    def __get__(self, holder: _HasSettings, owner: type | None = None) -> T: ...

    def __get__(self, holder: _HasSettings | None, owner: type | None = None) -> T | Setting[T]:
        if holder is None:
            return self
        value: T = getattr(holder.settings, self.name)
        return value

    def __set__(self, holder: _HasSettings, value: T) -> None:
        setattr(holder.settings, self.name, value)
