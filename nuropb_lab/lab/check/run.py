"""``lab.check``: contract checks of a live service, generated from its ``nuropb_describe``.

A :class:`CheckRun` describes the service (``prepare``: nothing else is sent, and ``plan``
says which methods it will call), then explores each method in a worker thread of its own
(probe.py: Hypothesis, every input a real call), ``concurrency`` methods at a time. Calls go
through the connection's own API on the Lab's loop, encrypted as the method requires (the
API's path, with the key it holds for the service). Every wait is bounded: each call by
``timeout``, the run by ``max_time``; ``stop()``, Ctrl-C in ``wait()`` and the time limit end
it keeping what was found. ``seed`` repeats a run (the seed of a run is on its result).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime
import math
import random
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

from ...mesh.api import RMQAPI
from ...mesh.errors import NuropbException, NuropbNotDeliveredError, error_name
from ...mesh.limits import ERROR_BYTES, clip_text
from ..errors import CheckError, ParamError
from ..params import method_spec
from ..progress import Progress, ProgressRun, window_stats
from ..runner import LoopRunner
from .findings import CheckResult
from .outcome import Answer, ask
from .probe import Abort, MethodProbe

__all__ = ["CheckError", "CheckRun", "CheckSpec"]

TICK_S: Final = 0.25  # progress published this often
WAIT_SLICE: Final = 0.1  # a worker looks for a stop this often while its call is out
GRACE_S: Final = 5.0  # beyond a call's timeout: for the loop to hand back its answer
MAX_EXAMPLES: Final = 100_000
MAX_CONCURRENCY: Final = 64
MAX_TIME: Final = 86_400.0


def _number(name: str, value: Any, low: float, high: float, whole: bool = False) -> Any:
    kind = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or math.isnan(value):
        raise CheckError(f"{name} must be a number from {low:g} to {high:,g}, got {value!r}")
    if not low <= value <= high:
        raise CheckError(f"{name} must be from {low:g} to {high:,g}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    """A check as asked, checked (``CheckSpec.make`` raises CheckError in one line)."""

    target: str
    methods: tuple[str, ...] | None
    max_examples: int
    seed: int
    timeout: float
    concurrency: int
    max_time: float
    context: dict[str, Any]

    @classmethod
    def make(
        cls,
        target: str,
        *,
        methods: Sequence[str] | None = None,
        max_examples: int = 100,
        seed: int | None = None,
        timeout: float = 5.0,
        concurrency: int = 4,
        max_time: float = 300.0,
        context: dict[str, Any] | None = None,
    ) -> CheckSpec:
        """``target``: SERVICE or SERVICE.METHOD; ``methods`` (of SERVICE) instead of all;
        ``max_examples`` inputs that fit per method and as many that do not; ``seed`` (None:
        a new one, kept on the result); each call waits at most ``timeout`` s; ``concurrency``
        methods explored at a time; the run ends after ``max_time`` s; ``context`` goes with
        every call (a token, for methods that authorize)."""
        if not isinstance(target, str) or not target or target.startswith("."):
            raise CheckError(f"target must be SERVICE or SERVICE.METHOD, got {target!r}")
        if methods is not None and (
            isinstance(methods, str) or not all(isinstance(m, str) and m for m in methods)
        ):
            raise CheckError(f"methods must be a list of method names, got {methods!r}")
        if context is not None and not isinstance(context, dict):
            raise CheckError(f"context must be a dict, not {type(context).__name__}")
        if seed is None:
            seed = random.SystemRandom().randrange(2**32)
        return cls(
            target=target,
            methods=None if methods is None else tuple(dict.fromkeys(methods)),
            max_examples=_number("max_examples", max_examples, 1, MAX_EXAMPLES, whole=True),
            seed=_number("seed", seed, 0, 2**64 - 1, whole=True),
            timeout=float(_number("timeout", timeout, 0.001, MAX_TIME)),
            concurrency=_number("concurrency", concurrency, 1, MAX_CONCURRENCY, whole=True),
            max_time=float(_number("max_time", max_time, 0.001, MAX_TIME)),
            context=dict(context or {}),
        )


class CheckRun(ProgressRun[CheckResult]):
    """One check: ``prepare()`` (describe; ``plan``), then ``start()`` / ``wait()`` /
    ``execute()``; ``stop()`` from any thread; ``result`` once it ended, ``partial()``
    meanwhile; ``widget()``: the progress view a bench has."""

    def __init__(
        self, spec: CheckSpec, api: RMQAPI, runner: LoopRunner, describe_timeout: float
    ) -> None:
        super().__init__(
            spec.target,
            runner,
            Progress("preparing", 0, None, 0.0, None, 0.0, None, None, 0, 0, False),
            spec.timeout + GRACE_S,  # a call out when it stops ends by its timeout
        )
        self.spec = spec
        self.api = api
        self.describe_timeout = describe_timeout
        self.service = spec.target
        self.plan: list[str] = []  # the methods it calls, once prepared
        self.specs: dict[str, dict[str, Any]] = {}
        self.result: CheckResult | None = None
        self.notes: list[str] = []
        self._probes: list[MethodProbe] = []
        self._stopped = threading.Event()
        self._stop_reason: str | None = None
        self._state = "preparing"
        self._message = ""
        self._tally = threading.Lock()  # the workers' calls, read by the ticker
        self._started: list[float] = []
        self._ended: list[float] = []
        self._in_flight = 0
        self._origin = time.perf_counter()
        self._wall = datetime.datetime.now(datetime.UTC)

    def __repr__(self) -> str:
        p = self.progress
        return f"<CheckRun {self.service} {p.state}: {p.done:,} examples, {p.errors} findings>"

    @property
    def planned(self) -> int:
        """Inputs planned: per method, fitting and not fitting ones, a plaintext one when it
        requires encryption (shrinking a finding sends more)."""
        encrypted = sum(bool(s.get("requires_encryption")) for s in self.specs.values())
        return 2 * self.spec.max_examples * len(self.plan) + encrypted

    def announcement(self) -> str:
        """What it will do, in one line (said before it starts)."""
        methods = ", ".join(self.plan)
        return (
            f"checking {self.service}: calls {methods} for real, up to"
            f" {self.spec.max_examples:,} inputs that fit and {self.spec.max_examples:,} that"
            f" do not per method (seed {self.spec.seed})"
        )

    # --- preparing ---------------------------------------------------------------------------

    async def _describe(self, service: str) -> dict[str, Any]:
        try:
            return await self.api.describe_service(
                service, refresh=True, ttl=int(self.describe_timeout * 1000)
            )
        except NuropbNotDeliveredError:
            raise
        except NuropbException as exc:
            raise CheckError(
                f"{service} did not describe itself ({error_name(exc)}: {exc});"
                " a check is made from its description"
            ) from None

    async def prepare(self) -> CheckRun:
        """Describe the service and settle ``plan`` (nothing else is sent); bad targets and
        methods are one line."""
        if self.plan:
            return self
        spec = self.spec
        service, methods = spec.target, spec.methods
        try:
            if methods is None and "." in service:  # SERVICE.METHOD, or a dotted service
                head, _, method = service.rpartition(".")
                try:
                    description = await self._describe(head)
                    service, methods = head, (method,)
                except NuropbNotDeliveredError:
                    description = await self._describe(service)
            else:
                description = await self._describe(service)
        except NuropbNotDeliveredError as exc:
            raise CheckError(f"cannot check {spec.target}: {exc}") from None
        described = description.get("methods")
        if not isinstance(described, dict) or not described:
            raise CheckError(f"{service} describes no methods to check")
        names = list(methods) if methods is not None else sorted(described)
        try:
            self.specs = {name: method_spec(description, service, name) for name in names}
        except ParamError as exc:
            raise CheckError(str(exc)) from None
        self.service = service
        self.label = service
        self.plan = names
        return self

    # --- the run -------------------------------------------------------------------------------

    async def execute(self) -> CheckResult:
        """Prepare, explore every method, and return the result (also when stopped)."""
        loop = asyncio.get_running_loop()
        ticker = loop.create_task(self._ticker())
        timer: asyncio.TimerHandle | None = None
        pool: concurrent.futures.ThreadPoolExecutor | None = None
        try:
            await self.prepare()
            self._origin = time.perf_counter()
            self._wall = datetime.datetime.now(datetime.UTC)
            self._set_state("running")
            timer = loop.call_later(self.spec.max_time, self.stop, "overran")
            self._probes = [
                MethodProbe(
                    name,
                    self.specs[name],
                    self._send,
                    max_examples=self.spec.max_examples,
                    seed=self.spec.seed,
                )
                for name in self.plan
            ]
            pool = concurrent.futures.ThreadPoolExecutor(
                min(self.spec.concurrency, len(self._probes)), "nuropb-lab-check"
            )
            jobs = [loop.run_in_executor(pool, self._explore, p) for p in self._probes]
            try:
                await asyncio.gather(*jobs)
            except asyncio.CancelledError:
                self.stop("interrupted")  # the workers see it within WAIT_SLICE
                await asyncio.wait(jobs, timeout=self.grace_s)
                self._finish()
                raise
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._message = clip_text(f"{error_name(exc)}: {exc}", ERROR_BYTES)
                self._finish("failed")
            raise
        finally:
            ticker.cancel()
            if timer is not None:
                timer.cancel()
            if pool is not None:
                pool.shutdown(wait=False)  # its threads have ended (or end within a slice)
        return self._finish()

    def _explore(self, probe: MethodProbe) -> None:
        """One method, in a worker thread."""
        if self._stopped.is_set():
            return
        with self._tally:
            self._message = clip_text(f"exploring {probe.method}")
        try:
            probe.run()
        except Abort as abort:
            if not self._stopped.is_set():  # the service is gone, the connection is down
                self.notes.append(clip_text(f"stopped at {probe.method}: {abort.reason}"))
                self.stop("failed")

    def _send(self, method: str, params: dict[str, Any], encrypted: bool) -> Answer:
        """One call from a worker thread, on the Lab loop; raises Abort once the run stops."""
        if self._stopped.is_set():
            raise Abort(self._stop_reason or "stopped")
        timeout = self.spec.timeout
        coro = ask(
            self.api,
            self.service,
            method,
            params,
            encrypted=encrypted,
            timeout=timeout,
            context=self.spec.context,
        )
        future = asyncio.run_coroutine_threadsafe(coro, self.runner.loop)
        started = time.perf_counter()
        with self._tally:
            self._in_flight += 1
        try:
            while True:
                try:
                    answer = future.result(WAIT_SLICE)
                    break
                except concurrent.futures.TimeoutError:
                    if self._stopped.is_set():
                        future.cancel()
                        raise Abort(self._stop_reason or "stopped") from None
                    if time.perf_counter() - started > timeout + GRACE_S:
                        future.cancel()  # the API ends a call by its ttl; this is a backstop
                        raise Abort("the Lab's loop did not hand back an answer") from None
        finally:
            with self._tally:
                self._in_flight -= 1
        with self._tally:
            self._started.append(started)
            self._ended.append(time.perf_counter())
        return answer

    def stop(self, reason: str = "stopped") -> None:
        """End the run now (from any thread): no more calls, the one out of each worker is
        given up; the findings so far stay, shrunk as far as they got."""
        if not self._stopped.is_set():
            self._stop_reason = reason
            self._stopped.set()

    # --- progress and result -------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self._state = state
        self._publish()

    def _publish(self) -> None:
        now = time.perf_counter()
        with self._tally:
            rate, p50, p99 = window_stats(self._ended, self._started, now, self._origin)
            done, in_flight, message = len(self._ended), self._in_flight, self._message
        self._notify(
            Progress(
                state=self._state,
                done=done,
                total=self.planned or None,
                elapsed_s=now - self._origin if self._state != "preparing" else 0.0,
                duration_s=None,
                rate=rate,
                p50_ms=p50,
                p99_ms=p99,
                errors=sum(len(p.findings) for p in self._probes),
                in_flight=in_flight,
                behind=False,
                message=message if self._state == "running" else self._message,
                unit="examples",
                flagged="findings",
            )
        )

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if self.api.transport.state == "closed":
                self.stop("disconnected")
            self._publish()

    def _finish(self, state: str | None = None) -> CheckResult:
        if self.result is None:
            self._state = state or self._stop_reason or "done"
            if self._state != "done":
                self._message = self._message or f"{self._state}: what was found is kept"
            self.result = self.partial()
            self._publish()
        return self.result

    def partial(self) -> CheckResult:
        """What was found so far (the result, once the run ended)."""
        if self.result is not None:
            return self.result
        return CheckResult(
            service=self.service,
            plan=list(self.plan),
            specs=dict(self.specs),
            findings=[f for p in self._probes for f in p.findings],
            reports=[p.report for p in self._probes],
            seed=self.spec.seed,
            timeout=self.spec.timeout,
            state=self._state,
            started=self._wall,
            elapsed_s=time.perf_counter() - self._origin,
            notes=list(self.notes),
        )
