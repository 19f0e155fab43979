"""One method explored with Hypothesis, in a worker thread of its own.

Hypothesis's ``given`` is synchronous: the property runs in the worker thread and sends each
input through ``send``, which hands the call to the Lab's loop and waits for its answer (no
event loop of its own, none nested). A problem raises a failure of its own class per distinct
bug (its key: the check and the error's class), so Hypothesis shrinks each one apart, every
try a real call to the live service. Every failing input is kept as it happens, the smallest
per bug (by its JSON), so what a stop, a Ctrl-C or a run out of time cuts short still has its
findings, shrunk as far as they got.

Per method, in turn: one plaintext input when the method requires encryption (and more while
shrinking, if it was answered), then ``max_examples`` inputs that fit its description, then
``max_examples`` that do not. A method that timed out ``max_timeouts`` times is left.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Final

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as seeded
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from ...mesh.errors import NuropbException, error_name
from .outcome import REFUSALS, Answer, Sent, judge
from .strategies import fitting, unfitting

__all__ = ["Abort", "Finding", "MethodProbe", "MethodReport", "Send"]

MAX_BUGS: Final = 20  # distinct bugs told apart in one method (the mesh names the errors)
PLAINTEXT_EXAMPLES: Final = 1

#: (method, params, encrypted) -> the answer; raises Abort when the run stops
Send = Callable[[str, dict[str, Any], bool], Answer]


class Abort(BaseException):
    """Ends an exploration at once. A BaseException: Hypothesis lets it through rather than
    shrink it as a failure."""

    def __init__(self, reason: str, whole_run: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.whole_run = whole_run


class _Failure(Exception):
    """A problem, raised for Hypothesis to shrink (a subclass per bug)."""


@dataclasses.dataclass(frozen=True)
class Finding:
    method: str
    check: str
    params: dict[str, Any]
    error: str
    encrypted: bool
    key: str


@dataclasses.dataclass
class MethodReport:
    """What was done to one method: inputs sent by kind, time, what cut it short."""

    method: str
    sent: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def examples(self) -> int:
        return sum(self.sent.values())


def _size(params: Mapping[str, Any]) -> tuple[int, str]:
    text = json.dumps(params, sort_keys=True, ensure_ascii=False, default=str)
    return len(text), text


class MethodProbe:
    """Hypothesis on one method of a described service (``run()`` in a worker thread)."""

    def __init__(
        self,
        method: str,
        spec: Mapping[str, Any],
        send: Send,
        *,
        max_examples: int,
        seed: int,
        max_timeouts: int = 3,
    ) -> None:
        self.method = method
        self.spec = spec
        self.send = send
        self.max_examples = max_examples
        self.seed = seed
        self.max_timeouts = max_timeouts
        self.needs_encryption = bool(spec.get("requires_encryption"))
        self.report = MethodReport(method)
        self._found: dict[str, Finding] = {}
        self._lock = threading.Lock()
        self._timeouts = 0
        self._refused: dict[str, int] = {}  # inputs that fit, refused, by error class
        self._classes: dict[str, type[_Failure]] = {}

    @property
    def findings(self) -> list[Finding]:
        with self._lock:
            return list(self._found.values())

    def run(self) -> None:
        """Every phase in turn; an Abort of the whole run goes through."""
        started = time.monotonic()
        phases: list[tuple[Sent, st.SearchStrategy[dict[str, Any]], int]] = []
        if self.needs_encryption:
            phases.append(("plaintext", fitting(self.spec), PLAINTEXT_EXAMPLES))
        phases.append(("fitting", fitting(self.spec), self.max_examples))
        phases.append(("unfitting", unfitting(self.spec), self.max_examples))
        try:
            for sent, strategy, examples in phases:
                self._explore(sent, strategy, examples)
        except Abort as abort:
            if abort.whole_run:
                raise
            self.report.notes.append(abort.reason)
        finally:
            self.report.seconds = time.monotonic() - started
        fits = self.report.sent.get("fitting", 0)
        if fits and sum(self._refused.values()) == fits:  # nothing got past the door
            names = ", ".join(sorted(self._refused))
            hint = " (a method that authorizes needs context=, a token)" if "Auth" in names else ""
            self.report.notes.append(f"every input that fits was refused: {names}{hint}")

    def _failure(self, key: str) -> type[_Failure]:
        cls = self._classes.get(key)
        if cls is None:
            if len(self._classes) >= MAX_BUGS:
                key = "other"
                cls = self._classes.get(key)
            if cls is None:
                cls = type("Failure", (_Failure,), {})
                self._classes[key] = cls
        return cls

    def _keep(self, finding: Finding) -> None:
        with self._lock:
            kept = self._found.get(finding.key)
            if kept is None or _size(finding.params) < _size(kept.params):
                self._found[finding.key] = finding

    def _explore(self, sent: Sent, strategy: st.SearchStrategy[dict[str, Any]], n: int) -> None:
        encrypted = self.needs_encryption and sent != "plaintext"

        def prop(params: dict[str, Any]) -> None:
            answer = self.send(self.method, params, encrypted)
            self.report.sent[sent] = self.report.sent.get(sent, 0) + 1
            refused = error_name(answer.error) if answer.error is not None else None
            if sent == "fitting" and refused in REFUSALS:
                self._refused[refused] = self._refused.get(refused, 0) + 1
            try:
                problem = judge(sent, answer, self.spec, params)
            except NuropbException as exc:  # no answer to judge: the run cannot go on
                raise Abort(f"{error_name(exc)}: {exc}") from None
            if problem is None:
                return
            self._keep(
                Finding(self.method, problem.check, params, problem.text, encrypted, problem.key)
            )
            if problem.check == "timeout":
                self._timeouts += 1
                if self._timeouts >= self.max_timeouts:
                    raise Abort(f"left after {self._timeouts} timeouts", whole_run=False)
            raise self._failure(problem.key)(problem.text)

        test = settings(
            max_examples=n,
            database=None,  # nothing written to the user's folder, nothing replayed from it
            deadline=None,  # each call is bounded by its own timeout
            phases=(Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
            print_blob=False,
            report_multiple_bugs=True,
        )(given(strategy)(prop))
        phase_seed = self.seed ^ zlib.crc32(f"{self.method}/{sent}".encode())
        try:
            seeded(phase_seed)(test)()
        except _Failure:
            pass  # the findings were kept as they happened, the smallest per bug
        except BaseExceptionGroup as group:  # several bugs (or a flaky one)
            _, rest = group.split(_Failure)
            if rest is not None:
                raise rest from None
        except HypothesisException as exc:  # e.g. no input could be made to fit
            self.report.notes.append(f"{sent}: {type(exc).__name__}: {str(exc)[:200]}")
