"""The Lab's contract checks (lab/check/ does the work; Hypothesis loads on the first)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import LabBase, may_send

if TYPE_CHECKING:
    from .check import CheckResult, CheckRun

__all__ = ["CheckMixin"]


class CheckMixin(LabBase):
    """``check``: property-based contract checks of a live service, from its description.

    Options (see :meth:`CheckSpec.make`): ``methods``, ``max_examples`` (100), ``seed``,
    ``timeout`` (5 s a call), ``concurrency`` (4 methods at a time), ``max_time`` (300 s),
    ``context``, and ``alias``. It calls the service for real: ``prepare_check`` says what
    it will call, sending nothing but a describe."""

    def _new_check(self, target: str, options: dict[str, Any]) -> CheckRun:
        from .check import CheckRun, CheckSpec

        connection = self.connection(options.pop("alias", None))
        may_send(connection, "a check")
        spec = CheckSpec.make(target, **options)
        return CheckRun(spec, connection.api, self._runner, self.describe_timeout)

    def prepare_check(self, target: str, **options: Any) -> CheckRun:
        """Describe ``target`` (SERVICE or SERVICE.METHOD) and plan the check: ``.plan``
        (the methods it will call), ``.announcement()``; then ``.wait()`` or ``.start()``."""
        run = self._new_check(target, options)
        self._wait(run.prepare(), self.describe_timeout)
        return run

    def check(self, target: str, **options: Any) -> CheckResult:
        """Check ``target`` and return what was found (``.findings``, ``.summary()``,
        ``.to_pytest(path)``). Ctrl-C stops it, keeping what was found."""
        return self.prepare_check(target, **options).wait()

    async def acheck(self, target: str, **options: Any) -> CheckResult:
        """The async twin of :meth:`check`."""
        return await self._runner.run_async(self._new_check(target, options).execute())

    def start_check(self, target: str, **options: Any) -> CheckRun:
        """Start a check and return at once: ``.progress``, ``.widget()`` (with a Stop
        button), ``.stop()``, ``.wait()``, ``.result``."""
        return self.prepare_check(target, **options).start()
