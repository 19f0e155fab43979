"""Serving an object on the mesh: the service queue's deliveries, run and answered.

A delivery is decoded (decrypted with the service's key when it says so, once: a copy sent
again or a token older than the message's ttl is refused, see crypto.FreshRequests), run by
the :class:`~.service.ServiceExecutor`, answered (on the request's ``reply_to``, encrypted
with the request's key, errors too once it was decrypted), acknowledged and its events
published; a bad message is rejected to the dead-letter exchange and answered with its error,
never left unacknowledged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from aiormq import Channel
from aiormq.abc import DeliveredMessage
from cryptography.hazmat.primitives.asymmetric import rsa
from pamqp import commands as spec

from .._version import __version__
from . import codec, crypto
from .amqp import frames
from .codec import DecodeLimits, MessageType
from .errors import NuropbMessageError, error_dict
from .service import Outcome, ServiceExecutor, event_body, response_body
from .transport import Transport

__all__ = ["ServiceSide", "message_properties", "run_eagerly"]

log = logging.getLogger(__name__)


def message_properties(
    nuropb_type: MessageType,
    correlation_id: str,
    trace_id: str | None,
    encrypted: bool = False,
    reply_to: str = "",
    ttl: int | None = None,
) -> frames.Properties:
    """The AMQP properties of an outgoing nuropb message (docs/PROTOCOL.md, Messages)."""
    return frames.Properties(
        codec.CONTENT_TYPE,
        correlation_id,
        reply_to,
        str(ttl) if ttl else "",
        correlation_id,
        codec.headers_for(nuropb_type, trace_id, encrypted, __version__),
    )


def run_eagerly(coro: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None] | None:
    """Run ``coro`` now, up to its first wait, in a context of its own; the coroutine returned
    runs the rest (the transport makes a task of it), None when it is done. For a handler
    that mostly never waits this saves a task and a loop iteration per message (an eager
    task, as asyncio has from 3.12)."""
    context = contextvars.copy_context()
    try:
        waits_for = context.run(coro.send, None)
    except StopIteration:
        return None
    return _resume(coro, waits_for, context)


async def _resume(
    coro: Coroutine[Any, Any, None], waits_for: Any, context: contextvars.Context
) -> None:
    """Go on with a coroutine that yielded ``waits_for``, as asyncio's Task would."""
    while True:
        step: Callable[[Any], Any] = coro.send
        value: Any = None
        if waits_for is None:  # a bare yield (asyncio.sleep(0))
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError as exc:
                step, value = coro.throw, exc
        elif asyncio.isfuture(waits_for):
            # Wait for it without taking its outcome: the coroutine reads that when resumed.
            # Cancelling this task cancels the future, which the coroutine then sees. The
            # flag is the Future protocol's "a task is to wait for me", taken here as by Task.
            waits_for._asyncio_future_blocking = False
            with contextlib.suppress(BaseException):
                await waits_for
        else:
            coro.close()
            raise RuntimeError(f"a service handler yielded {waits_for!r}, not a future")
        try:
            waits_for = context.run(step, value)
        except StopIteration:
            return


class ServiceSide:
    """The served object's half of an API: its deliveries in, its answers and events out."""

    def __init__(
        self,
        executor: ServiceExecutor,
        service_name: str,
        private_key: rsa.RSAPrivateKey | None,
        limits: DecodeLimits,
        stats: collections.Counter[str],
        publish_event: Callable[[dict[str, Any]], Awaitable[None]],
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
    ) -> None:
        self._executor = executor
        self._service_name = service_name
        self._private_key = private_key
        self._fresh = crypto.FreshRequests()
        self._limits = limits
        self.stats = stats
        self._publish_event = publish_event
        self._spawn = spawn
        self.transport: Transport | None = None  # set once the API has made it

    def on_delivery(self, message: DeliveredMessage) -> Coroutine[Any, Any, None] | None:
        """The service queue's consumer: handles the message in the call, up to its first
        wait (a sync method answers and acks here); a task runs the rest, if any."""
        return run_eagerly(self._handle(message))

    async def _handle(self, message: DeliveredMessage) -> None:
        properties = message.header.properties
        channel = cast(Channel, message.channel)
        delivery = cast(spec.Basic.Deliver, message.delivery)
        delivery_tag = delivery.delivery_tag
        correlation_id = properties.correlation_id or ""
        reply_to = properties.reply_to or ""
        # An id that is not UTF-8 arrives as bytes (see connect.py): unanswerable, so bad.
        ids_ok = isinstance(cast(object, correlation_id), str) and isinstance(
            cast(object, reply_to), str
        )
        if not ids_ok:
            correlation_id = reply_to = ""
        headers = properties.headers or {}
        trace_id = headers.get("trace_id")
        trace_id = trace_id if isinstance(trace_id, str) else None
        fernet_key = wrapped_key = None
        context: dict[str, Any] = {}
        self.stats["service_messages"] += 1
        try:
            if not ids_ok:
                raise NuropbMessageError("correlation_id or reply_to is not UTF-8")
            nuropb_type, encrypted = codec.check_headers(headers)
            if nuropb_type == "response":
                raise NuropbMessageError("a response was sent to a service queue")
            body = message.body
            if encrypted:
                if self._private_key is None:
                    raise NuropbMessageError(
                        f"{self._service_name} has no private key to decrypt with"
                    )
                body, fernet_key, wrapped_key = self._fresh.take(
                    body, self._private_key, properties.expiration, bool(delivery.redelivered)
                )
            payload = codec.check_body(nuropb_type, codec.decode_json(body, self._limits))
        except Exception as exc:  # whatever is wrong with it, reject it: never leave it unacked
            self.stats["bad_messages"] += 1
            error = error_dict(exc)
            log.info("rejecting a bad message on %s: %s", self._service_name, error["description"])
            # answered with its error (encrypted once it was decrypted, as its result would be)
            outcome = Outcome("reject", error=error, respond=True)
        else:
            outcome = await self._executor.execute(
                nuropb_type, payload, encrypted, bool(delivery.redelivered)
            )
            if outcome.ack == "reject":
                self.stats["service_errors"] += 1
            context = payload.get("context") or {}
        await self._complete(
            channel,
            delivery_tag,
            outcome,
            correlation_id,
            reply_to,
            trace_id,
            context,
            fernet_key,
            wrapped_key,
        )

    async def _complete(
        self,
        channel: Channel,
        delivery_tag: int | None,
        outcome: Outcome,
        correlation_id: str,
        reply_to: str,
        trace_id: str | None,
        context: dict[str, Any],
        fernet_key: bytes | None,
        wrapped_key: bytes | None,
    ) -> None:
        """Answer, then acknowledge, then publish the outcome's events."""
        ack = outcome.ack
        outbox = self.transport.outbox_for(channel) if self.transport is not None else None
        if outbox is None:  # the channel is gone: the broker redelivers the message
            log.info("could not complete %s: its channel closed", correlation_id)
            return
        out: list[bytes] = []
        try:
            if outcome.respond and reply_to and correlation_id:
                response = response_body(
                    correlation_id, context, trace_id, reply_to, outcome.result, outcome.error
                )
                try:
                    raw = codec.encode_json(response)
                except NuropbMessageError as exc:
                    # the echoed context may be what cannot be encoded (a lone surrogate)
                    response.update(result=None, error=exc.to_dict(), context={})
                    raw, ack = codec.encode_json(response), "reject"
                if fernet_key is not None and wrapped_key is not None:
                    raw = crypto.encrypt_with_key(raw, fernet_key, wrapped_key)
                properties = message_properties(
                    "response", correlation_id, trace_id, fernet_key is not None
                )
                try:
                    out.append(outbox.publish_frames("", reply_to, raw, properties))
                except ValueError as exc:  # a reply_to that no queue can have: still ack
                    log.info("cannot answer %s to %r: %s", correlation_id, reply_to, exc)
            # After the response, in the same write: acknowledged once answered.
            if delivery_tag is not None:
                out.append(outbox.settle_frame(delivery_tag, ack))
            if out:
                outbox.write(b"".join(out))
        except Exception as exc:  # the channel died: the broker redelivers the message
            log.info("could not complete %s on a closed channel: %s", correlation_id, exc)
            return
        for event in outcome.events:
            await self._publish_outcome_event(event, context, trace_id, correlation_id)

    async def _publish_outcome_event(
        self, event: Any, context: dict[str, Any], trace_id: str | None, correlation_id: str
    ) -> None:
        try:
            body = event_body(
                event["topic"],
                event.get("event", event.get("payload")),
                event.get("context") or context,
                trace_id,
                correlation_id,
                event.get("target"),
            )
            await self._publish_event(body)
        except Exception as exc:
            log.warning("%s: could not publish event %r: %s", self._service_name, event, exc)

    # --- nuropb's transport entry point, for a service message ---------------------------

    def run_transport_message(
        self,
        service_message: dict[str, Any],
        message_complete_callback: Callable[[list[dict[str, Any]], str], None],
        metadata: dict[str, Any],
    ) -> None:
        """Run a decoded service message (nuropb's ``TransportServicePayload``) and pass its
        responses and acknowledgement to ``message_complete_callback``."""
        nuropb_type = service_message.get("nuropb_type")
        payload = service_message.get("nuropb_payload") or {}

        async def run(executor: ServiceExecutor) -> None:
            outcome = await executor.execute(
                str(nuropb_type),
                payload,
                bool(metadata.get("encrypted")),
                bool(metadata.get("redelivered")),
            )
            message_complete_callback(
                self.transport_responses(service_message, outcome), outcome.ack
            )

        self._spawn(run(self._executor))

    @staticmethod
    def transport_responses(
        service_message: dict[str, Any], outcome: Outcome
    ) -> list[dict[str, Any]]:
        payload = service_message.get("nuropb_payload") or {}
        correlation_id = service_message.get("correlation_id") or ""
        trace_id = service_message.get("trace_id")
        context = payload.get("context") or {}
        messages: list[dict[str, Any]] = []

        def wrap(nuropb_type: str, body: dict[str, Any]) -> dict[str, Any]:
            return {
                "nuropb_protocol": codec.PROTOCOL_VERSION,
                "correlation_id": correlation_id,
                "trace_id": trace_id,
                "ttl": None,
                "nuropb_type": nuropb_type,
                "nuropb_payload": body,
            }

        if outcome.respond and service_message.get("nuropb_type") == "request":
            messages.append(
                wrap(
                    "response",
                    response_body(
                        correlation_id, context, trace_id, "", outcome.result, outcome.error
                    ),
                )
            )
        for event in outcome.events:
            body = event_body(
                event["topic"],
                event.get("event", event.get("payload")),
                context,
                trace_id,
                correlation_id,
                event.get("target"),
            )
            messages.append(wrap("event", body))
        return messages
