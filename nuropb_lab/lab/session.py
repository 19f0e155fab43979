"""Lab: the plain-Python session that the magic and the widgets share.

Named connections to meshes, discovery, calls with their history, tails, keys and served
objects. Every method is synchronous (it waits, at most its timeout, for work done on the
Lab's background loop) and has an async twin prefixed with ``a`` for top-level ``await``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import pandas as pd

from ..mesh import RMQAPI, ManagementAPI, configure_mesh, parse_amqp_url
from ..mesh.errors import NuropbException
from ..mesh.urls import AmqpTarget
from .dead_letters import dead_letter_rows, read_dead_letters
from .discovery import ServiceInfo, discover
from .history import CallRecord, History
from .keys import key_row, keys_frame
from .runner import LoopRunner
from .tail import Tail

__all__ = ["DEFAULT_URL", "Connection", "Lab", "LabError", "get_lab"]

log = logging.getLogger(__name__)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/nuropb-demo"
DESCRIBE_RETRY_S = 30.0
T = TypeVar("T")

SERVICE_COLUMNS = [
    "service",
    "instances",
    "queued",
    "methods",
    "encrypted",
    "version",
    "description",
    "error",
]
DESCRIBE_COLUMNS = [
    "method",
    "parameter",
    "type",
    "required",
    "default",
    "requires_encryption",
    "description",
]
STATUS_COLUMNS = [
    "alias",
    "current",
    "url",
    "mesh",
    "state",
    "reconnects",
    "in_flight",
    "served",
    "tails",
    "last_error",
]


class LabError(Exception):
    """A usage error in the Lab (unknown alias, malformed target, refused option)."""


@dataclasses.dataclass(eq=False)
class Connection:
    """One named connection to a mesh: a client API, and what the Lab did through it."""

    alias: str
    api: RMQAPI
    management: ManagementAPI
    served: dict[str, RMQAPI] = dataclasses.field(default_factory=dict)
    tails: list[Tail] = dataclasses.field(default_factory=list)
    known: set[str] = dataclasses.field(default_factory=set)  # services named or called
    services: dict[str, ServiceInfo] = dataclasses.field(default_factory=dict)
    fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)
    # services whose describe failed -> when to ask again (time.monotonic())
    undescribable: dict[str, float] = dataclasses.field(default_factory=dict)
    notice_shown: bool = False

    @property
    def url(self) -> str:
        return self.api.target.masked

    @property
    def mesh(self) -> str:
        return self.api.mesh_name

    def __repr__(self) -> str:
        return f"<Connection {self.alias!r} {self.url} ({self.api.transport.state})>"


def split_target(target: str, method: str | None = None) -> tuple[str, str]:
    """``"service.method"`` (the service name may itself hold dots) -> (service, method)."""
    if method is not None:
        return target, method
    service, dot, name = target.rpartition(".")
    if not dot or not service or not name:
        raise LabError(f"target must look like SERVICE.METHOD, got {target!r}")
    return service, name


class Lab:
    """A notebook's session on one or more nuropb meshes."""

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        describe_timeout: float = 2.0,
        tail_max_rows: int = 10_000,
        history_size: int = 10_000,
        management_url: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.describe_timeout = describe_timeout
        self.tail_max_rows = tail_max_rows
        self.management_url = management_url
        self._history = History(history_size)
        # The transport reports a lost connection in one line; aiormq's own record of it
        # (an error with a traceback) would fill the notebook during every broker restart.
        logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
        self._runner = LoopRunner()
        self._connections: dict[str, Connection] = {}
        self._current: str | None = None

    def __repr__(self) -> str:
        aliases = ", ".join(f"{a}{'*' if a == self._current else ''}" for a in self._connections)
        return f"<Lab connections=[{aliases}]>"

    # --- running work on the Lab loop -----------------------------------------------------

    @property
    def runner(self) -> LoopRunner:
        return self._runner

    def _wait(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        # The mesh bounds each operation itself; this outer bound is a backstop.
        return self._runner.run(coro, (timeout or self.timeout) + 10.0)

    # --- connections ----------------------------------------------------------------------

    def connection(self, alias: str | None = None) -> Connection:
        """The named connection, or the current one."""
        name = alias or self._current
        if name is None:
            raise LabError("not connected: run `%nuropb connect [URL]` (or lab.connect(url)) first")
        try:
            return self._connections[name]
        except KeyError:
            known = ", ".join(self._connections) or "none"
            raise LabError(f"no connection named {name!r} (connections: {known})") from None

    @property
    def connections(self) -> dict[str, Connection]:
        return dict(self._connections)

    @property
    def current(self) -> str | None:
        return self._current

    def use(self, alias: str) -> Connection:
        """Make ``alias`` the current connection."""
        connection = self.connection(alias)
        self._current = alias
        return connection

    async def _aconnect(
        self,
        url: str | Mapping[str, Any] | None,
        alias: str | None,
        configure: bool,
        management_url: str | None,
    ) -> Connection:
        target = parse_amqp_url(url or os.environ.get("NUROPB_AMQP_URL") or DEFAULT_URL)
        alias = alias or target.vhost
        if alias in self._connections:
            raise LabError(
                f"connection {alias!r} exists; disconnect it first or pass another --alias"
            )
        if configure:
            await configure_mesh(target, management_url=management_url or self.management_url)
        api = RMQAPI(target, transport_settings={"default_ttl": int(self.timeout * 1000)})
        await api.connect()
        management = ManagementAPI.for_target(target, management_url or self.management_url)
        connection = Connection(alias, api, management)
        self._connections[alias] = connection
        self._current = alias
        return connection

    def connect(
        self,
        url: str | Mapping[str, Any] | None = None,
        alias: str | None = None,
        *,
        configure: bool = False,
        management_url: str | None = None,
    ) -> Connection:
        """Connect to a mesh (URL default: $NUROPB_AMQP_URL, else the demo mesh) as ``alias``
        (default: the mesh name), and make it current. ``configure`` creates the mesh."""
        return self._wait(self._aconnect(url, alias, configure, management_url))

    async def aconnect(
        self,
        url: str | Mapping[str, Any] | None = None,
        alias: str | None = None,
        *,
        configure: bool = False,
        management_url: str | None = None,
    ) -> Connection:
        return await self._runner.run_async(self._aconnect(url, alias, configure, management_url))

    async def _adisconnect(self, connection: Connection) -> None:
        for tail in list(connection.tails):
            await self._astop_tail(connection, tail)
        for api in list(connection.served.values()):
            await api.disconnect()
        connection.served.clear()
        await connection.api.disconnect()

    def _forget(self, aliases: list[str]) -> None:
        for alias in aliases:
            self._connections.pop(alias, None)
        if self._current not in self._connections:
            self._current = next(reversed(self._connections), None) if self._connections else None

    def disconnect(self, alias: str | None = None, all: bool = False) -> list[str]:
        """Close a connection (default: the current one) or ``all``, with their tails and
        served objects. Returns the aliases closed."""
        targets = list(self._connections.values()) if all else [self.connection(alias)]

        async def close_all() -> None:
            for connection in targets:
                await self._adisconnect(connection)

        self._wait(close_all())
        self._forget([c.alias for c in targets])
        return [c.alias for c in targets]

    async def adisconnect(self, alias: str | None = None, all: bool = False) -> list[str]:
        targets = list(self._connections.values()) if all else [self.connection(alias)]
        for connection in targets:
            await self._runner.run_async(self._adisconnect(connection))
        self._forget([c.alias for c in targets])
        return [c.alias for c in targets]

    def close(self) -> None:
        """Disconnect everything and stop the Lab's loop."""
        if self._connections:
            self.disconnect(all=True)
        self._runner.stop()

    def status(self) -> pd.DataFrame:
        rows = []
        for alias, c in self._connections.items():
            transport = c.api.transport
            rows.append(
                [
                    alias,
                    alias == self._current,
                    c.url,
                    c.mesh,
                    transport.state,
                    transport.reconnects,
                    c.api.in_flight,
                    ", ".join(c.served),
                    len([t for t in c.tails if not t.stopped]),
                    transport.last_error,
                ]
            )
        return pd.DataFrame(rows, columns=STATUS_COLUMNS)

    # --- discovery ------------------------------------------------------------------------

    async def _aservices(self, alias: str | None, names: list[str] | None) -> pd.DataFrame:
        connection = self.connection(alias)
        connection.known.update(names or [])
        infos, notice = await discover(
            connection.api,
            connection.management,
            connection.known,
            describe_ttl_ms=int(self.describe_timeout * 1000),
        )
        connection.services = {info.service: info for info in infos}
        rows = [
            [
                i.service,
                i.instances,
                i.queued,
                len(i.methods) if i.description else None,
                i.encrypted,
                i.version,
                i.summary,
                i.error,
            ]
            for i in infos
        ]
        frame = pd.DataFrame(rows, columns=SERVICE_COLUMNS)
        if notice and not connection.notice_shown:
            connection.notice_shown = True
            frame.attrs["notice"] = notice
        return frame

    def services(self, alias: str | None = None, names: list[str] | None = None) -> pd.DataFrame:
        """Every service on the mesh: instances, queued messages, methods, encrypted, version,
        description, and the error of one that did not answer. ``names`` adds services to
        probe when the management API is off."""
        return self._wait(self._aservices(alias, names))

    async def aservices(
        self, alias: str | None = None, names: list[str] | None = None
    ) -> pd.DataFrame:
        return await self._runner.run_async(self._aservices(alias, names))

    def start_services(self, alias: str | None = None) -> concurrent.futures.Future[pd.DataFrame]:
        """Like :meth:`services`, without waiting (for widgets)."""
        return self._runner.submit(self._aservices(alias, None))

    def cached_services(self, alias: str | None = None) -> dict[str, ServiceInfo]:
        """The last discovery's services, without I/O."""
        try:
            return dict(self.connection(alias).services)
        except LabError:
            return {}

    def service_names(self, alias: str | None = None) -> list[str]:
        """Known service names, without I/O (for completion)."""
        try:
            connection = self.connection(alias)
        except LabError:
            return []
        return sorted(set(connection.services) | connection.known)

    def method_names(self, service: str, alias: str | None = None) -> list[str]:
        """Known method names of ``service``, without I/O (for completion)."""
        try:
            connection = self.connection(alias)
        except LabError:
            return []
        description = connection.api.cached_description(service) or {}
        return sorted(description.get("methods") or {})

    async def _adescription(self, service: str, refresh: bool, alias: str | None) -> dict[str, Any]:
        connection = self.connection(alias)
        connection.known.add(service)
        return await connection.api.describe_service(
            service, refresh=refresh, ttl=int(self.describe_timeout * 1000)
        )

    async def _adescribe(
        self, service: str, method: str | None, refresh: bool, alias: str | None
    ) -> pd.DataFrame:
        description = await self._adescription(service, refresh, alias)
        methods = description.get("methods") or {}
        if method is not None and method not in methods:
            raise LabError(
                f"{service} has no method {method!r} (methods: {', '.join(sorted(methods))})"
            )
        rows: list[list[Any]] = []
        for name in sorted(methods) if method is None else [method]:
            spec = methods[name] or {}
            parameters = spec.get("parameters") or {}
            required = set(parameters.get("required") or [])
            properties = parameters.get("properties") or []
            if isinstance(properties, dict):  # tolerate the JSON-schema shape too
                properties = list(properties.items())
            encrypted = bool(spec.get("requires_encryption"))
            if not properties:
                rows.append([name, None, None, None, None, encrypted, spec.get("description")])
            for param, pspec in properties:
                pspec = pspec or {}
                rows.append(
                    [
                        name,
                        param,
                        pspec.get("type") or "",
                        param in required,
                        None if param in required else pspec.get("default"),
                        encrypted,
                        spec.get("description"),
                    ]
                )
        frame = pd.DataFrame(rows, columns=DESCRIBE_COLUMNS)
        # defaults keep their JSON types (2 is not "2"; None is not NaN)
        frame["default"] = pd.Series([r[4] for r in rows], dtype=object)
        frame.attrs.update(
            service=service,
            version=description.get("service_version"),
            description=description.get("description"),
        )
        return frame

    def describe(
        self,
        service: str,
        method: str | None = None,
        refresh: bool = False,
        alias: str | None = None,
    ) -> pd.DataFrame:
        """A service's methods and parameters (one row per parameter), with encryption."""
        return self._wait(self._adescribe(service, method, refresh, alias))

    async def adescribe(
        self,
        service: str,
        method: str | None = None,
        refresh: bool = False,
        alias: str | None = None,
    ) -> pd.DataFrame:
        return await self._runner.run_async(self._adescribe(service, method, refresh, alias))

    def description(
        self, service: str, refresh: bool = False, alias: str | None = None
    ) -> dict[str, Any]:
        """The raw ``nuropb_describe`` answer."""
        return self._wait(self._adescription(service, refresh, alias))

    # --- calls ------------------------------------------------------------------------------

    async def _requires_encryption(
        self, connection: Connection, service: str, method: str, timeout: float
    ) -> bool | None:
        """Whether the method needs encryption, from its (cached) description; None when the
        service cannot say. A failed describe is not asked again for a while, so calls to a
        service that cannot describe itself do not each wait for it first."""
        description = connection.api.cached_description(service)
        if description is None:
            if time.monotonic() < connection.undescribable.get(service, 0.0):
                return None
            try:
                description = await connection.api.describe_service(
                    service, ttl=int(min(self.describe_timeout, timeout) * 1000)
                )
            except NuropbException:
                connection.undescribable[service] = time.monotonic() + DESCRIBE_RETRY_S
                return None
        spec = (description.get("methods") or {}).get(method)
        return None if spec is None else bool(spec.get("requires_encryption"))

    async def _acall(
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
    ) -> Any:
        connection = self.connection(alias)
        service, method = split_target(target)
        if not isinstance(params, dict):
            raise LabError(f"params must be a JSON object (dict), not {type(params).__name__}")
        if context is not None and not isinstance(context, dict):
            raise LabError(f"context must be a JSON object (dict), not {type(context).__name__}")
        encrypted = bool(encrypt)
        if not encrypt:
            needs = await self._requires_encryption(
                connection, service, method, timeout or self.timeout
            )
            if needs and encrypt is False:
                raise LabError(
                    f"{service}.{method} requires encryption; a plaintext call is refused"
                )
            encrypted = bool(needs)
        connection.known.add(service)
        ttl = int((timeout or self.timeout) * 1000)
        correlation_id = uuid.uuid4().hex
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
                    error = NuropbException(str((result["error"] or {}).get("description")))
                    error.remote_name = (result["error"] or {}).get("error")
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:  # every call lands in the history, interrupted ones too
            self._history.add(
                CallRecord.make(
                    connection.alias,
                    kind,
                    service,
                    method,
                    params,
                    started,
                    time.perf_counter(),
                    error,
                    encrypted,
                    trace_id,
                    correlation_id if kind == "call" else None,
                )
            )

    def call(
        self,
        target: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        encrypt: bool | None = None,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        raw: bool = False,
        alias: str | None = None,
        **kwparams: Any,
    ) -> Any:
        """Call ``"service.method"`` with ``params`` (and/or keyword arguments); wait at most
        ``timeout`` s. Encrypts when the method requires it (``encrypt=True`` always,
        ``encrypt=False`` refuses such a method). ``raw`` returns the whole response."""
        merged = {**(params or {}), **kwparams}
        coro = self._acall("call", target, merged, timeout, encrypt, context, trace_id, raw, alias)
        return self._wait(coro, timeout)

    async def acall(
        self,
        target: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        encrypt: bool | None = None,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        raw: bool = False,
        alias: str | None = None,
        **kwparams: Any,
    ) -> Any:
        merged = {**(params or {}), **kwparams}
        coro = self._acall("call", target, merged, timeout, encrypt, context, trace_id, raw, alias)
        return await self._runner.run_async(coro)

    def start_call(
        self,
        target: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        encrypt: bool | None = None,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        raw: bool = False,
        alias: str | None = None,
    ) -> concurrent.futures.Future[Any]:
        """Like :meth:`call`, without waiting: the future ends with the result (for widgets)."""
        coro = self._acall(
            "call", target, dict(params or {}), timeout, encrypt, context, trace_id, raw, alias
        )
        return self._runner.submit(coro)

    def command(
        self,
        target: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        encrypt: bool | None = None,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        alias: str | None = None,
        **kwparams: Any,
    ) -> None:
        """Send a command (no response); returns once the broker has routed it."""
        merged = {**(params or {}), **kwparams}
        coro = self._acall(
            "command", target, merged, timeout, encrypt, context, trace_id, False, alias
        )
        self._wait(coro, timeout)

    async def acommand(
        self,
        target: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        encrypt: bool | None = None,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        alias: str | None = None,
        **kwparams: Any,
    ) -> None:
        merged = {**(params or {}), **kwparams}
        coro = self._acall(
            "command", target, merged, timeout, encrypt, context, trace_id, False, alias
        )
        await self._runner.run_async(coro)

    async def _apublish(
        self,
        topic: str,
        event: Any,
        context: dict[str, Any] | None,
        trace_id: str | None,
        alias: str | None,
    ) -> None:
        if not topic:
            raise LabError("publish needs a topic")
        await self.connection(alias).api.publish_event(
            topic, event, context or {}, trace_id=trace_id
        )

    def publish(
        self,
        topic: str,
        event: Any,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        alias: str | None = None,
    ) -> None:
        """Publish an event on ``topic``."""
        self._wait(self._apublish(topic, event, context, trace_id, alias))

    async def apublish(
        self,
        topic: str,
        event: Any,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        alias: str | None = None,
    ) -> None:
        await self._runner.run_async(self._apublish(topic, event, context, trace_id, alias))

    def history(self, n: int | None = None) -> pd.DataFrame:
        """The calls made in this session (newest last)."""
        return self._history.frame(n)

    @property
    def call_records(self) -> list[CallRecord]:
        return self._history.records()

    # --- tails ------------------------------------------------------------------------------

    async def _atail(
        self, patterns: tuple[str, ...], max_rows: int | None, alias: str | None
    ) -> Tail:
        connection = self.connection(alias)
        tail = Tail(
            list(patterns) or ["#"],
            max_rows or self.tail_max_rows,
            connection.alias,
            stopper=lambda t: self._stop_tail_soon(connection, t),
            runner=self._runner,
        )
        tail.subscription = await connection.api.subscribe(
            tail.patterns, tail.on_event, max_length=max(tail.max_rows, 1000)
        )
        connection.tails.append(tail)
        return tail

    def tail(self, *patterns: str, max_rows: int | None = None, alias: str | None = None) -> Tail:
        """Start a live tail of events matching ``patterns`` (default ``#``: all)."""
        return self._wait(self._atail(patterns, max_rows, alias))

    async def atail(
        self, *patterns: str, max_rows: int | None = None, alias: str | None = None
    ) -> Tail:
        return await self._runner.run_async(self._atail(patterns, max_rows, alias))

    async def _astop_tail(self, connection: Connection, tail: Tail) -> None:
        if tail in connection.tails:
            connection.tails.remove(tail)
        tail._stopped = True
        if tail.subscription is not None:
            try:
                await connection.api.unsubscribe(tail.subscription)
            except NuropbException as exc:
                log.info("could not delete the tail's queue: %s", exc)

    def _stop_tail_soon(self, connection: Connection, tail: Tail) -> None:
        coro = self._astop_tail(connection, tail)
        if self._runner.in_loop_thread():
            self._runner.loop.create_task(coro)
        else:
            self._wait(coro)

    @property
    def tails(self) -> list[Tail]:
        return [t for c in self._connections.values() for t in c.tails]

    # --- dead letters ---------------------------------------------------------------------

    async def _adead_letters(self, limit: int, consume: bool, alias: str | None) -> pd.DataFrame:
        messages = await read_dead_letters(self.connection(alias).api, limit, consume)
        return dead_letter_rows(messages, self._history.records())

    def dead_letters(
        self, limit: int = 50, consume: bool = False, alias: str | None = None
    ) -> pd.DataFrame:
        """What was rejected to the mesh's dead-letter queue, and why (the broker's reason;
        the error, for a call of this session). Read without consuming unless ``consume``."""
        return self._wait(self._adead_letters(limit, consume, alias))

    async def adead_letters(
        self, limit: int = 50, consume: bool = False, alias: str | None = None
    ) -> pd.DataFrame:
        return await self._runner.run_async(self._adead_letters(limit, consume, alias))

    # --- keys -------------------------------------------------------------------------------

    async def _akeys(self, service: str | None, alias: str | None) -> pd.DataFrame:
        connection = self.connection(alias)
        if service is not None:
            services = [service]
        else:
            if not connection.services:
                await self._aservices(alias, None)
            services = sorted(connection.services)
        records = self._history.records()
        rows = []
        for name in services:
            try:
                description = await self._adescription(name, refresh=True, alias=alias)
            except NuropbException as exc:
                row = key_row(name, None, records)
                row["warnings"] = [f"no description: {type(exc).__name__}: {exc}"]
                rows.append(row)
                continue
            row = key_row(name, description, records, connection.fingerprints.get(name))
            if row["fingerprint"]:
                connection.fingerprints[name] = row["fingerprint"]
            rows.append(row)
        return keys_frame(rows)

    def start_keys(
        self, service: str | None = None, alias: str | None = None
    ) -> concurrent.futures.Future[pd.DataFrame]:
        """Like :meth:`keys`, without waiting (for widgets)."""
        return self._runner.submit(self._akeys(service, alias))

    def keys(self, service: str | None = None, alias: str | None = None) -> pd.DataFrame:
        """Encryption status per service: key present, fingerprint (SHA-256 of the DER public
        key), key size, methods that require encryption, encrypted calls made and failed."""
        return self._wait(self._akeys(service, alias))

    async def akeys(self, service: str | None = None, alias: str | None = None) -> pd.DataFrame:
        return await self._runner.run_async(self._akeys(service, alias))

    # --- serving ----------------------------------------------------------------------------

    async def _aserve(
        self, obj: object, name: str | None, alias: str | None, settings: Mapping[str, Any] | None
    ) -> RMQAPI:
        connection = self.connection(alias)
        name = name or service_name_of(obj)
        if name in connection.served:
            raise LabError(
                f"{name!r} is already served on {connection.alias}; disconnect to stop it"
            )
        target: AmqpTarget = connection.api.target
        api = RMQAPI(
            target, service_name=name, service_instance=obj, transport_settings=dict(settings or {})
        )
        await api.connect()
        connection.served[name] = api
        connection.known.add(name)
        return api

    def serve(
        self,
        obj: object,
        name: str | None = None,
        alias: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> RMQAPI:
        """Serve ``obj``'s public methods on the mesh as service ``name`` (default: its
        ``_service_name`` or class name). Stopped by ``disconnect``."""
        return self._wait(self._aserve(obj, name, alias, settings))

    async def aserve(
        self,
        obj: object,
        name: str | None = None,
        alias: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> RMQAPI:
        return await self._runner.run_async(self._aserve(obj, name, alias, settings))


def service_name_of(obj: object) -> str:
    explicit = getattr(obj, "_service_name", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    name = getattr(obj, "__name__", None) or type(obj).__name__
    return str(name).lower().replace("_", "-")


_default_lab: Lab | None = None


def get_lab() -> Lab:
    """The Lab the ``%nuropb`` magic uses in this process (made on first use)."""
    global _default_lab
    if _default_lab is None:
        _default_lab = Lab()
    return _default_lab
