"""The client's calls: requests (sent, paired with their responses, ended by their ttl),
requests that gather every answer (a describe), and commands (confirmed by the broker, or
failed at once when no service takes them).

A call the broker cannot route comes back (basic.return) and fails at once, saying why: no
queue is bound for the service, or its queue's home node is down (a passive declare tells).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any, Final

from aiormq.abc import DeliveredMessage

from . import codec, crypto, frames
from .codec import DecodeLimits
from .descriptions import Descriptions
from .errors import (
    NuropbException,
    NuropbNotDeliveredError,
    NuropbTimeoutError,
    NuropbTransportError,
    error_dict,
    remote_error,
)
from .nodes import DownQueues
from .responses import Answer, Pending, Responses, expire
from .service import response_body
from .serving import message_properties
from .topology import Topology
from .transport import Transport

__all__ = ["Caller", "new_id", "rpc_payload"]

log = logging.getLogger(__name__)

_UUID4_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))  # the version and variant bits
_UUID4_SET: Final = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant
# The ids' own generator, seeded from the system: one seeding the random module (a notebook's
# random.seed(0), Hypothesis before each example) must not make them repeat.
_ids = random.Random()


def new_id() -> str:
    """A uuid4 in hex, as nuropb's ``uuid4().hex`` (without its system call per id)."""
    return f"{_ids.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"


def rpc_payload(
    tag: str,
    service: str,
    method: str,
    params: dict[str, Any],
    context: dict[str, Any],
    trace_id: str | None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """A request's or command's payload, as nuropb's; a fresh correlation id if none."""
    return {
        "tag": tag,
        "service": service,
        "method": method,
        "params": params,
        "correlation_id": correlation_id or new_id(),
        "context": context,
        "trace_id": trace_id,
    }


class Caller:
    """Sends an API's requests and commands over its transport (RMQAPI.request and
    RMQAPI.command are this, with nuropb's signatures)."""

    def __init__(
        self,
        transport: Transport,
        topology: Topology,
        responses: Responses,
        descriptions: Descriptions,
        stats: collections.Counter[str],
        default_ttl: int,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
    ) -> None:
        self._transport = transport
        self._topology = topology
        self._responses = responses
        self._pending = responses.waiting  # the hot path's own name for it
        self._descriptions = descriptions
        self.stats = stats
        self.default_ttl = default_ttl
        self._spawn = spawn
        self._down_queues = DownQueues(transport.queue_info)

    async def request(
        self, payload: dict[str, Any], ttl: int | None, rpc_response: bool, encrypted: bool
    ) -> Any:
        """Send a request (an :func:`rpc_payload`) and wait for its response, at most ``ttl``
        ms: RMQAPI.request."""
        ttl = self.default_ttl if ttl is None else int(ttl)
        if ttl <= 0:
            raise ValueError("ttl must be a positive number of milliseconds")
        correlation_id = payload["correlation_id"]
        if correlation_id in self._pending:
            raise ValueError(f"correlation_id {correlation_id} is already waiting for a response")
        service, method = payload["service"], payload["method"]
        self.stats["requests"] += 1
        try:
            try:
                response = await self._round_trip(payload, ttl, encrypted)
            except TimeoutError as exc:
                self.stats["timeouts"] += 1
                self._responses.ended(correlation_id, "late_responses")
                if not self._transport.connected:
                    raise NuropbTransportError(
                        f"not connected to the mesh ({self._transport.state}) within {ttl} ms"
                    ) from None
                ignored = f"; {exc.args[0]}" if exc.args else ""
                raise NuropbTimeoutError(
                    f"no response from {service}.{method} within {ttl} ms{ignored}", payload
                ) from None
        except NuropbException as exc:
            if rpc_response:
                raise
            return response_body(
                correlation_id, payload["context"], payload["trace_id"], "", error=error_dict(exc)
            )
        error = response.get("error")
        if error is not None:
            if rpc_response:
                raise remote_error(error, response)
            return response
        return response.get("result") if rpc_response else response

    async def _round_trip(
        self, payload: dict[str, Any], ttl: int, encrypted: bool
    ) -> dict[str, Any]:
        """Send a request and wait for its response; TimeoutError after ``ttl`` ms."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ttl / 1000
        correlation_id = payload["correlation_id"]
        body = codec.encode_json(payload)
        fernet_key = None
        transport = self._transport
        fast = transport.returns_caught and transport.alive()
        if encrypted or not fast:
            # the slow way: a key to fetch, a connection to wait for, or a confirmed publish
            async with asyncio.timeout_at(deadline):
                if encrypted:
                    key = await self._descriptions.service_key(payload["service"])
                    body, fernet_key = crypto.encrypt_request(body, key)
                if not transport.alive() and not await transport.wait_connected(None):
                    raise NuropbTransportError(f"not connected to the mesh ({transport.state})")
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        pending = self._pending[correlation_id] = Pending(future, fernet_key, payload)
        # One timer per request ends its wait at the deadline (cheaper than asyncio.timeout).
        timer = loop.call_at(deadline, expire, future)
        try:
            if transport.returns_caught:
                # no confirm to wait for: an unroutable request comes back (_on_returned)
                transport.send(
                    self._topology.rpc_exchange,
                    payload["service"],
                    body,
                    self._rpc_properties(payload, ttl, encrypted),
                    mandatory=True,
                )
            else:
                async with asyncio.timeout_at(deadline):
                    await self._publish_rpc(payload, body, ttl, encrypted)
            try:
                return await future
            except TimeoutError:
                if pending.ignored is not None:  # say what came instead of the answer
                    raise TimeoutError(pending.ignored) from None
                raise
        finally:
            timer.cancel()
            self._pending.pop(correlation_id, None)

    async def gather(
        self,
        payload: dict[str, Any],
        ttl: int,
        window: Callable[[Answer], float],
        on_late: Callable[[Answer], None],
        limits: DecodeLimits,
    ) -> list[Answer]:
        """Send a plaintext request and gather its answers: the first (NuropbTimeoutError when
        none comes within ``ttl`` ms), then every one that comes within ``window(first)``
        seconds after it. Answers that come later, until the ttl, go to ``on_late``. Each is
        decoded within ``limits``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ttl / 1000
        correlation_id = payload["correlation_id"]
        if correlation_id in self._pending:
            raise ValueError(f"correlation_id {correlation_id} is already waiting for a response")
        answers: list[Answer] = []
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        pending = Pending(future, None, payload, answers.append, limits)
        self._pending[correlation_id] = pending
        timer = loop.call_at(deadline, expire, future)
        try:
            async with asyncio.timeout_at(deadline):
                if not self._transport.alive() and not await self._transport.wait_connected(None):
                    raise NuropbTransportError(
                        f"not connected to the mesh ({self._transport.state})"
                    )
                await self._publish_rpc(payload, codec.encode_json(payload), ttl, False)
            await future
        except BaseException as exc:
            self._pending.pop(correlation_id, None)
            if not isinstance(exc, TimeoutError):
                raise
            self.stats["timeouts"] += 1
            self._responses.ended(correlation_id, "late_responses")
            raise NuropbTimeoutError(
                f"no response from {payload['service']}.{payload['method']} within {ttl} ms",
                payload,
            ) from None
        finally:
            timer.cancel()
        wait = window(answers[0])
        loop.call_at(max(deadline, loop.time() + wait), self._gathered, correlation_id, pending)
        await asyncio.sleep(wait)
        pending.gather = on_late
        return list(answers)

    def _gathered(self, correlation_id: str, pending: Pending) -> None:
        """A gathering request's ttl is over: later answers are counted, not passed on."""
        if self._pending.get(correlation_id) is pending:
            del self._pending[correlation_id]
            self._responses.ended(correlation_id, "late_responses")

    def _rpc_properties(
        self, payload: dict[str, Any], ttl: int, encrypted: bool
    ) -> frames.Properties:
        return message_properties(
            payload["tag"],
            payload["correlation_id"],
            payload["trace_id"],
            encrypted,
            reply_to=self._transport.config.response_queue,
            ttl=ttl,
        )

    async def _not_delivered(self, payload: dict[str, Any]) -> NuropbException:
        """Why the broker returned a call: no queue is bound for the service, or (the broker
        returns these too) its queue's home node is down, which a passive declare tells."""
        service = payload["service"]
        down = await self._down_queues.reason(Topology.service_queue(service))
        if down is None:
            why = f"service {service!r} is not on the mesh (no queue bound for it)"
        else:
            why = f"service {service!r} cannot take calls now: its {down}"
        # nuropb clients see this as an error response, so it is a NuropbMessageError too.
        return remote_error(
            {
                "error": "NuropbNotDeliveredError",
                "description": f"{why}: cannot call {payload['method']}",
            },
            payload,
        )

    def on_returned(self, message: DeliveredMessage) -> None:
        """A mandatory request the broker could not route (basic.return): fail its wait."""
        correlation_id = message.header.properties.correlation_id
        pending = self._pending.get(correlation_id) if correlation_id else None
        if pending is None or pending.future.done():
            log.debug("a returned message for no waiting request: %s", correlation_id)
            return
        self.stats["not_delivered"] += 1
        self._spawn(self._fail_returned(pending))

    async def _fail_returned(self, pending: Pending) -> None:
        error = await self._not_delivered(pending.payload)
        if not pending.future.done():
            pending.future.set_exception(error)

    async def _fail_command(self, done: asyncio.Future[None], payload: dict[str, Any]) -> None:
        """Fail a returned command with why (a passive declare may tell its node is down)."""
        error = await self._not_delivered(payload)
        if not done.done():
            done.set_exception(error)

    async def _publish_rpc(
        self, payload: dict[str, Any], body: bytes, ttl: int, encrypted: bool
    ) -> None:
        """Publish a request or command with a publisher confirm (a command's way)."""
        properties = self._rpc_properties(payload, ttl, encrypted)
        try:
            await self._transport.publish(
                self._topology.rpc_exchange, payload["service"], body, properties, mandatory=True
            )
        except NuropbNotDeliveredError:
            self.stats["not_delivered"] += 1
            raise await self._not_delivered(payload) from None

    def command(
        self, payload: dict[str, Any], ttl: int | None, encrypted: bool
    ) -> asyncio.Future[None]:
        """Send a command (an :func:`rpc_payload`): RMQAPI.command."""
        ttl = self.default_ttl if ttl is None else ttl
        if not encrypted:
            sent = self._command_now(payload, ttl)
            if sent is not None:
                return sent
        return self._spawn(self._send_command(payload, ttl, encrypted))

    def _command_now(self, payload: dict[str, Any], ttl: int) -> asyncio.Future[None] | None:
        """Publish a plaintext command at once, its confirmation awaited by no task: a task
        and a timeout scope per command cost more than the rest of sending it. None when the
        transport cannot take it now (not connected, or confirms not counted by it)."""
        try:
            body = codec.encode_json(payload)
        except NuropbException:
            return None  # the slow way fails the same, in its task
        confirmed = self._transport.send_confirmed(
            self._topology.rpc_exchange,
            payload["service"],
            body,
            self._rpc_properties(payload, ttl, False),
        )
        if confirmed is None:
            return None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        timer = loop.call_at(loop.time() + ttl / 1000, expire, done)

        def settle(confirmation: asyncio.Future[None]) -> None:
            timer.cancel()
            if done.done():
                return
            if confirmation.cancelled():
                done.cancel()
                return
            error = confirmation.exception()
            if error is None:
                self.stats["commands"] += 1
                done.set_result(None)
            elif isinstance(error, NuropbNotDeliveredError):
                self.stats["not_delivered"] += 1
                self._spawn(self._fail_command(done, payload))
            else:
                done.set_exception(error)

        confirmed.add_done_callback(settle)
        done.add_done_callback(self._sent)
        return done

    @staticmethod
    def _sent(future: asyncio.Future[Any]) -> None:
        # a command nobody awaits: its failure is logged, as a task's would be
        if not future.cancelled() and future.exception() is not None:
            log.warning("background send failed: %s", future.exception())

    async def _send_command(self, payload: dict[str, Any], ttl: int, encrypted: bool) -> None:
        async with asyncio.timeout(ttl / 1000):
            body = codec.encode_json(payload)
            if encrypted:
                key = await self._descriptions.service_key(payload["service"])
                body, _ = crypto.encrypt_request(body, key)
            if not self._transport.alive() and not await self._transport.wait_connected(None):
                raise NuropbTransportError(f"not connected to the mesh ({self._transport.state})")
            await self._publish_rpc(payload, body, ttl, encrypted)
        self.stats["commands"] += 1
