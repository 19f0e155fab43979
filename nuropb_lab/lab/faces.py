"""The faces of the Lab's operations, declared in the Lab's class body (session.py).

Each operation is a method of one part of the Lab (calls.py, describing.py, ...); most are
coroutines run on the Lab's loop. A face makes a method of the Lab from it:

- :func:`blocking`: run it on the Lab loop and wait (``lab.call``), at most the call's
  ``timeout`` (when it takes one, else the Lab's) plus a backstop; Ctrl-C cancels it;
- :func:`awaitable`: its async twin, awaited from any loop (``await lab.acall``);
- :func:`background`: start it and return a ``concurrent.futures.Future`` at once
  (``lab.start_call``: ``start_*`` always starts and returns a handle at once);
- :func:`delegate`: a method of a part as it is (no I/O, or a handle's own blocking rules).

The face gets its name where it is declared (``__set_name__``), and the part's docstring and
signature (``inspect.signature(lab.call)``, ``help(lab.call)``); the part is the Lab's part of
the class that defines the method, given to :class:`Composed` when the Lab is made.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import types
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from .runner import LoopRunner
from .settings import Settings

__all__ = ["Composed", "Face", "awaitable", "background", "blocking", "delegate"]

S = TypeVar("S")
P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

BACKSTOP_S = 10.0  # beyond an operation's own bound: the mesh bounds each wait itself


class Composed:
    """An object whose methods are faces of its parts' methods (see the module's doc)."""

    def __init__(self, runner: LoopRunner, settings: Settings, parts: Iterable[object]) -> None:
        self.runner = runner
        self.settings = settings
        self._parts = [self, *parts]
        self._part_of: dict[Callable[..., Any], object] = {}

    def _part_for(self, method: Callable[..., Any]) -> object:
        """The part whose class defines ``method`` (found once)."""
        part = self._part_of.get(method)
        if part is None:
            found = [p for p in self._parts if getattr(type(p), method.__name__, None) is method]
            if not found:
                raise TypeError(f"no part of {type(self).__name__} has {method.__qualname__}")
            part = self._part_of[method] = found[0]
        return part

    def _backstop(self, timeout: object) -> float:
        seconds = timeout if isinstance(timeout, (int, float)) and timeout > 0 else None
        return (seconds or self.settings.timeout) + BACKSTOP_S


class Face(Generic[P, R]):
    """A method of a :class:`Composed` object made from a part's method."""

    def __init__(
        self,
        kind: str,
        method: Callable[..., Any],
        run: Callable[[Composed, Any, dict[str, Any]], R],
        returns: Callable[[Any], Any] | None = None,
        is_async: bool = False,
    ) -> None:
        self.kind = kind  # blocking, awaitable, background or delegate
        self.method = method  # the part's
        self._run = run
        self._returns = returns  # the face's return annotation from the method's
        self._is_async = is_async
        self._function: Callable[..., Any] = method

    def __set_name__(self, owner: type, name: str) -> None:
        method, run = self.method, self._run

        def bind(lab: Composed, args: Any, kwargs: Any) -> Any:
            return method(lab._part_for(method), *args, **kwargs)

        async def async_face(lab: Composed, /, *args: Any, **kwargs: Any) -> Any:
            return await run(lab, bind(lab, args, kwargs), kwargs)  # type: ignore[misc]

        def sync_face(lab: Composed, /, *args: Any, **kwargs: Any) -> Any:
            return run(lab, bind(lab, args, kwargs), kwargs)

        face: Callable[..., Any] = async_face if self._is_async else sync_face
        signature = _signature(method)
        if self._returns is not None:
            signature = signature.replace(
                return_annotation=self._returns(signature.return_annotation)
            )
        face.__name__ = name
        face.__qualname__ = f"{owner.__qualname__}.{name}"
        face.__module__ = owner.__module__
        face.__doc__ = method.__doc__
        face.__signature__ = signature  # type: ignore[attr-defined]
        face.__annotations__ = {
            p.name: p.annotation
            for p in signature.parameters.values()
            if p.annotation is not inspect.Parameter.empty
        } | {"return": signature.return_annotation}
        self._function = face

    @overload
    def __get__(self, lab: None, owner: type | None = None) -> Callable[..., R]: ...

    @overload
    def __get__(self, lab: object, owner: type | None = None) -> Callable[P, R]: ...

    def __get__(self, lab: object | None, owner: type | None = None) -> Callable[..., R]:
        if lab is None:
            return self._function
        return types.MethodType(self._function, lab)


def _signature(method: Callable[..., Any]) -> inspect.Signature:
    """The method's signature, its annotations evaluated where they can be (they are text in
    modules with ``from __future__ import annotations``)."""
    try:
        return inspect.signature(method, eval_str=True)
    except NameError:  # a name imported for type checking only: keep the text
        return inspect.signature(method)


def _wait(lab: Composed, coro: Coroutine[Any, Any, T], kwargs: dict[str, Any]) -> T:
    return lab.runner.run(coro, lab._backstop(kwargs.get("timeout")))


async def _await(lab: Composed, coro: Coroutine[Any, Any, T], kwargs: dict[str, Any]) -> T:
    return await lab.runner.run_async(coro)


def _submit(
    lab: Composed, coro: Coroutine[Any, Any, T], kwargs: dict[str, Any]
) -> concurrent.futures.Future[T]:
    return lab.runner.submit(coro)


def _as_is(lab: Composed, value: T, kwargs: dict[str, Any]) -> T:
    return value


def _future_of(returns: Any) -> Any:
    if isinstance(returns, str):
        return f"concurrent.futures.Future[{returns}]"
    if returns is inspect.Signature.empty:
        return concurrent.futures.Future
    return concurrent.futures.Future[returns]


def blocking(method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]]) -> Face[P, T]:
    """The blocking face of a part's coroutine."""
    return Face("blocking", method, _wait)


def awaitable(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Face[P, Coroutine[Any, Any, T]]:
    """The async twin of a part's coroutine: run on the Lab loop, awaited from any loop."""
    return Face("awaitable", method, _await, is_async=True)


def background(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Face[P, concurrent.futures.Future[T]]:
    """The background face: start the coroutine on the Lab loop, return its future at once."""
    return Face("background", method, _submit, returns=_future_of)


def delegate(method: Callable[Concatenate[S, P], T]) -> Face[P, T]:
    """A part's method as it is."""
    return Face("delegate", method, _as_is, is_async=inspect.iscoroutinefunction(method))
