"""Opening an aio-pika connection to a target, with errors that name the cause and the fix.

The connection reads its frames with the lab's receiver (amqp/receiver.py: in chunks, and a
string that is not UTF-8 does not cost the connection); other aio-pika connections in the
process are left as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import TimeoutType, UnderlayConnection

from .amqp.receiver import ChunkedConnection
from .errors import NuropbTransportError
from .urls import AmqpTarget

__all__ = [
    "CredentialsRefused",
    "MeshNotFound",
    "cannot_connect",
    "connect_target",
    "credentials_refused",
    "mesh_not_found",
    "tls_context",
]


class MeshNotFound(NuropbTransportError):
    """The vhost (mesh) does not exist, or the user may not use it."""


class CredentialsRefused(NuropbTransportError):
    """The broker refused the user name or password."""


class _Underlay(UnderlayConnection):
    """aio-pika's hold on its aiormq connection, opening a :class:`ChunkedConnection` where
    aio-pika opens ``aiormq.connect(url, **kwargs)``, an aiormq ``Connection``."""

    @classmethod
    async def make_connection(
        cls, url: Any, timeout: TimeoutType = None, **kwargs: Any
    ) -> aiormq.abc.AbstractConnection:
        connection = ChunkedConnection(url, **kwargs)
        await asyncio.wait_for(connection.connect(), timeout=timeout)
        await connection.ready()
        return connection


class _Connection(aio_pika.Connection):
    """aio-pika's connection on a :class:`ChunkedConnection`; closed when it cannot open: else
    it is collected unclosed and its ``__del__`` schedules a close that nobody awaits (a
    warning for every node that did not answer)."""

    async def connect(self, timeout: TimeoutType = None) -> None:
        try:
            # aio-pika's connect, with _Underlay for its UnderlayConnection
            self.transport = await _Underlay.connect(
                self.url, self._on_connection_close, timeout=timeout, **self.kwargs
            )
            await self._on_connected()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.close()
            raise


async def connect_target(
    target: AmqpTarget,
    timeout: float = 10.0,
    client_properties: dict[str, Any] | None = None,
) -> aio_pika.abc.AbstractConnection:
    """Open a plain (non-robust) aio-pika connection; reconnection is the caller's job."""
    ssl_context = tls_context(target)
    try:
        return await aio_pika.connect(  # type: ignore[call-overload, no-any-return]
            host=target.host,
            port=target.port,
            login=target.username,
            password=target.password,
            virtualhost=target.vhost,
            ssl=target.tls,
            ssl_context=ssl_context,
            timeout=timeout,
            client_properties=client_properties,
            connection_class=_Connection,
            **({"heartbeat": target.heartbeat} if target.heartbeat is not None else {}),
        )
    except aiormq.exceptions.ProbableAuthenticationError:
        raise credentials_refused(target) from None
    except aiormq.exceptions.InvalidFrameError as exc:
        # The broker answers Connection.Open with Connection.Close (530) for a missing vhost.
        if "Connection.Close" not in str(exc):
            raise NuropbTransportError(
                f"cannot connect to {target.masked}: {target.scrub(str(exc))}"
            ) from None
        raise mesh_not_found(target) from None
    except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
        raise cannot_connect(target, exc) from None


def tls_context(target: AmqpTarget) -> ssl.SSLContext | None:
    """``target.ssl_context()``, its errors as NuropbTransportError."""
    try:
        return target.ssl_context()
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise NuropbTransportError(
            f"cannot set up TLS for {target.masked}: {target.scrub(str(exc))}"
        ) from None


def credentials_refused(target: AmqpTarget) -> CredentialsRefused:
    return CredentialsRefused(
        f"broker at {target.masked} refused the credentials of user {target.username!r}"
    )


def mesh_not_found(target: AmqpTarget) -> MeshNotFound:
    return MeshNotFound(
        f"mesh (vhost) {target.vhost!r} does not exist or user {target.username!r} may not"
        f" use it ({target.masked}); nuropb_lab.configure_mesh(url) creates it"
    )


def cannot_connect(target: AmqpTarget, exc: BaseException) -> NuropbTransportError:
    """A failure to reach the broker or to set up TLS with it, with what it usually means."""
    text = target.scrub(str(exc))
    return NuropbTransportError(
        f"cannot connect to {target.masked}: {type(exc).__name__}: {text}{_hint(target, text)}"
    )


_CLIENT_CERT_ALERTS = ("alert unknown ca", "alert bad certificate", "certificate required")


def _hint(target: AmqpTarget, text: str) -> str:
    """What a TLS alert or a reset during connection setup usually means."""
    lowered = text.lower()
    if target.tls and any(alert in lowered for alert in _CLIENT_CERT_ALERTS):
        return (
            " (the broker refused the client certificate: is it signed by a CA the broker trusts?)"
        )
    tls_listener = f" (is port {target.port} a TLS listener? then use amqps://)"
    if not target.tls and "unexpectedly closed" in lowered:
        return tls_listener  # RabbitMQ 4 answers plain AMQP there with a TLS alert and closes
    if "reset by peer" not in lowered:
        return ""
    if target.tls:
        return (
            " (the broker ended the TLS handshake: does it require a client certificate"
            " (certfile/keyfile), and does it trust the one given?)"
        )
    return tls_listener  # RabbitMQ 3 resets the connection
