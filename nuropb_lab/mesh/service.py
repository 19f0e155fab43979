"""Service execution: run a decoded request, command or event against a served object.

Pure of I/O: the result is an :class:`Outcome` (how to acknowledge, what to answer, which
events to publish after); the API layer sends it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
import logging
from collections.abc import Callable
from typing import Any, Literal

from .decorators import MethodMarks, NuropbContextManager
from .describe import DESCRIBE_METHOD, describe_object, public_methods
from .errors import (
    NuropbAuthenticationError,
    NuropbAuthorizationError,
    NuropbCallAgain,
    NuropbCallAgainReject,
    NuropbHandlingError,
    NuropbSuccess,
    NuropbValidationError,
    error_dict,
    lab_error,
)

__all__ = [
    "Ack",
    "Outcome",
    "ServiceExecutor",
    "current_trace_id",
    "event_body",
    "response_body",
]

log = logging.getLogger(__name__)

Ack = Literal["ack", "nack", "reject"]

# The trace id of the message a served method is running for (each message is handled in a
# context of its own), so that the calls the method makes can carry it on.
_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "nuropb_trace_id", default=None
)


def current_trace_id() -> str | None:
    """In a served method: the trace id of the request, command or event it runs for."""
    return _trace_id.get()


@dataclasses.dataclass(slots=True)
class Outcome:
    ack: Ack
    result: Any = None
    error: dict[str, Any] | None = None
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: False when there is nothing to answer (commands, events, a call-again requeue)
    respond: bool = True


def response_body(
    correlation_id: str,
    context: Any,
    trace_id: str | None,
    reply_to: str,
    result: Any = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "tag": "response",
        "correlation_id": correlation_id,
        "context": context if isinstance(context, dict) else {},
        "trace_id": trace_id,
        "result": result,
        "error": error,
        "warning": None,
        "reply_to": reply_to,
    }


def event_body(
    topic: str,
    event: Any,
    context: dict[str, Any],
    trace_id: str | None,
    correlation_id: str,
    target: list[Any] | None = None,
) -> dict[str, Any]:
    return {
        "tag": "event",
        "topic": topic,
        "event": event,
        "context": context,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "target": target,
    }


class ServiceExecutor:
    """Calls the published methods of ``instance`` with nuropb's semantics, minus its defects.

    What may be called is fixed here, when the object is served: exactly the methods its
    describe lists. nuropb 0.1.8 runs any public callable attribute, methods hidden with
    ``hide_method=True`` and stored callables (a ``functools.partial``, a class) included."""

    def __init__(
        self,
        instance: object,
        service_name: str,
        public_key_pem: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.instance = instance
        self.service_name = service_name
        self._public_key_pem = public_key_pem
        self._methods = {name: (method, marks) for name, method, marks in public_methods(instance)}
        self._description: dict[str, Any] | None = None

    @property
    def encrypted_methods(self) -> bool:
        return any(marks.requires_encryption for _, marks in self._methods.values())

    def describe(self) -> dict[str, Any]:
        # built once, on the first ask: the key is known by then
        if self._description is None:
            self._description = describe_object(
                self.instance, self.service_name, self._public_key_pem(), self._methods
            )
        return self._description

    def _lookup(self, name: str) -> tuple[Any, MethodMarks]:
        found = self._methods.get(name)
        if found is None:
            raise NuropbHandlingError(f"Unknown method {name}")
        return found

    def requires_encryption(self, name: str) -> bool:
        found = self._methods.get(name)
        return found is not None and found[1].requires_encryption

    async def execute(
        self,
        nuropb_type: str,
        body: dict[str, Any],
        encrypted: bool,
        redelivered: bool,
    ) -> Outcome:
        """Run one service message; never raises (but lets cancellation through)."""
        is_request = nuropb_type == "request"
        trace_id = body.get("trace_id")
        token = _trace_id.set(trace_id if isinstance(trace_id, str) else None)
        try:
            if nuropb_type == "event":
                await self._handle_event(body)
                return Outcome("ack", respond=False)
            result, ctx = await self._call(body, encrypted)
        except Exception as raised:
            # lab_error: a served object written for nuropb raises nuropb's own classes
            return self._outcome_of(lab_error(raised), body, is_request, redelivered)
        finally:
            _trace_id.reset(token)
        events = ctx.events if ctx is not None else []
        return Outcome("ack", result=result, events=events, respond=is_request)

    def _outcome_of(
        self, exc: BaseException, body: dict[str, Any], is_request: bool, redelivered: bool
    ) -> Outcome:
        """How a message whose handling raised ``exc`` ends (nuropb's semantics)."""
        if isinstance(exc, NuropbCallAgain):
            if redelivered:
                reject = NuropbCallAgainReject(
                    f"call again refused: message already redelivered ({exc})"
                )
                return Outcome("reject", error=reject.to_dict(), respond=is_request)
            return Outcome("nack", respond=False)
        if isinstance(exc, NuropbSuccess):
            return Outcome("ack", result=exc.result, events=list(exc.events), respond=is_request)
        if not isinstance(exc, (NuropbHandlingError, NuropbAuthorizationError)):
            log.debug("%s.%s failed", self.service_name, body.get("method"), exc_info=exc)
        return Outcome("reject", error=error_dict(exc), respond=is_request)

    async def _call(
        self, body: dict[str, Any], encrypted: bool
    ) -> tuple[Any, NuropbContextManager | None]:
        name: str = body["method"]
        params: dict[str, Any] = body["params"]
        if name == DESCRIBE_METHOD:
            return self.describe(), None
        method, marks = self._lookup(name)
        if marks.requires_encryption and not encrypted:
            raise NuropbAuthorizationError(
                f"method {name} requires encryption; plaintext call refused"
            )
        context = body.get("context") or {}
        claims = await self._authorize(name, marks, context) if marks.authorize_func else None
        ctx: NuropbContextManager | None = None
        args: tuple[Any, ...] = ()
        if marks.takes_context:
            ctx = NuropbContextManager(context)
            if claims is not None:
                ctx.user_claims = claims
                ctx._authorized = True
            args = (ctx,)
        try:
            result = method(*args, **params)
        except TypeError as exc:
            _check_binding(method, name, args, params)
            raise exc
        if inspect.isawaitable(result):
            result = await result
        return result, ctx

    @staticmethod
    async def _authorize(name: str, marks: MethodMarks, context: dict[str, Any]) -> Any:
        assert marks.authorize_func is not None
        token = context.get(marks.token_key)
        if not token:
            raise NuropbAuthenticationError(f"{name} needs a token in context[{marks.token_key!r}]")
        try:
            claims = marks.authorize_func(token)
            if inspect.isawaitable(claims):
                claims = await claims
        except Exception as exc:
            refused = lab_error(exc)
            if isinstance(refused, (NuropbAuthenticationError, NuropbAuthorizationError)):
                raise refused from None
            raise NuropbAuthorizationError(f"token for {name} was not accepted: {exc}") from exc
        if not claims:
            raise NuropbAuthorizationError(f"token for {name} was not accepted")
        return claims

    async def _handle_event(self, body: dict[str, Any]) -> None:
        handler = getattr(self.instance, "_handle_event_", None)
        if handler is None or not callable(handler):
            raise NuropbHandlingError(
                f"{self.service_name} has no _handle_event_ for {body['topic']!r}"
            )
        result = handler(
            body["topic"], body.get("event"), body.get("target"), body.get("context") or {}
        )
        if inspect.isawaitable(result):
            await result


def _check_binding(method: Any, name: str, args: tuple[Any, ...], params: dict[str, Any]) -> None:
    """Turn a TypeError from a call whose arguments do not fit into a validation error."""
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **params)
    except TypeError as exc:
        raise NuropbValidationError(f"invalid parameters for {name}: {exc}") from None
