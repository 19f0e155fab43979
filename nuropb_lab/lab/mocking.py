"""The Lab's mocks: stand-ins served under a service's name (lab/mock/ does the work)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from ..mesh.topology import Topology
from .base import Connection, LabError, awaitable, blocking, may_send
from .mock import Mock, Recording, stand_in
from .served import ServeMixin
from .tap import Tap
from .tap.ops import taps_made

if TYPE_CHECKING:
    from .session import Lab

__all__ = ["MockMixin"]

MAX_DELAY_S = 3600.0


def _newest_recording(taps: list[Tap], connection: Connection, service: str) -> Tap | None:
    """The newest tap (live or stopped) of the connection that saw requests to ``service``."""
    mine = [t for t in taps if t.alias == connection.alias]
    for tap in sorted(mine, key=lambda t: t.capture.started, reverse=True):
        df = tap.df
        if ((df["kind"] == "request") & (df["service"] == service)).any():
            return tap
    return None


class MockMixin(ServeMixin):
    """``mock``: a stand-in for a service, answering from a recording (see lab/mock/)."""

    async def _mock(
        self,
        service: str,
        recording: Any = None,
        *,
        handlers: Mapping[str, Callable[..., Any]] | None = None,
        delay: float | None = None,
        error_rate: float = 0.0,
        replace: bool = False,
        seed: int | None = None,
        alias: str | None = None,
    ) -> Mock:
        """Serve a stand-in for ``service`` from ``recording`` (a tap, its df, or a file that
        tap.save wrote; default: the newest tap of the connection that saw calls to it).
        ``handlers``: method name -> function of the params, adding or replacing methods;
        ``delay`` (s) before each answer; ``error_rate`` of the answers fail (drawn from
        ``seed``). Refused while the service has consumers, unless ``replace`` (the mock is
        then one more instance). ``.stop()`` takes it off; ``disconnect`` too."""
        connection = self.connection(alias)
        if not isinstance(service, str) or not service:
            raise LabError(f"mock needs a service name, got {service!r}")
        delay = 0.0 if delay is None else delay
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise LabError(f"delay is in seconds, got {delay!r}")
        if math.isnan(delay) or not 0 <= delay <= MAX_DELAY_S:
            raise LabError(f"delay must be from 0 to {MAX_DELAY_S:g} s, got {delay!r}")
        if isinstance(error_rate, bool) or not isinstance(error_rate, (int, float)):
            raise LabError(f"error_rate is a share of the calls (0 to 1), got {error_rate!r}")
        if math.isnan(error_rate) or not 0 <= error_rate <= 1:
            raise LabError(f"error_rate must be from 0 to 1, got {error_rate!r}")
        handlers = dict(handlers or {})
        bad = [n for n, h in handlers.items() if not str(n).isidentifier() or not callable(h)]
        if bad or any(str(n).startswith("_") for n in handlers):
            raise LabError(f"handlers map method names to functions; not {bad or list(handlers)}")
        if service in connection.served:
            raise LabError(f"{service!r} is already served on {connection.alias}")
        may_send(connection, "a mock")
        if recording is None:
            # the taps are kept by the Lab they were made by: this part is that Lab
            recording = _newest_recording(taps_made(cast("Lab", self)), connection, service)
        source = recording
        found = (
            Recording.of(source, service)
            if source is not None
            else Recording(service, [], None, ["no recording: the handlers alone answer"])
        )
        if not found.calls and found.recorded is None and not handlers:
            why = f" ({'; '.join(found.notes)})" if found.notes else ""
            raise LabError(
                f"the recording holds no answered call to {service}{why}: tap its traffic"
                " (lab.tap(), with the firehose), or give handlers"
            )
        notes = list(found.notes)
        queue = await connection.api.queue_info(Topology.service_queue(service))
        consumers = queue[1] if queue is not None else 0
        if consumers and not replace:
            raise LabError(
                f"{service} is being served ({consumers} consumer(s) on its queue): stop it"
                " first, or pass replace=True (--replace) to add the mock as one more instance"
            )
        if consumers:
            notes.append(
                f"one more instance beside {consumers} consumer(s) of {service}'s queue:"
                f" the mock answers about 1 in {consumers + 1} of its calls"
            )
        served = stand_in(service, found, handlers, float(delay), float(error_rate), seed)
        # its methods only replay recorded answers or call the handlers given: nothing the
        # checks of check_servable guard against, whatever the recorded methods are named
        api = await self._serve(served, name=service, alias=alias, allow_any=True)

        async def stop(mock: Mock) -> None:
            if connection.served.get(service) is api:
                del connection.served[service]
            connection.mocks.pop(service, None)
            await api.disconnect()

        mock = Mock(service, served, api, self._runner, stop, notes)
        connection.mocks[service] = mock
        return mock

    mock = blocking(_mock)
    amock = awaitable(_mock)
