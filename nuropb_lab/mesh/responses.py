"""Requests waiting for their responses, by correlation id.

A response pairs with its waiting request here, in the consumer's call (nothing awaits), so
the request resumes a loop iteration sooner. Responses that pair with nothing are counted, not
raised: those of requests that ended already (a duplicate, or one after its ttl) under their
own stat, the rest as unpaired.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Final

from aiormq.abc import DeliveredMessage

from . import codec, crypto
from .codec import DecodeLimits
from .errors import NuropbException, NuropbMessageError

__all__ = ["Pending", "Responses", "expire"]

log = logging.getLogger(__name__)

_RECENT: Final = 4096  # ended correlation ids kept to tell duplicates from strays


def expire(future: asyncio.Future[Any]) -> None:
    """A timer's end of a wait (cheaper than a timeout scope per request)."""
    if not future.done():
        future.set_exception(TimeoutError())


class Pending:
    __slots__ = ("fernet_key", "future", "payload")

    def __init__(
        self,
        future: asyncio.Future[dict[str, Any]],
        fernet_key: bytes | None,
        payload: dict[str, Any],
    ) -> None:
        self.future = future
        self.fernet_key = fernet_key
        self.payload = payload


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
        pending = self.waiting.pop(correlation_id, None) if correlation_id else None
        if correlation_id is None or pending is None or pending.future.done():
            kind = self._recent.get(correlation_id or "", "unpaired_responses")
            self._stats[kind] += 1
            log.debug("ignoring a response counted as %s: %s", kind, correlation_id)
            return
        self.ended(correlation_id, "duplicate_responses")
        self._stats["responses"] += 1
        try:
            nuropb_type, encrypted = codec.check_headers(properties.headers)
            if nuropb_type != "response":
                raise NuropbMessageError(f"expected a response, got a {nuropb_type}")
            body = message.body
            if encrypted:
                if pending.fernet_key is None:
                    raise NuropbMessageError("encrypted response to a plaintext request")
                body = crypto.decrypt_with_key(body, pending.fernet_key)
            response = codec.check_body("response", codec.decode_json(body, self._limits))
        except NuropbException as exc:
            pending.future.set_exception(exc)
            return
        pending.future.set_result(response)

    def complete(self, correlation_id: str | None, response: dict[str, Any]) -> None:
        """A response decoded elsewhere (nuropb's transport entry point)."""
        pending = self.waiting.pop(correlation_id, None) if correlation_id else None
        if pending is None or pending.future.done():
            self._stats["unpaired_responses"] += 1
        else:
            pending.future.set_result(response)
