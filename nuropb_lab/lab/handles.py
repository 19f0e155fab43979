"""What a handle the Lab gives out (a tail, a tap) holds on the broker, released once."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Hashable, Iterable
from typing import Any, Final

from .runner import LoopRunner
from .settings import Settings

__all__ = ["Releasable", "replace_earlier"]

STOP_WAIT_S: Final = 30.0  # a blocking stop() waits this long at most for the release


class Releasable:
    """``stop()`` (blocking) or ``await astop()`` releases what the handle holds (its queue,
    the firehose), once, with the coroutine its part gave it; the rows stay readable."""

    def __init__(
        self,
        release: Callable[[Any], Coroutine[Any, Any, None]],
        runner: LoopRunner,
    ) -> None:
        self._release = release
        self._stopped = False
        self.runner = runner  # the Lab loop: deliveries arrive there, views redraw there
        # what it was started with, as given: a cell run again starts one with the same
        self.arguments: Hashable = None
        self.replaced = 0  # earlier ones with the same arguments that it stopped
        self.settings = Settings()  # its Lab's, given by its part (its views read them)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _releasing(self) -> Coroutine[Any, Any, None] | None:
        """The release, the first time it is asked for (None after)."""
        if self._stopped:
            return None
        self._stopped = True
        return self._release(self)

    def stop(self) -> None:
        """Stop it; from the Lab loop's own thread (a callback) the release is scheduled."""
        release = self._releasing()
        if release is None:
            return
        if self.runner.in_loop_thread():
            self.runner.loop.create_task(release)
        else:
            self.runner.run(release, STOP_WAIT_S)

    async def astop(self) -> None:
        """The async twin of :meth:`stop`."""
        release = self._releasing()
        if release is not None:
            await self.runner.run_async(release)


async def replace_earlier(made: Releasable, running: Iterable[Releasable]) -> None:
    """Stop the handles of ``running`` started with ``made``'s arguments (counted in
    ``made.replaced``): a cell run again leaves what one run leaves, not a second copy with
    the first one unreachable. Called once ``made`` runs, so a failed start stops nothing."""
    for earlier in list(running):
        if earlier is not made and not earlier.stopped and earlier.arguments == made.arguments:
            await earlier.astop()
            made.replaced += 1
