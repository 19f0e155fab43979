"""Replay: send a request again, as a tap captured it or as it lies in the dead-letter queue,
with edits, and get its answer."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pamqp import commands as spec

from ...mesh import codec
from ...mesh.errors import NuropbMessageError
from ..calls import Calls
from ..connections import Connections
from ..dead_letters import dead_letter_queue, read_dead_letters
from ..errors import LabError, RedactedReplay
from ..redact import Redaction, Redactor, marked
from .capture import COLUMNS
from .taps import Taps

__all__ = ["Replay", "Replayable"]

DLQ_LOOK = 1000  # dead letters looked through for a correlation id


@dataclasses.dataclass
class Replayable:
    """What is sent again."""

    kind: str  # "request" or "command"
    service: str
    method: str
    params: dict[str, Any]
    context: dict[str, Any]
    trace_id: str | None
    source: str


def _from_row(row: Mapping[str, Any], source: str) -> Replayable:
    """A captured request (a row of ``tap.df``)."""
    kind = row.get("kind")
    if kind not in ("request", "command"):
        raise LabError(f"only a request or a command can be replayed, not a {kind}")
    if row.get("encrypted"):
        raise LabError(
            "that request was encrypted: its params were never seen, so it cannot be replayed"
        )
    if row.get("truncated"):
        raise LabError(
            "that request was kept as a preview only (a field over its limit: params over the"
            " tap's body_limit, or its method or context): tap again with a larger body_limit"
            " to replay it, or replay it from the dead-letter queue"
        )
    params = row.get("payload")
    if not isinstance(params, dict) or not row.get("method") or not row.get("service"):
        raise LabError("that row holds no request to replay (no params, method or service)")
    context = row.get("context")
    trace_id = row.get("trace_id")
    return Replayable(
        str(kind),
        str(row["service"]),
        str(row["method"]),
        dict(params),
        dict(context) if isinstance(context, dict) else {},
        trace_id if isinstance(trace_id, str) else None,
        source,
    )


def _in_taps(taps: Taps, correlation_id: str) -> Replayable | None:
    for made in taps.made():
        for row in reversed(made.snapshot()):
            if row[6] == correlation_id and row[1] in ("request", "command"):
                return _from_row(dict(zip(COLUMNS, row, strict=True)), "tap")
    return None


async def _in_dead_letters(
    connections: Connections, correlation_id: str, alias: str | None, redact: Redactor
) -> Replayable:
    connection = connections.connection(alias)
    queue = await dead_letter_queue(connection.api, connection.management)
    messages = await read_dead_letters(connection.api, queue, DLQ_LOOK, consume=False)
    for message in messages:
        properties = message.header.properties
        if properties.correlation_id != correlation_id:
            continue
        headers = dict(properties.headers or {})
        if headers.get("encrypted") in ("yes", b"yes"):
            raise LabError("that dead letter is encrypted: its params cannot be read to replay")
        try:
            body = codec.decode_json(message.body)
        except NuropbMessageError as exc:
            raise LabError(f"that dead letter cannot be replayed: {exc.description}") from None
        if not isinstance(body, dict):
            raise LabError("that dead letter's body is not a request")
        body = redact.raw(message.body, body)[0]  # as lab.dead_letters() shows it
        delivery = message.delivery
        service = body.get("service") or (
            delivery.routing_key if isinstance(delivery, spec.Basic.GetOk) else None
        )
        row = {
            "kind": headers.get("nuropb_type"),
            "service": service,
            "method": body.get("method"),
            "payload": body.get("params"),
            "context": body.get("context"),
            "trace_id": body.get("trace_id"),
            "encrypted": False,
            "truncated": False,
        }
        return _from_row(row, "dead letter")
    raise LabError(
        f"no request with correlation id {correlation_id!r} in this Lab's taps or among the"
        f" first {DLQ_LOOK} dead letters"
    )


class Replay:
    """Sending again what a tap captured or the dead-letter queue holds, edited."""

    def __init__(
        self, connections: Connections, calls: Calls, taps: Taps, redaction: Redaction
    ) -> None:
        self._connections = connections
        self._calls = calls
        self._taps = taps
        self._redaction = redaction

    async def _dead_letter(self, correlation_id: str, alias: str | None) -> Replayable:
        return await _in_dead_letters(
            self._connections, correlation_id, alias, self._redaction.current
        )

    async def find(self, row: Any, alias: str | None) -> Replayable:
        """The request ``row`` stands for: a row of ``tap.df``, ``tap.calls`` or
        ``lab.dead_letters()`` (a pandas Series or a dict), or a correlation id."""
        if isinstance(row, str):
            return _in_taps(self._taps, row) or await self._dead_letter(row, alias)
        if hasattr(row, "to_dict"):
            row = row.to_dict()
        if not isinstance(row, Mapping):
            raise LabError(f"replay takes a row of tap.df or lab.dead_letters(), not {type(row)}")
        correlation_id = row.get("correlation_id")
        if "payload" in row:
            return _from_row(row, "tap")
        if not isinstance(correlation_id, str):
            raise LabError("that row has no correlation id to find its request by")
        if "nuropb_type" in row:  # a dead letter: its body in the row is cut short, so read it
            return await self._dead_letter(correlation_id, alias)
        return _in_taps(self._taps, correlation_id) or await self._dead_letter(
            correlation_id, alias
        )

    async def replay(
        self,
        /,
        row: Any,
        edits: dict[str, Any] | None = None,
        *,
        target: str | None = None,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        timeout: float | None = None,
        alias: str | None = None,
        **params: Any,
    ) -> Any:
        """Send a captured request (a row of ``tap.df`` or ``tap.calls``, a dead letter of
        ``lab.dead_letters()``, or a correlation id) again, its params updated with ``edits`` and
        keyword arguments, and return the answer (None for a command). ``target``
        ("service.method"), ``context`` and ``trace_id`` replace the original's. Encrypted
        requests cannot be replayed: their params were never seen. Nor is a redacted value sent
        (it was someone's credential, redact.py): a request with one is refused unless
        ``context`` and the params redacted are given anew."""
        self._connections.may_send(self._connections.connection(alias), "a replay")
        found = await self.find(row, alias)
        merged = {**found.params, **(edits or {}), **params}
        _refuse_redacted(found, merged, context)
        where = target or f"{found.service}.{found.method}"
        ctx = found.context if context is None else context
        tid = found.trace_id if trace_id is None else trace_id
        if found.kind == "command":
            await self._calls.command(
                where, merged, timeout=timeout, context=ctx, trace_id=tid, alias=alias
            )
            return None
        return await self._calls.call(
            where, merged, timeout=timeout, context=ctx, trace_id=tid, alias=alias
        )


def _refuse_redacted(
    found: Replayable, merged: dict[str, Any], context: dict[str, Any] | None
) -> None:
    """RedactedReplay, naming the fields, when the request would go out with the marker in
    place of a credential: in a param not given anew, or in a context not replaced."""
    fields = marked(merged, "params")
    if context is None:
        fields += marked(found.context, "context")
    if not fields:
        return
    asks = []
    if any(f.startswith("context") for f in fields):
        asks.append("context={...}")
    names = sorted({f.split(".")[1].split("[")[0] for f in fields if f.startswith("params.")})
    asks += [f"{name}=..." for name in names]
    raise RedactedReplay(
        f"that request's {', '.join(fields)} were redacted (someone's credentials): replay it"
        f" with your own, e.g. lab.replay(row, {', '.join(asks)})"
    )
