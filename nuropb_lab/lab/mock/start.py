"""What a mock needs before it is served: its options checked, its recording read, and the
service's queue looked at (a mock does not start beside the real service unless asked)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from ...mesh.api import RMQAPI
from ...mesh.topology import Topology
from ..errors import LabError
from .recording import Recording

__all__ = ["MockOptions", "beside_the_service", "recording_for"]

MAX_DELAY_S: Final = 3600.0


def _share(name: str, value: Any, high: float, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LabError(f"{name} is {unit}, got {value!r}")
    if math.isnan(value) or not 0 <= value <= high:
        raise LabError(f"{name} must be from 0 to {high:g}, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class MockOptions:
    """A mock's options, checked (``make`` raises LabError in one line)."""

    handlers: dict[str, Callable[..., Any]]
    delay: float
    error_rate: float
    seed: int | None

    @classmethod
    def make(
        cls,
        handlers: Mapping[str, Callable[..., Any]] | None,
        delay: float | None,
        error_rate: float,
        seed: int | None,
    ) -> MockOptions:
        chosen = dict(handlers or {})
        bad = [n for n, h in chosen.items() if not str(n).isidentifier() or not callable(h)]
        if bad or any(str(n).startswith("_") for n in chosen):
            raise LabError(f"handlers map method names to functions; not {bad or list(chosen)}")
        return cls(
            handlers=chosen,
            delay=_share("delay", 0.0 if delay is None else delay, MAX_DELAY_S, "in seconds"),
            error_rate=_share("error_rate", error_rate, 1.0, "a share of the calls (0 to 1)"),
            seed=seed,
        )


def recording_for(source: Any, service: str, options: MockOptions) -> Recording:
    """The calls to ``service`` in ``source`` (None: none, the handlers answer); LabError when
    nothing would answer."""
    if source is None and options.handlers:
        return Recording(service, [], None, ["no recording: the handlers alone answer"])
    if source is None:
        raise LabError(
            f"no recording of {service}: no tap of this connection saw an answered call to it;"
            " give a recording (a tap, its df or a file tap.save wrote) or handlers"
        )
    found = Recording.of(source, service)
    if not found.calls and found.recorded is None and not options.handlers:
        why = f" ({'; '.join(found.notes)})" if found.notes else ""
        raise LabError(
            f"the recording holds no answered call to {service}{why}: tap its traffic"
            " (lab.tap(), with the firehose), or give handlers"
        )
    return found


async def beside_the_service(api: RMQAPI, service: str, replace: bool) -> list[str]:
    """Refuse (LabError) while ``service``'s queue has consumers, unless ``replace``: then
    the note that the mock is one more instance."""
    queue = await api.queue_info(Topology.service_queue(service))
    consumers = queue[1] if queue is not None else 0
    if consumers and not replace:
        raise LabError(
            f"{service} is being served ({consumers} consumer(s) on its queue): stop it"
            " first, or pass replace=True (--replace) to add the mock as one more instance"
        )
    if not consumers:
        return []
    return [
        f"one more instance beside {consumers} consumer(s) of {service}'s queue:"
        f" the mock answers about 1 in {consumers + 1} of its calls"
    ]
