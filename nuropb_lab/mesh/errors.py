"""The nuropb exception classes, under the names that travel on the wire.

A remote error arrives as ``{"error": <class name>, "description": ...}``. It is raised as
that class, made also a subclass of :class:`NuropbMessageError`, because code written
against nuropb 0.1.8 catches ``NuropbMessageError`` for every remote error.

Drop-in for code written for nuropb: when the ``nuropb`` package is installed beside the lab
(it is not a dependency), each class here is also a subclass of the same-named class of
``nuropb.interface``, so ``except nuropb.interface.NuropbTimeoutError`` catches the lab's.
And :func:`lab_error` turns an exception of nuropb's classes, raised by a served object
written for nuropb (``NuropbSuccess``, ``NuropbCallAgain``, ...), into the lab's own.
"""

from __future__ import annotations

import logging
from typing import Any

from .limits import clip_text
from .nuropb_peer import also, peer_class

__all__ = [
    "ERROR_CLASSES",
    "NuropbAuthenticationError",
    "NuropbAuthorizationError",
    "NuropbCallAgain",
    "NuropbCallAgainReject",
    "NuropbDeprecatedError",
    "NuropbException",
    "NuropbHandlingError",
    "NuropbMessageError",
    "NuropbNotDeliveredError",
    "NuropbSuccess",
    "NuropbTimeoutError",
    "NuropbTransportError",
    "NuropbValidationError",
    "error_dict",
    "error_name",
    "lab_error",
    "remote_error",
]

log = logging.getLogger(__name__)


def _also(name: str) -> tuple[type, ...]:
    """nuropb.interface's class of this name, as a base too (see nuropb_peer)."""
    return also("interface", name)


class NuropbException(*_also("NuropbException"), Exception):  # type: ignore[misc]
    """Base of every nuropb error; ``description`` is what travels on the wire."""

    description: str
    payload: dict[str, Any] | None
    exception: BaseException | None
    #: True for an error that came from a remote service in a response
    remote: bool = False
    #: the class name the remote side sent (it may be a name this side does not know)
    remote_name: str | None = None

    def __init__(
        self,
        description: str | None = None,
        payload: dict[str, Any] | None = None,
        exception: BaseException | None = None,
    ) -> None:
        if description is None:
            description = str(exception) if exception is not None else type(self).__name__
        # Exception's own, not the chain: nuropb's classes, when bases too, take other
        # positional parameters (NuropbSuccess: result first)
        Exception.__init__(self, description)
        self.description = description
        self.payload = payload
        self.exception = exception

    def to_dict(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "description": self.description}


class NuropbTimeoutError(NuropbException, *_also("NuropbTimeoutError")):  # type: ignore[misc]
    """A request was not answered within its ttl."""


class NuropbTransportError(NuropbException, *_also("NuropbTransportError")):  # type: ignore[misc]
    """The connection to the broker failed or was closed."""

    def __init__(
        self,
        description: str | None = None,
        payload: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        close_connection: bool = False,
    ) -> None:
        super().__init__(description, payload, exception)
        self._close_connection = close_connection

    @property
    def close_connection(self) -> bool:
        """Whether the connection should be closed (as nuropb's attribute)."""
        return self._close_connection


class NuropbMessageError(NuropbException, *_also("NuropbMessageError")):  # type: ignore[misc]
    """A message could not be encoded, decoded or understood."""


class NuropbHandlingError(NuropbException, *_also("NuropbHandlingError")):  # type: ignore[misc]
    """The service could not handle the request (for example an unknown method)."""


class NuropbDeprecatedError(NuropbHandlingError, *_also("NuropbDeprecatedError")):  # type: ignore[misc]
    """The method or topic is deprecated."""


class NuropbValidationError(NuropbException, *_also("NuropbValidationError")):  # type: ignore[misc]
    """The request's parameters do not fit the method."""


class NuropbAuthenticationError(NuropbException, *_also("NuropbAuthenticationError")):  # type: ignore[misc]
    """The caller's identity could not be established (no token)."""


class NuropbAuthorizationError(NuropbException, *_also("NuropbAuthorizationError")):  # type: ignore[misc]
    """The caller may not do this (bad token, or plaintext call to an encrypted method)."""


class NuropbNotDeliveredError(NuropbMessageError, *_also("NuropbNotDeliveredError")):  # type: ignore[misc]
    """No queue is bound for the target service: the broker returned the message.

    A NuropbMessageError too: that is what nuropb 0.1.8 raises for a missing service, so
    code written for it catches this."""


class NuropbCallAgainReject(NuropbException, *_also("NuropbCallAgainReject")):  # type: ignore[misc]
    """A call-again was asked for a message that was already redelivered once."""


class NuropbCallAgain(NuropbException, *_also("NuropbCallAgain")):  # type: ignore[misc]
    """Raised by a service method: requeue the message and call again (at most once)."""


class NuropbSuccess(NuropbException, *_also("NuropbSuccess")):  # type: ignore[misc]
    """Raised by a service method: answer with ``result`` and publish ``events`` after."""

    def __init__(
        self,
        result: Any,
        description: str | None = None,
        payload: dict[str, Any] | None = None,
        events: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(description, payload)
        self.result = result
        self.events = [] if events is None else list(events)


ERROR_CLASSES: dict[str, type[NuropbException]] = {
    cls.__name__: cls
    for cls in (
        NuropbException,
        NuropbTimeoutError,
        NuropbTransportError,
        NuropbMessageError,
        NuropbHandlingError,
        NuropbDeprecatedError,
        NuropbValidationError,
        NuropbAuthenticationError,
        NuropbAuthorizationError,
        NuropbNotDeliveredError,
        NuropbCallAgainReject,
        NuropbCallAgain,
        NuropbSuccess,
    )
}

# One remote class per known class: a name outside nuropb's set (any peer may send any) is
# raised as the one remote NuropbException, its name kept on the exception (remote_name).
_REMOTE_CLASSES: dict[type[NuropbException], type[NuropbException]] = {}


def _remote_class(name: str) -> type[NuropbException]:
    known = ERROR_CLASSES.get(name)
    if known is None or known is NuropbSuccess:  # unknown names raise as NuropbException
        known = NuropbException
    cls = _REMOTE_CLASSES.get(known)
    if cls is None:
        bases = (known,) if issubclass(known, NuropbMessageError) else (NuropbMessageError, known)
        cls = type(known.__name__, bases, {"__module__": __name__, "remote": True})
        _REMOTE_CLASSES[known] = cls
    return cls


def remote_error(error: Any, payload: dict[str, Any] | None = None) -> NuropbException:
    """The exception for an error dict from a response (unknown names: NuropbException)."""
    if isinstance(error, dict):
        name = str(error.get("error") or "NuropbException")
        description = error.get("description")
    else:
        name, description = "NuropbException", error
    exc = _remote_class(name)(str(description) if description is not None else name, payload)
    exc.remote_name = name
    return exc


def error_name(exc: BaseException) -> str:
    """An error's class name as its remote side sent it (kept bounded), else its own."""
    return clip_text(getattr(exc, "remote_name", None) or type(exc).__name__)


def lab_error(exc: BaseException) -> BaseException:
    """The lab's exception for one of nuropb's own classes (same name, description, payload,
    result and events); any other exception as it is."""
    if isinstance(exc, NuropbException):
        return exc
    cls = ERROR_CLASSES.get(type(exc).__name__)
    peer = peer_class("interface", type(exc).__name__)
    if cls is None or peer is None or not isinstance(exc, peer):
        return exc
    description = getattr(exc, "description", None)
    payload = getattr(exc, "payload", None)
    converted: NuropbException
    if cls is NuropbSuccess:
        events = getattr(exc, "events", None)
        converted = NuropbSuccess(getattr(exc, "result", None), description, payload, events)
    else:
        converted = cls(description, payload, getattr(exc, "exception", None))
    converted.__cause__ = exc
    return converted


def error_dict(exc: BaseException) -> dict[str, Any]:
    """The wire form of an exception raised while handling a service message."""
    if isinstance(exc, NuropbException):
        return exc.to_dict()
    return {"error": type(exc).__name__, "description": str(exc) or type(exc).__name__}
