"""Load and latency from the notebook: ``lab.bench`` and ``%nuropb bench``.

A :class:`BenchRun` drives ``RMQAPI.request`` (or ``command``) straight on the Lab's loop,
without the history and checks of ``lab.call`` per call: its own cost per call is a few
list appends, so that the figures are the mesh's, not the generator's. The run (not each
call) is recorded: ``lab.benches()``.

- Closed model: ``concurrency`` calls in flight, each sent when one ends.
- Open model (``rate``): calls at fixed intended times, latency counted from the intended
  time (as wrk2 does), so a stall of the service shows in the percentiles instead of merely
  slowing the generator down; the summary says when the generator itself sent late.
  ``concurrency`` caps the calls in flight (default 1,000).

Progress is published on the run (:class:`Progress`, progress.py, to listeners, a few times a
second, from the Lab loop): the widget (registered from above, see views.py) and the magic
show the same thing. ``stop()`` (any thread) and Ctrl-C in a blocking wait end the run
keeping what was measured; every wait is bounded (a call by its ttl, a duration run by its
duration plus the timeout).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

import pandas as pd

from ..mesh.api import RMQAPI
from ..mesh.calls import new_id
from ..mesh.errors import NuropbException, NuropbNotDeliveredError, error_name
from ..mesh.limits import ERROR_BYTES, clip_text
from .bench_result import CANCELLED, LATE_S, BenchInfo, BenchResult, Calls, LatencySplitter
from .bench_spec import BenchError, BenchSpec, ParamsArg
from .params import check_params, method_spec
from .progress import Progress, ProgressRun, window_stats
from .runner import LoopRunner

__all__ = ["BenchError", "BenchRun", "BenchSpec", "Benches", "ParamsArg"]

log = logging.getLogger(__name__)

TICK_S: Final = 0.25  # progress published this often
GRACE_S: Final = 5.0  # beyond a run's bound: for the loop to hand back the result


class BenchRun(ProgressRun[BenchResult]):
    """One bench: ``start()`` it (or ``wait()``, which starts it and blocks), read
    ``progress``, ``stop()`` it; ``result`` once it ended (``partial()`` meanwhile)."""

    def __init__(
        self,
        spec: BenchSpec,
        api: RMQAPI,
        runner: LoopRunner,
        describe_timeout: float = 2.0,
        book: Benches | None = None,
    ) -> None:
        super().__init__(
            spec.label,
            runner,
            Progress("preparing", 0, spec.n, 0.0, spec.duration, 0.0, None, None, 0, 0, False),
            spec.timeout + GRACE_S,  # a call in flight when it stops ends by its ttl
        )
        self.spec = spec
        self.api = api
        self.describe_timeout = describe_timeout
        self.book = book
        self.result: BenchResult | None = None
        self.encrypted = bool(spec.encrypt)
        self.checked = False
        self.notes: list[str] = []
        self._stop_reason: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._state = "preparing"
        self._message = ""
        # the calls, in the order they end (appended in the loop thread only)
        self._number: list[int] = []
        self._intended: list[float] = []
        self._sent: list[float] = []
        self._ended: list[float] = []
        self._error: list[str | None] = []
        self._ids: list[str | None] = []
        self._errors = 0
        self._issued = 0
        self._in_flight = 0
        self._late = 0
        self._unsent = 0
        self._cap_waits = 0
        self._slot: asyncio.Future[None] | None = None
        self._send: Callable[[dict[str, Any], str], Coroutine[Any, Any, Any]] = self._sender()
        self._origin = time.perf_counter()
        self._wall = datetime.datetime.now(datetime.UTC)

    def __repr__(self) -> str:
        p = self.progress
        return f"<BenchRun {self.spec.label!r} {p.state}: {p.done:,} calls, {p.errors:,} errors>"

    # --- progress ----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    def _publish(self) -> None:
        now = time.perf_counter()
        rate, p50, p99 = window_stats(self._ended, self._intended, now, self._origin)
        self._notify(
            Progress(
                state=self._state,
                done=len(self._ended),
                total=self.spec.n if self._state != "warmup" else self.spec.warmup,
                elapsed_s=now - self._origin if self._state != "preparing" else 0.0,
                duration_s=self.spec.duration,
                rate=rate,
                p50_ms=p50,
                p99_ms=p99,
                errors=self._errors,
                in_flight=self._in_flight,
                behind=self._late > 0 or self._unsent > 0,
                message=self._message,
            )
        )

    def _set_state(self, state: str) -> None:
        self._state = state
        self._publish()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if self.api.transport.state == "closed":
                self._halt("disconnected")
            self._publish()

    # --- starting, stopping, waiting ---------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """End the run now (from any thread): no more calls; those in flight are cancelled
        and kept as such. What was measured stays."""
        loop = self._loop
        if loop is None:
            self._stop_reason = self._stop_reason or reason
        elif self.runner.in_loop_thread():
            self._halt(reason)
        else:
            loop.call_soon_threadsafe(self._halt, reason)

    def _halt(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        for task in list(self._tasks):
            task.cancel()

    def partial(self) -> BenchResult:
        """What was measured so far (the result, once the run ended)."""
        if self.result is not None:
            return self.result
        return self._result(self._state, time.perf_counter())

    # --- the run -----------------------------------------------------------------------------

    async def execute(self) -> BenchResult:
        """Check the target and params, warm up, load, and return the result (kept on the
        run and in the Lab's book; a cancelled run keeps its partial result too)."""
        self._loop = asyncio.get_running_loop()
        ticker = self._loop.create_task(self._ticker())
        try:
            await self._prepare()
            if self.spec.warmup and self._stop_reason is None:
                self._set_state("warmup")
                await self._load(warmup=True)
                self._reset()
            if self.book is not None:
                self.book.add(self)
            if self._stop_reason is None:
                self._set_state("running")
                await self._load(warmup=False)
        except asyncio.CancelledError:
            self._halt("interrupted")
            if self._tasks:  # let the calls cancelled in flight be kept as such
                await asyncio.wait(list(self._tasks), timeout=1.0)
            self._finish()
            raise
        except BaseException as exc:
            self._message = clip_text(f"{error_name(exc)}: {exc}", ERROR_BYTES)
            self._finish("failed")
            raise
        finally:
            ticker.cancel()
        return self._finish()

    def _finish(self, state: str | None = None) -> BenchResult:
        if self.result is None:
            self._state = state or self._stop_reason or "done"
            self.result = self._result(self._state, time.perf_counter())
            self._publish()
        return self.result

    def _result(self, state: str, now: float) -> BenchResult:
        spec = self.spec
        notes = list(self.notes)
        if self._late:
            notes.append(
                f"the generator fell behind: {self._late:,} calls sent more than"
                f" {LATE_S * 1000:.0f} ms after their intended time (latency counts from it)"
            )
        if self._cap_waits:
            notes.append(
                f"{spec.concurrency:,} calls were in flight (the cap) {self._cap_waits:,} times:"
                " the service did not keep up with the rate"
            )
        if self._unsent:
            notes.append(f"{self._unsent:,} calls were not sent by the end of the duration")
        if self._message:
            notes.append(self._message)
        info = BenchInfo(
            label=spec.label,
            target=spec.target,
            kind=spec.kind,
            model=spec.model,
            concurrency=spec.concurrency,
            rate=spec.rate,
            n=spec.n,
            duration=spec.duration,
            warmup=spec.warmup,
            timeout=spec.timeout,
            encrypted=self.encrypted,
            checked=self.checked,
        )
        calls = Calls.of(
            self._number, self._intended, self._sent, self._ended, self._error, self._ids
        )
        splitters = self.book.splitters_now if self.book is not None else None
        return BenchResult(
            info,
            calls,
            state,
            self._wall,
            self._origin,
            now,
            notes,
            self._late,
            self._unsent,
            self._cap_waits,
            splitters,
        )

    async def _prepare(self) -> None:
        """The target must exist before any load; params are checked when it describes
        itself; encryption is decided as for a call."""
        spec = self.spec
        try:
            description = await self.api.describe_service(
                spec.service, ttl=int(min(self.describe_timeout, spec.timeout) * 1000)
            )
        except NuropbNotDeliveredError:
            raise
        except NuropbException as exc:
            description = None
            self.notes.append(
                f"{spec.service} did not describe itself ({type(exc).__name__}): not checked"
            )
        if description is not None:

            async def refresh() -> dict[str, Any]:
                return await self.api.describe_service(spec.service, refresh=True)

            if spec.check:
                for params in spec.samples:
                    await check_params(description, spec.service, spec.method, params, refresh)
                self.checked = True
            else:
                method_spec(description, spec.service, spec.method)  # the method exists
        # as a call decides it (mesh/descriptions.py): a refusal is one line, before any load
        self.encrypted, note = self.api.descriptions.decide(spec.service, spec.method, spec.encrypt)
        if note:
            self.notes.append(note)

    def _reset(self) -> None:
        for column in (
            self._number,
            self._intended,
            self._sent,
            self._ended,
            self._error,
            self._ids,
        ):
            column.clear()
        self._errors = self._issued = self._late = self._unsent = self._cap_waits = 0

    def _sender(self) -> Callable[[dict[str, Any], str], Coroutine[Any, Any, Any]]:
        spec, api = self.spec, self.api
        service, method, context = spec.service, spec.method, spec.context
        ttl, encrypted = int(spec.timeout * 1000), self.encrypted
        if spec.kind == "command":
            command = api.command

            async def send_command(params: dict[str, Any], _cid: str) -> None:
                await command(service, method, params, context, ttl, None, encrypted)

            return send_command
        request = api.request

        async def send_request(params: dict[str, Any], cid: str) -> Any:
            return await request(service, method, params, context, ttl, None, True, encrypted, cid)

        return send_request

    async def _load(self, warmup: bool) -> None:
        spec = self.spec
        self._send = self._sender()
        self._origin = time.perf_counter()
        self._wall = datetime.datetime.now(datetime.UTC)
        if warmup:
            workers = min(spec.concurrency, spec.warmup)
            await self._closed(workers, spec.warmup, None)
        elif spec.rate is None:
            await self._closed(spec.concurrency, spec.n, spec.duration)
        else:
            await self._open(spec.rate, spec.concurrency, spec.n, spec.duration)

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _closed(self, workers: int, n: int | None, duration: float | None) -> None:
        loop = asyncio.get_running_loop()
        bound = None
        if duration is not None:
            watchdog = self.spec.timeout + GRACE_S
            bound = loop.call_at(loop.time() + duration + watchdog, self._halt, "overran")
        try:
            tasks = [loop.create_task(self._worker(n, duration)) for _ in range(max(1, workers))]
            for task in tasks:
                self._track(task)
            await _all_of(tasks)
        finally:
            if bound is not None:
                bound.cancel()

    async def _worker(self, n: int | None, duration: float | None) -> None:
        """Closed model: one call at a time, for ``n`` calls shared by the workers or until
        ``duration`` is over. The hot path: a few local lookups and appends per call."""
        clock = time.perf_counter
        send, params_for = self._send, self.spec.params_for
        number, intended_, sent_, ended_ = self._number, self._intended, self._sent, self._ended
        error_, ids = self._error, self._ids
        end = None if duration is None else self._origin + duration
        while self._stop_reason is None:
            i = self._issued
            if n is not None and i >= n:
                return
            if end is not None and clock() >= end:
                return
            self._issued = i + 1
            cid = new_id()
            self._in_flight += 1
            started = clock()
            error: str | None = None
            try:
                await send(params_for(i), cid)
            except asyncio.CancelledError:
                error = CANCELLED
            except Exception as exc:
                error = error_name(exc)
            ended = clock()
            self._in_flight -= 1
            number.append(i)
            intended_.append(started)
            sent_.append(started)
            ended_.append(ended)
            error_.append(error)
            ids.append(cid if self.spec.kind == "call" else None)
            if error is not None:
                if error == CANCELLED:
                    return
                self._errors += 1

    async def _open(self, rate: float, cap: int, n: int | None, duration: float | None) -> None:
        loop = asyncio.get_running_loop()
        calls: set[asyncio.Task[None]] = set()
        bound = loop.call_at(
            loop.time() + (self.spec.bound_s() or 0.0) + GRACE_S, self._halt, "overran"
        )
        try:
            pacer = loop.create_task(self._pace(rate, cap, n, duration, calls))
            self._track(pacer)
            await _all_of([pacer])
            while calls:
                await _all_of(list(calls))
        finally:
            bound.cancel()

    async def _pace(
        self,
        rate: float,
        cap: int,
        n: int | None,
        duration: float | None,
        calls: set[asyncio.Task[None]],
    ) -> None:
        """Open model: call i is due at origin + i / rate, sent then (or as soon as the
        generator can: it counts how late); at most ``cap`` in flight."""
        loop = asyncio.get_running_loop()
        clock = time.perf_counter
        interval = 1.0 / rate
        origin = self._origin
        end = None if duration is None else origin + duration
        i = 0
        while self._stop_reason is None:
            if n is not None and i >= n:
                return
            due = origin + i * interval
            if end is not None and due >= end:
                return
            now = clock()
            if end is not None and now >= end:  # behind at the end: what is left is unsent
                self._unsent = int((end - due) / interval) + 1
                return
            if due > now + 0.0005:
                await asyncio.sleep(due - now)
                continue
            if self._in_flight >= cap:
                self._cap_waits += 1
                self._slot = loop.create_future()
                await self._slot
                continue
            self._in_flight += 1
            task = loop.create_task(self._open_call(i, due))
            calls.add(task)
            task.add_done_callback(calls.discard)
            self._track(task)
            i += 1

    async def _open_call(self, i: int, due: float) -> None:
        clock = time.perf_counter
        sent = clock()
        if sent - due > LATE_S:
            self._late += 1
        cid = new_id()
        error: str | None = None
        try:
            await self._send(self.spec.params_for(i), cid)
        except asyncio.CancelledError:
            error = CANCELLED
        except Exception as exc:
            error = error_name(exc)
        ended = clock()
        self._in_flight -= 1
        slot = self._slot
        if slot is not None and not slot.done():
            slot.set_result(None)
        self._number.append(i)
        self._intended.append(due)
        self._sent.append(sent)
        self._ended.append(ended)
        self._error.append(error)
        self._ids.append(cid if self.spec.kind == "call" else None)
        if error is not None and error != CANCELLED:
            self._errors += 1


async def _all_of(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Wait for every task; a cancelled one is no failure (stop() cancels them), another
    exception is raised."""
    if not tasks:
        return
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


class Benches:
    """The Lab's record of its bench runs, side by side, and the latency splitters (taps)."""

    def __init__(self, running_taps: Callable[[], Sequence[LatencySplitter]] = list) -> None:
        self._runs: list[BenchRun] = []
        self.splitters: list[LatencySplitter] = []  # added by hand
        self._running_taps = running_taps
        self._lock = threading.Lock()

    def add(self, run: BenchRun) -> None:
        with self._lock:
            if run not in self._runs:
                self._runs.append(run)

    def runs(self) -> list[BenchRun]:
        with self._lock:
            return list(self._runs)

    def splitters_now(self) -> list[LatencySplitter]:
        return [*self._running_taps(), *self.splitters]

    def frame(self) -> pd.DataFrame:
        """Every run's summary, one row each, labelled (a running one as measured so far)."""
        rows = [run.partial().summary() for run in self.runs()]
        if not rows:
            return pd.DataFrame(columns=["label", "target", "state", "count", "p50_ms", "p99_ms"])
        return pd.DataFrame(rows).reset_index(drop=True)
