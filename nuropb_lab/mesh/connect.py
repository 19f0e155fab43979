"""Opening an aio-pika connection to a target, with errors that name the cause and the fix.

Importing this module also makes pamqp's frame decoding tolerate strings that are not UTF-8
(see :func:`tolerate_non_utf8`): without that, one such message kills every connection it
is delivered to; and has aiormq read frames in chunks (chunked_frames.py).
"""

from __future__ import annotations

import contextlib
import ssl
import struct
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import TimeoutType
from pamqp import common as pamqp_common
from pamqp import decode as pamqp_decode

from .amqp.receiver import read_frames_in_chunks
from .errors import NuropbTransportError
from .urls import AmqpTarget

__all__ = [
    "CredentialsRefused",
    "MeshNotFound",
    "cannot_connect",
    "connect_target",
    "credentials_refused",
    "field_table",
    "mesh_not_found",
    "tls_context",
    "tolerate_non_utf8",
]


class MeshNotFound(NuropbTransportError):
    """The vhost (mesh) does not exist, or the user may not use it."""


class CredentialsRefused(NuropbTransportError):
    """The broker refused the user name or password."""


class _Connection(aio_pika.Connection):
    """aio-pika's connection, closed when it cannot open: else it is collected unclosed and
    its ``__del__`` schedules a close that nobody awaits (a warning for every node that did
    not answer)."""

    async def connect(self, timeout: TimeoutType = None) -> None:
        try:
            await super().connect(timeout)
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
    if "reset by peer" not in lowered:
        return ""
    if target.tls:
        return (
            " (the broker ended the TLS handshake: does it require a client certificate"
            " (certfile/keyfile), and does it trust the one given?)"
        )
    return f" (is port {target.port} a TLS listener? then use amqps://)"


# --- tolerating strings that are not UTF-8 -----------------------------------------------


def _short_str(value: bytes) -> tuple[int, str | bytes]:
    """pamqp's short-string decoder, returning bytes (as pamqp does for long strings, and pika
    for both) where pamqp raises UnicodeDecodeError."""
    try:
        length = pamqp_common.Struct.byte.unpack(value[0:1])[0]
    except (struct.error, TypeError) as err:
        raise ValueError("Could not unpack short string value") from err
    raw = value[1 : length + 1]
    try:
        return length + 1, raw.decode("utf-8")
    except UnicodeDecodeError:
        return length + 1, bytes(raw)


def field_table(value: bytes) -> tuple[int, dict[str, Any]]:
    """pamqp's field-table decoder, with header names that are not UTF-8 decoded lossily
    (U+FFFD) where pamqp raises UnicodeDecodeError."""
    try:
        length = pamqp_common.Struct.integer.unpack(value[0:4])[0]
        offset = 4
        data: dict[str, Any] = {}
        end = offset + length
        if end > len(value):
            raise ValueError("Field table length exceeds available data")
        while offset < end:
            key_length = pamqp_common.Struct.byte.unpack_from(value, offset)[0]
            offset += 1
            if offset + key_length > end:
                raise ValueError("Field table key length exceeds data")
            key = value[offset : offset + key_length].decode("utf-8", "replace")
            offset += key_length
            consumed, result = pamqp_decode.embedded_value(value[offset:])
            offset += consumed
            data[key] = result
        return end, data
    except (struct.error, TypeError) as err:
        raise ValueError("Could not unpack data") from err


def tolerate_non_utf8() -> None:
    """Make pamqp decode short strings (correlation_id, reply_to, routing keys ...) and header
    names that are not UTF-8 instead of raising.

    pamqp raises inside aiormq's frame reader, which then drops the whole connection; the
    broker redelivers the unacknowledged message to the next connection, which drops too:
    one such message keeps a service off the mesh for good. Decoded, it reaches the API,
    which rejects it to the dead-letter queue. Idempotent.
    """
    pamqp_decode.METHODS["shortstr"] = _short_str
    pamqp_decode.METHODS["table"] = field_table
    pamqp_decode.TABLE_MAPPING[b"F"] = field_table


tolerate_non_utf8()
read_frames_in_chunks()
