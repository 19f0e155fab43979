"""The nuropb exception classes, under the names that travel on the wire.

A remote error arrives as ``{"error": <class name>, "description": ...}``. It is raised as
that class, made also a subclass of :class:`NuropbMessageError`, because code written
against nuropb 0.1.8 catches ``NuropbMessageError`` for every remote error.
"""

from __future__ import annotations

from typing import Any

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
    "remote_error",
]


class NuropbException(Exception):
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
        super().__init__(description)
        self.description = description
        self.payload = payload
        self.exception = exception

    def to_dict(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "description": self.description}


class NuropbTimeoutError(NuropbException):
    """A request was not answered within its ttl."""


class NuropbTransportError(NuropbException):
    """The connection to the broker failed or was closed."""

    def __init__(
        self,
        description: str | None = None,
        payload: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        close_connection: bool = False,
    ) -> None:
        super().__init__(description, payload, exception)
        self.close_connection = close_connection


class NuropbMessageError(NuropbException):
    """A message could not be encoded, decoded or understood."""


class NuropbHandlingError(NuropbException):
    """The service could not handle the request (for example an unknown method)."""


class NuropbDeprecatedError(NuropbHandlingError):
    """The method or topic is deprecated."""


class NuropbValidationError(NuropbException):
    """The request's parameters do not fit the method."""


class NuropbAuthenticationError(NuropbException):
    """The caller's identity could not be established (no token)."""


class NuropbAuthorizationError(NuropbException):
    """The caller may not do this (bad token, or plaintext call to an encrypted method)."""


class NuropbNotDeliveredError(NuropbException):
    """No queue is bound for the target service: the broker returned the message."""


class NuropbCallAgainReject(NuropbException):
    """A call-again was asked for a message that was already redelivered once."""


class NuropbCallAgain(NuropbException):
    """Raised by a service method: requeue the message and call again (at most once)."""


class NuropbSuccess(NuropbException):
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

_REMOTE_CLASSES: dict[str, type[NuropbException]] = {}


def _remote_class(name: str) -> type[NuropbException]:
    cls = _REMOTE_CLASSES.get(name)
    if cls is None:
        known = ERROR_CLASSES.get(name)
        if known is None or known is NuropbSuccess:  # unknown names raise as NuropbException
            known = NuropbException
        bases = (known,) if issubclass(known, NuropbMessageError) else (NuropbMessageError, known)
        cls = type(known.__name__, bases, {"__module__": __name__, "remote": True})
        _REMOTE_CLASSES[name] = cls
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


def error_dict(exc: BaseException) -> dict[str, Any]:
    """The wire form of an exception raised while handling a service message."""
    if isinstance(exc, NuropbException):
        return exc.to_dict()
    return {"error": type(exc).__name__, "description": str(exc) or type(exc).__name__}
