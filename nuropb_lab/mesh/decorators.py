"""Service method decorators and the request context, with nuropb's names and attributes.

The marker attributes are the ones nuropb sets, so objects decorated for nuropb describe the
same here, and these decorators describe the same under nuropb.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, overload

from .nuropb_peer import also

__all__ = [
    "AuthorizeFunc",
    "MethodMarks",
    "NuropbContextManager",
    "method_marks",
    "nuropb_context",
    "publish_to_mesh",
]

F = TypeVar("F", bound=Callable[..., Any])
AuthorizeFunc = Callable[[str], Any]


class NuropbContextManager(*also("contexts.context_manager", "NuropbContextManager")):  # type: ignore[misc]
    """The context a ``@nuropb_context`` method receives: request context, user claims, events.

    Usable as a (sync or async) context manager: events added inside a ``with`` block that
    raises are discarded. Events are published after the method succeeds. With nuropb
    installed it is also nuropb's class, which nuropb's own ``@nuropb_context`` demands.
    """

    def __init__(self, context: dict[str, Any], suppress_exceptions: bool = False) -> None:
        if context is None:
            raise TypeError("context cannot be None")
        self._context = context
        self._suppress_exceptions = suppress_exceptions
        self._user_claims: dict[str, Any] | None = None
        self._authorized = False
        self._events: list[dict[str, Any]] = []
        self._error: dict[str, Any] | None = None
        self._entered = False
        self._done = False

    @property
    def context(self) -> dict[str, Any]:
        return self._context

    @property
    def user_claims(self) -> dict[str, Any] | None:
        return self._user_claims

    @user_claims.setter
    def user_claims(self, claims: dict[str, Any] | None) -> None:
        # the same claims again is no change: nuropb's own @nuropb_context authorizes again
        # the token the lab's executor has already accepted
        if self._user_claims is not None and claims != self._user_claims:
            raise ValueError("user_claims can only be set once")
        self._user_claims = claims

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._events

    @property
    def error(self) -> dict[str, Any] | None:
        return self._error

    def add_event(self, event: dict[str, Any]) -> None:
        """Queue an event (``topic``, ``event``, optional ``context``/``target``) to publish."""
        if not isinstance(event, dict) or not isinstance(event.get("topic"), str):
            raise ValueError("an event is a dict with a str 'topic'")
        self._events.append(event)

    def __enter__(self) -> NuropbContextManager:
        if self._done or self._entered:
            raise RuntimeError("context manager can be entered once")
        self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool:
        self._done = True
        if exc_type is not None:
            self._error = {"error": exc_type.__name__, "description": str(exc_value)}
            self._events = []
        return self._suppress_exceptions and exc_type is not None

    async def __aenter__(self) -> NuropbContextManager:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc_value, exc_tb)


class MethodMarks:
    """What the decorators recorded on a method (defaults for an undecorated one)."""

    __slots__ = (
        "authorize_func",
        "context_param",
        "description",
        "hidden",
        "requires_encryption",
        "takes_context",
        "token_key",
    )

    def __init__(self, method: Any) -> None:
        self.hidden = bool(getattr(method, "__nuropb_mesh_hidden__", False))
        self.authorize_func: AuthorizeFunc | None = getattr(
            method, "__nuropb_authorise_func__", None
        )
        self.token_key: str = (
            getattr(method, "__nuropb_context_token_key__", None) or "Authorization"
        )
        self.requires_encryption = bool(getattr(method, "__nuropb_requires_encryption__", False))
        self.description: str | None = getattr(method, "__nuropb_description__", None)
        self.takes_context = bool(getattr(method, "__nuropb_context__", False))
        self.context_param: str = getattr(method, "__nuropb_context_arg__", "ctx")


def method_marks(method: Any) -> MethodMarks:
    return MethodMarks(method)


@overload
def publish_to_mesh(original_method: F) -> F: ...
@overload
def publish_to_mesh(
    original_method: None = None,
    *,
    hide_method: bool | None = False,
    authorize_func: AuthorizeFunc | None = None,
    context_token_key: str | None = "Authorization",
    requires_encryption: bool | None = False,
    description: str | None = None,
) -> Callable[[F], F]: ...


def publish_to_mesh(
    original_method: Callable[..., Any] | None = None,
    *,
    hide_method: bool | None = False,
    authorize_func: AuthorizeFunc | None = None,
    context_token_key: str | None = "Authorization",
    requires_encryption: bool | None = False,
    description: str | None = None,
) -> Any:
    """Mark how a method is published on the mesh.

    ``authorize_func(token)`` gets ``context[context_token_key]`` and returns the user's
    claims; no token is an authentication error, no claims an authorization error.
    ``requires_encryption`` refuses plaintext calls.
    """
    if authorize_func is not None and not callable(authorize_func):
        raise TypeError("authorize_func must be callable")

    def decorator(method: F) -> F:
        # Mark the function itself (no wrapper), so signature and async-ness stay visible.
        method.__nuropb_mesh_hidden__ = bool(hide_method)  # type: ignore[attr-defined]
        method.__nuropb_context_token_key__ = context_token_key or "Authorization"  # type: ignore[attr-defined]
        method.__nuropb_authorise_func__ = authorize_func  # type: ignore[attr-defined]
        method.__nuropb_requires_encryption__ = bool(requires_encryption)  # type: ignore[attr-defined]
        if description:
            method.__nuropb_description__ = description  # type: ignore[attr-defined]
        return method

    return decorator(original_method) if original_method is not None else decorator


@overload
def nuropb_context(original_method: F) -> F: ...
@overload
def nuropb_context(
    original_method: None = None,
    *,
    context_parameter: str = "ctx",
    suppress_exceptions: bool = False,
) -> Callable[[F], F]: ...


def nuropb_context(
    original_method: Callable[..., Any] | None = None,
    *,
    context_parameter: str = "ctx",
    suppress_exceptions: bool = False,
) -> Any:
    """Give a method the request context as its first argument after ``self``.

    Called directly with a plain dict, the dict becomes a NuropbContextManager and the
    method's authorize function (if any) runs on it, as on the mesh.
    """
    context_parameter = context_parameter or "ctx"

    def decorator(method: F) -> F:
        if context_parameter not in inspect.signature(method).parameters:
            raise TypeError(f"method {method.__name__} has no {context_parameter!r} parameter")

        def prepare(args: tuple[Any, ...]) -> list[Any]:
            if len(args) < 2 or not isinstance(args[1], (NuropbContextManager, dict)):
                raise TypeError(
                    f"{method.__name__} expects {context_parameter}: NuropbContextManager or dict"
                    " as its first argument"
                )
            call_args = list(args)
            ctx = call_args[1]
            if not isinstance(ctx, NuropbContextManager):
                ctx = NuropbContextManager(ctx, suppress_exceptions=suppress_exceptions)
                call_args[1] = ctx
            authorize = getattr(wrapper, "__nuropb_authorise_func__", None)
            if authorize is not None and not ctx._authorized:
                token_key = getattr(wrapper, "__nuropb_context_token_key__", "Authorization")
                ctx.user_claims = authorize(ctx.context[token_key])
                ctx._authorized = True
            return call_args

        wrapper: Any
        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await method(*prepare(args), **kwargs)

            wrapper = async_wrapper
        else:

            @functools.wraps(method)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                return method(*prepare(args), **kwargs)

            wrapper = sync_wrapper
        wrapper.__nuropb_context__ = True
        wrapper.__nuropb_context_arg__ = context_parameter
        return wrapper  # type: ignore[no-any-return]

    return decorator(original_method) if original_method is not None else decorator
