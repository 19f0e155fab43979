"""Requests waiting for their responses, by correlation id.

A response pairs with its waiting request here, in the consumer's call (nothing awaits), so
the request resumes a loop iteration sooner. Responses that pair with nothing are counted, not
raised: those of requests that ended already (a duplicate, or one after its ttl) under their
own stat, the rest as unpaired.

Anyone who saw a request (its correlation id and ``reply_to`` travel in clear) can answer it.
So the answer to an encrypted request is taken only when it is encrypted with that request's
Fernet key: any other answer does not end the wait (it would let a forger pre-empt the real
one), it is counted (``unauthenticated_responses``) and, should no real answer come, named in
the timeout. A gathering request (``Pending.gather``: a describe, which any peer bound with the
service's routing key also gets) passes every answer on (up to :data:`MAX_GATHERED`) instead
of ending at the first.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any, Final

from aiormq.abc import DeliveredMessage

from . import codec, crypto
from .codec import DecodeLimits
from .errors import NuropbException, NuropbMessageError

__all__ = ["Answer", "Pending", "Responses", "expire"]

log = logging.getLogger(__name__)

_RECENT: Final = 4096  # ended correlation ids kept to tell duplicates from strays
_SAID: Final = 200  # characters of an ignored answer's error kept for the timeout's text
_SAID_LIMITS: Final = DecodeLimits(max_bytes=64 * 1024, max_depth=8)
MAX_GATHERED: Final = 16  # answers a gathering request reads; more are only counted

#: one answer to a gathering request: the response, or why it could not be read
Answer = dict[str, Any] | NuropbException


def expire(future: asyncio.Future[Any]) -> None:
    """A timer's end of a wait (cheaper than a timeout scope per request)."""
    if not future.done():
        future.set_exception(TimeoutError())


class Pending:
    """A request waiting: its future, the Fernet key its answer must be encrypted with (None
    for a plaintext request), and, when it gathers, where each answer goes (the future is then
    only set, to an empty dict, at the first)."""

    __slots__ = ("fernet_key", "future", "gather", "gathered", "ignored", "limits", "payload")

    def __init__(
        self,
        future: asyncio.Future[dict[str, Any]],
        fernet_key: bytes | None,
        payload: dict[str, Any],
        gather: Callable[[Answer], None] | None = None,
        limits: DecodeLimits | None = None,
    ) -> None:
        self.future = future
        self.fernet_key = fernet_key
        self.payload = payload
        self.gather = gather
        self.gathered = 0  # answers passed to gather
        self.limits = limits
        self.ignored: str | None = None  # the first answer not taken, said at a timeout


def _error_of(body: bytes) -> str:
    """The error an unauthenticated plaintext answer says, shortened to one line."""
    try:
        error = codec.decode_json(body, _SAID_LIMITS).get("error")
    except (NuropbException, AttributeError):
        return ""
    if not isinstance(error, dict):
        return ""
    said = " ".join(f"{error.get('error')}: {error.get('description')}".split())
    return f" ({said[:_SAID]}{'…' if len(said) > _SAID else ''})"


class Responses:
    """``waiting``: correlation id -> :class:`Pending`; the sender adds and removes its own
    entry, a response (:meth:`on_response`) settles it."""

    def __init__(self, stats: collections.Counter[str], limits: DecodeLimits) -> None:
        self.waiting: dict[str, Pending] = {}
        self._stats = stats
        self._limits = limits
        # ended correlation ids -> the stat a further response for it counts under
        self._recent: collections.OrderedDict[str, str] = collections.OrderedDict()

    def ended(self, correlation_id: str, kind: str) -> None:
        """``correlation_id`` waits no more: a later response counts under ``kind``."""
        recent = self._recent
        recent[correlation_id] = kind
        if len(recent) > _RECENT:
            recent.popitem(last=False)

    def fail_all(self, error: BaseException) -> None:
        for pending in self.waiting.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        self.waiting.clear()

    def on_response(self, message: DeliveredMessage) -> None:
        """The response queue's consumer."""
        try:
            self._take(message)
        except Exception:
            log.exception("could not handle a response")

    def _take(self, message: DeliveredMessage) -> None:
        properties = message.header.properties
        correlation_id = properties.correlation_id
        pending = self.waiting.get(correlation_id) if correlation_id else None
        if pending is not None and pending.gather is not None:
            self._gathered(pending, message)
            return
        if correlation_id is None or pending is None or pending.future.done():
            kind = self._recent.get(correlation_id or "", "unpaired_responses")
            self._stats[kind] += 1
            log.debug("ignoring a response counted as %s: %s", kind, correlation_id)
            return
        if pending.fernet_key is not None:
            self._take_encrypted(pending, correlation_id, message)
            return
        self.ended(correlation_id, "duplicate_responses")
        self._stats["responses"] += 1
        try:
            nuropb_type, encrypted = codec.check_headers(properties.headers)
            if nuropb_type != "response":
                raise NuropbMessageError(f"expected a response, got a {nuropb_type}")
            if encrypted:
                raise NuropbMessageError("encrypted response to a plaintext request")
            response = codec.check_body("response", codec.decode_json(message.body, self._limits))
        except NuropbException as exc:
            pending.future.set_exception(exc)
            return
        pending.future.set_result(response)

    def _take_encrypted(
        self, pending: Pending, correlation_id: str, message: DeliveredMessage
    ) -> None:
        """Only an answer encrypted with the request's key is its answer."""
        assert pending.fernet_key is not None
        try:
            nuropb_type, encrypted = codec.check_headers(message.header.properties.headers)
            if nuropb_type != "response":
                raise NuropbMessageError(f"expected a response, got a {nuropb_type}")
        except NuropbException:
            self._ignore(pending, "an answer that is no nuropb response")
            return
        if not encrypted:
            self._ignore(pending, "a plaintext answer", message.body)
            return
        try:
            body = crypto.decrypt_with_key(message.body, pending.fernet_key)
        except NuropbException:
            self._ignore(pending, "an answer that does not decrypt with the request's key")
            return
        self.ended(correlation_id, "duplicate_responses")
        self._stats["responses"] += 1
        try:
            response = codec.check_body("response", codec.decode_json(body, self._limits))
        except NuropbException as exc:
            pending.future.set_exception(exc)
            return
        pending.future.set_result(response)

    def _ignore(self, pending: Pending, what: str, plaintext: bytes | None = None) -> None:
        self._stats["unauthenticated_responses"] += 1
        if pending.ignored is None:  # the first is said at the timeout (shortened, one line)
            said = _error_of(plaintext) if plaintext is not None else ""
            pending.ignored = f"{what}{said} was not taken as its answer"
        log.debug("ignoring %s to %s", what, pending.payload.get("correlation_id"))

    def _gathered(self, pending: Pending, message: DeliveredMessage) -> None:
        """An answer to a gathering request: decoded and passed on, whatever it says."""
        assert pending.gather is not None
        self._stats["responses"] += 1
        if pending.gathered >= MAX_GATHERED:  # a flood of answers: not read, not kept
            self._stats["unread_answers"] += 1
            return
        pending.gathered += 1
        answer: Answer
        try:
            nuropb_type, encrypted = codec.check_headers(message.header.properties.headers)
            if nuropb_type != "response" or encrypted:
                raise NuropbMessageError(f"expected a plaintext response, got a {nuropb_type}")
            limits = pending.limits or self._limits
            answer = codec.check_body("response", codec.decode_json(message.body, limits))
        except NuropbException as exc:
            answer = exc
        if not pending.future.done():
            pending.future.set_result({})
        pending.gather(answer)

    def complete(self, correlation_id: str | None, response: dict[str, Any]) -> None:
        """A response decoded elsewhere (nuropb's transport entry point)."""
        pending = self.waiting.pop(correlation_id, None) if correlation_id else None
        if pending is None or pending.future.done():
            self._stats["unpaired_responses"] += 1
        else:
            pending.future.set_result(response)
