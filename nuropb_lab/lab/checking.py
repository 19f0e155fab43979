"""The Lab's contract checks (lab/check/ does the work; Hypothesis loads on the first)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .connections import Connections
from .faces import BACKSTOP_S
from .runner import LoopRunner
from .settings import Settings

if TYPE_CHECKING:
    from .check import CheckResult, CheckRun

__all__ = ["Checking"]


class Checking:
    """``check``: property-based contract checks of a live service, from its description.

    Options (see :meth:`CheckSpec.make`): ``methods``, ``max_examples`` (100), ``seed``,
    ``timeout`` (5 s a call), ``concurrency`` (4 methods at a time), ``max_time`` (300 s),
    ``context``, and ``alias``. It calls the service for real: ``prepare_check`` says what
    it will call, sending nothing but a describe. A run is a handle (progress, stop, widget),
    as a bench is: Ctrl-C in ``check`` stops it and returns what was found."""

    def __init__(self, connections: Connections, settings: Settings, runner: LoopRunner) -> None:
        self._connections = connections
        self._settings = settings
        self._runner = runner

    def _new_check(self, target: str, options: dict[str, Any]) -> CheckRun:
        from .check import CheckRun, CheckSpec

        connection = self._connections.connection(options.pop("alias", None))
        self._connections.may_send(connection, "a check")
        spec = CheckSpec.make(target, **options)
        run = CheckRun(spec, connection.api, self._runner, self._settings.describe_timeout)
        run.settings = self._settings
        return run

    async def prepare_check(self, /, target: str, **options: Any) -> CheckRun:
        """Describe ``target`` (SERVICE or SERVICE.METHOD) and plan the check: ``.plan``
        (the methods it will call), ``.announcement()``; then ``.wait()`` or ``.start()``."""
        return await self._new_check(target, options).prepare()

    def _prepared(self, target: str, options: dict[str, Any]) -> CheckRun:
        # the describe is bounded by describe_timeout; this is a backstop
        bound = self._settings.describe_timeout + BACKSTOP_S
        return self._runner.run(self.prepare_check(target, **options), bound)

    def check(self, /, target: str, **options: Any) -> CheckResult:
        """Check ``target`` and return what was found (``.findings``, ``.summary()``,
        ``.to_pytest(path)``). Ctrl-C stops it, keeping what was found."""
        return self._prepared(target, options).wait()

    async def acheck(self, /, target: str, **options: Any) -> CheckResult:
        """The async twin of :meth:`check`."""
        return await self._new_check(target, options).execute()

    def start_check(self, /, target: str, **options: Any) -> CheckRun:
        """Start a check and return at once: ``.progress``, ``.widget()`` (with a Stop
        button), ``.stop()``, ``.wait()``, ``.result``."""
        return self._prepared(target, options).start()
