"""Calls as a tap sees them: a request paired with its delivery and its response.

The pending map (correlation id -> call still waiting) is bounded twice: at most
``max_pending`` entries (the oldest given up first) and at most ``pending_ttl`` seconds each.
It is an OrderedDict: taking the oldest is O(1) however many were removed before (a plain
dict used as a queue scans past its deleted slots).
"""

from __future__ import annotations

import collections
from typing import Any

__all__ = ["CALL_COLUMNS", "Call", "Calls"]

#: a row of ``tap.calls``, one per request or command
CALL_COLUMNS = (
    "started",
    "kind",
    "caller",
    "service",
    "method",
    "latency_ms",  # request published -> response published (the firehose only)
    "queued_ms",  # request published -> delivered to the service
    "in_service_ms",  # delivered -> response published
    "ok",  # True / False from the response; None when unknown (no response, encrypted)
    "error",  # the error class of a failed call
    "trace_id",
    "correlation_id",
    "encrypted",
    "answered",  # a response was seen
)


class Call:
    """One request or command and what became of it (times are ``time.time()`` seconds)."""

    __slots__ = (
        "answered",
        "caller",
        "correlation_id",
        "delivered",
        "encrypted",
        "error",
        "kind",
        "method",
        "ok",
        "service",
        "started",
        "trace_id",
    )

    def __init__(
        self,
        correlation_id: str,
        kind: str,
        caller: str | None,
        service: str | None,
        method: str | None,
        trace_id: str | None,
        started: float,
        encrypted: bool,
    ) -> None:
        self.correlation_id = correlation_id
        self.kind = kind
        self.caller = caller
        self.service = service
        self.method = method
        self.trace_id = trace_id
        self.started = started
        self.encrypted = encrypted
        self.delivered: float | None = None
        self.answered: float | None = None
        self.ok: bool | None = None
        self.error: str | None = None

    def row(self) -> tuple[Any, ...]:
        """The call as a row of :data:`CALL_COLUMNS`."""
        started, delivered, answered = self.started, self.delivered, self.answered
        return (
            started,
            self.kind,
            self.caller,
            self.service,
            self.method,
            None if answered is None else (answered - started) * 1000,
            None if delivered is None else (delivered - started) * 1000,
            None if answered is None or delivered is None else (answered - delivered) * 1000,
            self.ok,
            self.error,
            self.trace_id,
            self.correlation_id,
            self.encrypted,
            answered is not None,
        )

    def __repr__(self) -> str:
        return f"<Call {self.caller}->{self.service}.{self.method} {self.correlation_id}>"


class Calls:
    """The newest ``max_calls`` calls, and the requests waiting for their responses."""

    def __init__(self, max_calls: int, max_pending: int, pending_ttl: float) -> None:
        self.ring: collections.deque[Call] = collections.deque(maxlen=max_calls)
        self.pending: collections.OrderedDict[str, Call] = collections.OrderedDict()
        self.max_pending = max_pending
        self.pending_ttl = pending_ttl
        self.unpaired = 0  # responses with no request waiting (late, duplicate, or unseen)
        self.expired = 0  # requests given up after pending_ttl without a response
        self.evicted = 0  # requests given up because the pending map was full

    def add(self, call: Call, waits: bool) -> None:
        self.ring.append(call)
        if waits:
            pending = self.pending
            pending[call.correlation_id] = call
            if len(pending) > self.max_pending:
                pending.popitem(last=False)
                self.evicted += 1

    def answered(self, correlation_id: str, at: float) -> Call | None:
        call = self.pending.pop(correlation_id, None)
        if call is not None:
            call.answered = at
        return call

    def expire(self, now: float) -> None:
        pending = self.pending
        if not pending:
            return
        limit = now - self.pending_ttl
        while pending:
            oldest = next(iter(pending.values()))
            if oldest.started > limit:
                return
            pending.popitem(last=False)
            self.expired += 1

    def rows(self) -> list[tuple[Any, ...]]:
        return [call.row() for call in self.ring]

    def clear(self) -> None:
        self.ring.clear()
        self.pending.clear()
