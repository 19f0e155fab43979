"""Opening an aio-pika connection to a target, with errors that name the cause and the fix."""

from __future__ import annotations

from typing import Any

import aio_pika
import aiormq

from .errors import NuropbTransportError
from .urls import AmqpTarget

__all__ = ["MeshNotFound", "connect_target"]


class MeshNotFound(NuropbTransportError):
    """The vhost (mesh) does not exist, or the user may not use it."""


async def connect_target(
    target: AmqpTarget,
    timeout: float = 10.0,
    client_properties: dict[str, Any] | None = None,
) -> aio_pika.abc.AbstractConnection:
    """Open a plain (non-robust) aio-pika connection; reconnection is the caller's job."""
    try:
        return await aio_pika.connect(  # type: ignore[call-overload, no-any-return]
            host=target.host,
            port=target.port,
            login=target.username,
            password=target.password,
            virtualhost=target.vhost,
            ssl=target.tls,
            ssl_context=target.ssl_context(),
            timeout=timeout,
            client_properties=client_properties,
            **({"heartbeat": target.heartbeat} if target.heartbeat is not None else {}),
        )
    except aiormq.exceptions.ProbableAuthenticationError:
        raise NuropbTransportError(
            f"broker at {target.masked} refused the credentials of user {target.username!r}"
        ) from None
    except aiormq.exceptions.InvalidFrameError as exc:
        # The broker answers Connection.Open with Connection.Close (530) for a missing vhost.
        if "Connection.Close" not in str(exc):
            raise NuropbTransportError(
                f"cannot connect to {target.masked}: {target.scrub(str(exc))}"
            ) from None
        raise MeshNotFound(
            f"mesh (vhost) {target.vhost!r} does not exist or user {target.username!r} may not"
            f" use it ({target.masked}); nuropb_lab.configure_mesh(url) creates it"
        ) from None
    except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
        raise NuropbTransportError(
            f"cannot connect to {target.masked}: {type(exc).__name__}: {target.scrub(str(exc))}"
        ) from None
