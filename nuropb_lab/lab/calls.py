"""The Lab's calls: requests and commands with their history, events published."""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..mesh.errors import remote_error
from .connections import Connections, split_target
from .describing import Describing
from .errors import LabError
from .history import CallRecord, History
from .params import check_params
from .redact import Redaction
from .settings import Settings, positive_seconds

__all__ = ["Calls"]


class Calls:
    """Calls (requests) and commands, checked against the method's description first and
    encrypted when it requires (or when that cannot be told and the service's key is pinned;
    without one such a call is refused, see mesh/descriptions.py), each recorded in the
    history; events published."""

    def __init__(
        self,
        connections: Connections,
        describing: Describing,
        settings: Settings,
        history: History,
        redaction: Redaction,
    ) -> None:
        self._connections = connections
        self._describing = describing
        self._settings = settings
        self._history = history
        self._redaction = redaction

    async def _send(
        self,
        kind: str,
        target: str,
        params: dict[str, Any],
        timeout: float | None,
        encrypt: bool | None,
        context: dict[str, Any] | None,
        trace_id: str | None,
        raw: bool,
        alias: str | None,
        check: bool = True,
    ) -> Any:
        """A request (``kind`` "call") or a command, recorded in the history. ``check``: the
        params are checked against the method's description first (see params.py)."""
        connection = self._connections.connection(alias)
        self._connections.may_send(connection, f"a {kind}")
        service, method = split_target(target)
        if not isinstance(params, dict):
            raise LabError(f"params must be a JSON object (dict), not {type(params).__name__}")
        if context is not None and not isinstance(context, dict):
            raise LabError(f"context must be a JSON object (dict), not {type(context).__name__}")
        timeout = (
            self._settings.timeout if timeout is None else positive_seconds("timeout", timeout)
        )
        description = await self._describing.checked_against(connection, service, timeout)
        if check and description is not None:
            await check_params(
                description,
                service,
                method,
                params,
                refresh=lambda: self._describing.description(service, refresh=True, alias=alias),
            )
        encrypted, note = connection.api.descriptions.decide(service, method, encrypt)
        connection.known.add(service)
        ttl = int(timeout * 1000)
        correlation_id = uuid.uuid4().hex if kind == "call" else None
        started = time.perf_counter()
        error: BaseException | None = None
        result: Any = None
        try:
            if kind == "command":
                await connection.api.command(
                    service,
                    method,
                    params,
                    context or {},
                    ttl=ttl,
                    trace_id=trace_id,
                    encrypted=encrypted,
                )
            else:
                result = await connection.api.request(
                    service,
                    method,
                    params,
                    context or {},
                    ttl=ttl,
                    trace_id=trace_id,
                    rpc_response=not raw,
                    encrypted=encrypted,
                    correlation_id=correlation_id,
                )
                if raw and isinstance(result, dict) and result.get("error"):
                    error = remote_error(result["error"])
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:  # every call lands in the history, interrupted ones too
            finished = time.perf_counter()
            self._history.add(
                CallRecord.make(
                    connection.alias,
                    kind,
                    service,
                    method,
                    params,
                    started,
                    finished,
                    error,
                    encrypted,
                    trace_id,
                    correlation_id,
                    note,
                    self._redaction.current,
                )
            )

    async def call(
        self,
        /,
        target: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        encrypt: bool | None = None,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        raw: bool = False,
        alias: str | None = None,
        check: bool = True,
        **kwparams: Any,
    ) -> Any:
        """Call ``"service.method"`` with ``params`` (and/or keyword arguments); wait at most
        ``timeout`` s. Encrypts when the method requires it (``encrypt=True`` always,
        ``encrypt=False`` refuses such a method, and sends in plaintext one whose requirement
        cannot be told, saying so in the history). ``raw`` returns the whole response.
        ``check=False`` sends params that do not fit the method's description."""
        merged = {**(params or {}), **kwparams}
        return await self._send(
            "call", target, merged, timeout, encrypt, context, trace_id, raw, alias, check
        )

    async def command(
        self,
        /,
        target: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        encrypt: bool | None = None,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        alias: str | None = None,
        check: bool = True,
        **kwparams: Any,
    ) -> None:
        """Send a command (no response); returns once the broker has routed it."""
        merged = {**(params or {}), **kwparams}
        await self._send(
            "command", target, merged, timeout, encrypt, context, trace_id, False, alias, check
        )

    async def publish(
        self,
        topic: str,
        event: Any,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        alias: str | None = None,
    ) -> None:
        """Publish an event on ``topic``."""
        connection = self._connections.connection(alias)
        self._connections.may_send(connection, "publishing an event")
        if not topic:
            raise LabError("publish needs a topic")
        await connection.api.publish_event(topic, event, context or {}, trace_id=trace_id)
