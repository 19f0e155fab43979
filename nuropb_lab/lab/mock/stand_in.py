"""The object a mock serves, and the mock itself.

The stand-in is served as any notebook object is (an ``RMQAPI`` with ``service_instance``):
one method per method of the description, each with the description's signature (as
``__signature__``, the type names as written, so the lab's describe gives the description
back: names, types, defaults, required, encryption, docs). A call answers:

- ``handlers[method](**params)`` when given (sync or async; a method the recording lacks
  is added with the handler's own signature);
- else the recorded answer of a call with the same method and params (result or error; the
  answers of equal calls in turn, the last one again once they are used up);
- else an error naming the nearest recorded call of that method.

``delay`` (seconds) comes before every answer, and ``error_rate`` of them (drawn from
``seed``) fail with an injected error, as Toxiproxy would put between caller and callee.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final

from ...mesh.api import RMQAPI
from ...mesh.decorators import publish_to_mesh
from ...mesh.errors import NuropbException, NuropbHandlingError
from ...mesh.limits import ERROR_BYTES, TEXT_BYTES, clip_text
from ..handles import Releasable
from ..params import parameters_of
from ..runner import LoopRunner
from .recording import RecordedCall, Recording, canonical
from .start import MockOptions

__all__ = ["Mock", "RecordedError", "StandIn", "stand_in"]

SHOWN_VALUE: Final = 40  # characters of a value in the line naming the nearest call
Handler = Callable[..., Any]


class RecordedError(NuropbException):
    """A recorded error answered again, under the class name it was recorded with."""

    def __init__(self, name: str, description: str) -> None:
        super().__init__(description)
        self.name = name

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.name, "description": self.description}


class StandIn:
    """Answers from a recording (a class per mock adds its methods; see :func:`stand_in`)."""

    _service_name: str
    _version: str | None

    def __init__(self, recording: Recording, options: MockOptions) -> None:
        self.recording = recording
        self.handlers = dict(options.handlers)
        self.delay = options.delay
        self.error_rate = options.error_rate
        self.stats = {"answered": 0, "handled": 0, "unmatched": 0, "injected": 0}
        self._random = random.Random(options.seed)
        self._answers: dict[tuple[str, str], list[RecordedCall]] = {}
        self._next: dict[tuple[str, str], int] = {}
        for call in recording.calls:
            self._answers.setdefault((call.method, canonical(call.params)), []).append(call)

    async def _answer(self, method: str, params: dict[str, Any]) -> Any:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error_rate and self._random.random() < self.error_rate:
            self.stats["injected"] += 1
            raise NuropbException(
                f"mock of {self._service_name}: injected failure (error_rate {self.error_rate:g})"
            )
        handler = self.handlers.get(method)
        if handler is not None:
            self.stats["handled"] += 1
            result = handler(**params)
            return await result if inspect.isawaitable(result) else result
        key = (method, canonical(params))
        answers = self._answers.get(key)
        if not answers:
            self.stats["unmatched"] += 1
            raise NuropbHandlingError(self._unmatched(method, params))
        turn = self._next.get(key, 0)
        self._next[key] = min(turn + 1, len(answers) - 1)
        self.stats["answered"] += 1
        call = answers[turn]
        if call.error is not None:
            raise RecordedError(*call.error)
        return call.result

    def _unmatched(self, method: str, params: dict[str, Any]) -> str:
        """One line: no recorded call like this one, and the nearest that was recorded."""
        mine = [c for c in self.recording.calls if c.method == method]
        asked = f"{self._service_name}.{_call_text(method, params)}"
        if not mine:
            return clip_text(f"mock: no recorded call of {asked}", ERROR_BYTES)

        def distance(call: RecordedCall) -> int:
            """Names one call has and the other not, and values that differ."""
            names = set(call.params) | set(params)
            return sum(
                (n in call.params) != (n in params) or call.params.get(n) != params.get(n)
                for n in names
            )

        nearest = min(mine, key=distance)  # the first of equals: the earliest recorded
        return clip_text(
            f"mock: no recorded call of {asked}; the nearest recorded:"
            f" {_call_text(method, nearest.params)}",
            ERROR_BYTES,
        )


def _call_text(method: str, params: Mapping[str, Any]) -> str:
    def shown(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= SHOWN_VALUE else text[: SHOWN_VALUE - 1] + "…"

    args = ", ".join(f"{name}={shown(value)}" for name, value in params.items())
    return f"{clip_text(method)}({args})"


_SELF = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _described_signature(spec: Mapping[str, Any]) -> inspect.Signature:
    """A method's signature from its description: names as keywords, type names as written
    (a ``__signature__`` is never evaluated), defaults, and its return type."""
    pairs, required = parameters_of(spec)
    parameters = [_SELF]
    for name, pspec in pairs:
        if not name.isidentifier() or name == "self":
            continue  # not a name a signature can hold: the stand-in takes it all the same
        type_name = str(pspec.get("type") or "") or inspect.Parameter.empty
        default = inspect.Parameter.empty if name in required else pspec.get("default")
        keyword = inspect.Parameter.KEYWORD_ONLY  # no order to keep between defaults
        parameters.append(inspect.Parameter(name, keyword, default=default, annotation=type_name))
    returns = spec.get("returns")
    returned = returns.get("type") if isinstance(returns, Mapping) else None
    return inspect.Signature(parameters, return_annotation=returned or inspect.Signature.empty)


def _handler_signature(handler: Handler) -> inspect.Signature:
    signature = inspect.signature(handler)
    return signature.replace(parameters=[_SELF, *signature.parameters.values()])


def _method(
    name: str, signature: inspect.Signature, description: str | None, encrypted: bool
) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def method(self: StandIn, **params: Any) -> Any:
        return await self._answer(name, params)

    method.__name__ = method.__qualname__ = name
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__doc__ = description
    return publish_to_mesh(requires_encryption=encrypted)(method)


def stand_in(service: str, recording: Recording, options: MockOptions) -> StandIn:
    """The object that stands in for ``service``: the recording's description (recorded or
    inferred) as its methods, the handlers added or in place of recorded answers."""
    handlers = options.handlers
    description = recording.described
    described = description.get("methods") or {}
    namespace: dict[str, Any] = {
        "_service_name": service,
        "_version": description.get("service_version"),
        "__doc__": description.get("description"),
    }
    for name, spec in described.items():
        if not isinstance(spec, Mapping) or not str(name).isidentifier() or name.startswith("_"):
            continue
        doc = spec.get("description")
        namespace[name] = _method(
            name,
            _described_signature(spec),
            doc if isinstance(doc, str) else None,
            bool(spec.get("requires_encryption")),
        )
    for name, handler in handlers.items():
        if name not in namespace:  # a method the recording lacks: the handler describes it
            namespace[name] = _method(name, _handler_signature(handler), handler.__doc__, False)
    kind = type(f"StandIn[{clip_text(service, TEXT_BYTES)}]", (StandIn,), namespace)
    made: StandIn = kind(recording, options)
    return made


class Mock(Releasable):
    """A stand-in served under a service's name: ``.stop()`` (or ``await .astop()``) takes it
    off the mesh (its queue stays, for the real service); ``.stats`` (answered from the
    recording, handled, unmatched, injected failures), ``.description``, ``.notes``."""

    def __init__(
        self,
        service: str,
        served: StandIn,
        api: RMQAPI,
        notes: list[str],
        *,
        runner: LoopRunner,
        release: Callable[[Mock], Coroutine[Any, Any, None]],
    ) -> None:
        super().__init__(release, runner)
        self.service = service
        self.served = served
        self.api = api
        self.notes = notes

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.served.stats)

    @property
    def description(self) -> dict[str, Any]:
        return self.served.recording.described

    def __repr__(self) -> str:
        s = self.stats
        state = "stopped" if self.stopped else "serving"
        recording = self.served.recording
        return (
            f"<Mock {self.service} ({state}): {len(recording.calls)} recorded calls,"
            f" description {'inferred' if recording.inferred else 'recorded'};"
            f" answered {s['answered']}, handled {s['handled']}, unmatched {s['unmatched']},"
            f" injected {s['injected']}>"
        )
