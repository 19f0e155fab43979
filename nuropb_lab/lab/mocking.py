"""The Lab's mocks: stand-ins served under a service's name (lab/mock/ does the work)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .connections import Connection, Connections
from .errors import LabError
from .mock import Mock, MockOptions, beside_the_service, recording_for, stand_in
from .runner import LoopRunner
from .served import Serving
from .tap.tap import Tap
from .tap.taps import Taps

__all__ = ["Mocking"]


def _newest_recording(taps: list[Tap], connection: Connection, service: str) -> Tap | None:
    """The newest tap (live or stopped) of the connection that saw requests to ``service``."""
    mine = [t for t in taps if t.alias == connection.alias]
    for tap in sorted(mine, key=lambda t: t.capture.started, reverse=True):
        df = tap.df
        if ((df["kind"] == "request") & (df["service"] == service)).any():
            return tap
    return None


class Mocking:
    """``mock``: a stand-in for a service, answering from a recording (see lab/mock/), served
    as a notebook object is; its recording by default from the taps this Lab made."""

    def __init__(
        self, connections: Connections, serving: Serving, taps: Taps, runner: LoopRunner
    ) -> None:
        self._connections = connections
        self._serving = serving
        self._taps = taps
        self._runner = runner

    async def mock(
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
        connection = self._connections.connection(alias)
        if not isinstance(service, str) or not service:
            raise LabError(f"mock needs a service name, got {service!r}")
        options = MockOptions.make(handlers, delay, error_rate, seed)
        if service in connection.served:
            raise LabError(f"{service!r} is already served on {connection.alias}")
        self._connections.may_send(connection, "a mock")
        if recording is None:
            recording = _newest_recording(self._taps.made(), connection, service)
        found = recording_for(recording, service, options)
        notes = found.notes + await beside_the_service(connection.api, service, replace)
        served = stand_in(service, found, options)
        # its methods only replay recorded answers or call the handlers given: nothing the
        # checks of check_servable guard against, whatever the recorded methods are named
        api = await self._serving.serve(served, name=service, alias=alias, allow_any=True)

        async def release(mock: Mock) -> None:
            if connection.served.get(service) is api:
                del connection.served[service]
            connection.mocks.pop(service, None)
            await api.disconnect()

        made = Mock(service, served, api, notes, runner=self._runner, release=release)
        connection.mocks[service] = made
        return made

    async def stop_all(self, connection: Connection) -> None:
        """Take the connection's mocks off the mesh (it is closing)."""
        for made in list(connection.mocks.values()):
            await made.astop()
