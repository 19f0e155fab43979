"""Lab: the plain-Python session that the magic and the widgets share.

Named connections to meshes, discovery, calls with their history, tails, keys and served
objects. Every method is synchronous (it waits, at most its timeout, for work done on the
Lab's background loop) and has an async twin prefixed with ``a`` for top-level ``await``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import inspect
import logging
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import pandas as pd

from ..mesh import RMQAPI, ManagementAPI, Nodes, configure_mesh
from ..mesh.describe import public_methods
from ..mesh.errors import NuropbException, remote_error
from .bench import Benches, BenchRun, BenchSpec, ParamsArg
from .bench_result import BenchResult, LatencySplitter
from .capacity import CapacityResult, CapacitySweep
from .dead_letters import dead_letter_queue, dead_letter_rows, read_dead_letters
from .discovery import ServiceInfo, discover
from .history import CallRecord, History
from .keys import key_row, keys_frame
from .params import check_params
from .placement import node_of, with_placement
from .runner import LoopRunner
from .tail import Tail
from .tap import Tap
from .tap import ops as tap_ops
from .tap.replay import replay as _replay

__all__ = ["DEFAULT_URL", "Connection", "Lab", "LabError", "get_lab"]

log = logging.getLogger(__name__)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/nuropb-demo"
DESCRIBE_RETRY_S = 30.0
T = TypeVar("T")
P = ParamSpec("P")
L = TypeVar("L", bound="Lab")

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
    "node",
    "mesh",
    "state",
    "reconnects",
    "in_flight",
    "served",
    "tails",
    "last_error",
    "taps",
    "firehose",
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
    taps: list[Tap] = dataclasses.field(default_factory=list)
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

    @property
    def node(self) -> str:
        """The node the client is on (``host:port``, which of several), and where each served
        service is when that is another node."""
        text = node_of(self.api)
        elsewhere = [
            f"{n} on {node_of(a)}" for n, a in self.served.items() if a.target != self.api.target
        ]
        return "; ".join([text, *elsewhere])

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


def _blocking(
    coro_fn: Callable[Concatenate[L, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[L, P], T]:
    """The blocking face of a Lab coroutine: run it on the Lab loop and wait (at most the
    call's ``timeout``, if it takes one, plus a backstop; Ctrl-C cancels)."""

    def wait(self: L, /, *args: P.args, **kwargs: P.kwargs) -> T:
        timeout = kwargs.get("timeout")
        return self._wait(
            coro_fn(self, *args, **kwargs), timeout if isinstance(timeout, (int, float)) else None
        )

    functools.update_wrapper(wait, coro_fn)
    return wait


def _awaitable(
    coro_fn: Callable[Concatenate[L, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[L, P], Coroutine[Any, Any, T]]:
    """The async twin: await it from any loop (a notebook's top-level ``await``)."""

    async def run(self: L, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._runner.run_async(coro_fn(self, *args, **kwargs))

    functools.update_wrapper(run, coro_fn)
    return run


def _background(
    coro_fn: Callable[Concatenate[L, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[L, P], concurrent.futures.Future[T]]:
    """The non-blocking face, for widgets: start it and return a future at once."""

    def start(self: L, /, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[T]:
        return self._runner.submit(coro_fn(self, *args, **kwargs))

    functools.update_wrapper(start, coro_fn)
    return start


class Lab:
    """A notebook's session on one or more nuropb meshes.

    Every operation is one coroutine run on the Lab's own loop, with a blocking face
    (``lab.call``), an async twin (``await lab.acall``) and, where widgets need it, a
    non-blocking one returning a future (``lab.start_call``).
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        describe_timeout: float = 2.0,
        tail_max_rows: int = 10_000,
        history_size: int = 10_000,
        management_url: str | None = None,
        failover_strategy: str = "round-robin",
    ) -> None:
        self.timeout = timeout
        self.failover_strategy = failover_strategy  # for several nodes: or "shuffle"
        self.describe_timeout = describe_timeout
        self.tail_max_rows = tail_max_rows
        self.management_url = management_url
        self._history = History(history_size)
        # a running wire tap splits a bench's latency into queued and in-service
        self._benches = Benches(lambda: self.taps)
        # The transport reports a lost connection in one line; aiormq's own record of it
        # (an error with a traceback) would fill the notebook during every broker restart.
        logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
        self._runner = LoopRunner()
        self._connections: dict[str, Connection] = {}
        self._current: str | None = None

    def __repr__(self) -> str:
        aliases = ", ".join(f"{a}{'*' if a == self._current else ''}" for a in self._connections)
        return f"<Lab connections=[{aliases}]>"

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

    async def _connect(
        self,
        url: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]] | None = None,
        alias: str | None = None,
        *,
        configure: bool = False,
        management_url: str | None = None,
    ) -> Connection:
        """Connect to a mesh (URL default: $NUROPB_AMQP_URL, else the demo mesh) as ``alias``
        (default: the mesh name), and make it current. ``configure`` creates the mesh.
        Several nodes of a cluster: a list of URLs, or one string of them comma-separated."""
        if url is None:
            url = os.environ.get("NUROPB_AMQP_URL") or DEFAULT_URL
        target = Nodes.parse(url, self.failover_strategy)
        alias = alias or target.vhost
        if alias in self._connections:
            raise LabError(
                f"connection {alias!r} exists; disconnect it first or pass another --alias"
            )
        management_url = management_url or self.management_url
        if configure:
            await configure_mesh(target, management_url=management_url)
        api = RMQAPI(target, transport_settings={"default_ttl": int(self.timeout * 1000)})
        await api.connect()
        connection = Connection(alias, api, ManagementAPI.for_target(target, management_url))
        self._connections[alias] = connection
        self._current = alias
        return connection

    connect = _blocking(_connect)
    aconnect = _awaitable(_connect)

    async def _disconnect(self, alias: str | None = None, all: bool = False) -> list[str]:
        """Close a connection (default: the current one) or ``all``, with their tails and
        served objects. Returns the aliases closed."""
        targets = list(self._connections.values()) if all else [self.connection(alias)]
        for connection in targets:
            await tap_ops.stop_taps(self, connection)  # switches off a firehose a tap had on
            for tail in list(connection.tails):
                await self._stop_tail(connection, tail)
            for api in list(connection.served.values()):
                await api.disconnect()
            connection.served.clear()
            await connection.api.disconnect()
            self._connections.pop(connection.alias, None)
        if self._current not in self._connections:
            self._current = next(reversed(self._connections), None) if self._connections else None
        return [c.alias for c in targets]

    disconnect = _blocking(_disconnect)
    adisconnect = _awaitable(_disconnect)

    def close(self) -> None:
        """Disconnect everything and stop the Lab's loop."""
        if self._connections:
            self.disconnect(all=True)
        self._runner.stop()

    def status(self) -> pd.DataFrame:
        """Connections: alias, URL (the node connected to, password masked), node (host:port,
        and which of several; served services on another node), mesh, state, reconnects,
        calls in flight, served services, tails, the last connection error, taps, and the
        mesh's firehose (on, off, or left on by a lab that is gone: then ``attrs["notice"]``
        says so)."""
        rows = []
        firehoses = {
            alias: self._wait(tap_ops.firehose_text(c)) for alias, c in self._connections.items()
        }
        for alias, c in self._connections.items():
            transport = c.api.transport
            rows.append(
                [
                    alias,
                    alias == self._current,
                    c.url,
                    c.node,
                    c.mesh,
                    transport.state,
                    transport.reconnects,
                    c.api.in_flight,
                    ", ".join(c.served),
                    len([t for t in c.tails if not t.stopped]),
                    transport.last_error,
                    len(c.taps),
                    firehoses[alias],
                ]
            )
        frame = pd.DataFrame(rows, columns=STATUS_COLUMNS)
        orphaned = [f"{a}: firehose {f}" for a, f in firehoses.items() if "ORPHANED" in f]
        if orphaned:
            frame.attrs["notice"] = "; ".join(orphaned)
        return frame

    # --- discovery ------------------------------------------------------------------------

    async def _services(
        self, alias: str | None = None, names: list[str] | None = None
    ) -> pd.DataFrame:
        """Every service on the mesh: instances, queued messages, methods, encrypted, version,
        description, and the error of one that did not answer. ``names`` adds services to
        probe when the management API is off."""
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
        columns, rows = with_placement(SERVICE_COLUMNS, rows, [i.placement for i in infos])
        frame = pd.DataFrame(rows, columns=columns)
        if notice and not connection.notice_shown:
            connection.notice_shown = True
            frame.attrs["notice"] = notice
        return frame

    services = _blocking(_services)
    aservices = _awaitable(_services)

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

    async def _description(
        self, service: str, refresh: bool = False, alias: str | None = None
    ) -> dict[str, Any]:
        """The raw ``nuropb_describe`` answer of a service."""
        connection = self.connection(alias)
        connection.known.add(service)
        return await connection.api.describe_service(
            service, refresh=refresh, ttl=int(self.describe_timeout * 1000)
        )

    description = _blocking(_description)
    adescription = _awaitable(_description)

    async def _describe(
        self,
        service: str,
        method: str | None = None,
        refresh: bool = False,
        alias: str | None = None,
    ) -> pd.DataFrame:
        """A service's methods and parameters (one row per parameter), with encryption."""
        description = await self._description(service, refresh, alias)
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
                default = None if param in required else pspec.get("default")
                row = [name, param, pspec.get("type") or "", param in required, default]
                rows.append([*row, encrypted, spec.get("description")])
        frame = pd.DataFrame(rows, columns=DESCRIBE_COLUMNS)
        # defaults keep their JSON types (2 is not "2"; None is not NaN)
        frame["default"] = pd.Series([r[4] for r in rows], dtype=object)
        frame.attrs.update(
            service=service,
            version=description.get("service_version"),
            description=description.get("description"),
        )
        return frame

    describe = _blocking(_describe)
    adescribe = _awaitable(_describe)

    # --- calls ------------------------------------------------------------------------------

    async def _known_description(
        self, connection: Connection, service: str, timeout: float
    ) -> dict[str, Any] | None:
        """The service's (cached) description; None when it cannot say. A failed describe is
        not asked again for a while, so calls to a service that cannot describe itself do not
        each wait for it first."""
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
        return description

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
        connection = self.connection(alias)
        service, method = split_target(target)
        if not isinstance(params, dict):
            raise LabError(f"params must be a JSON object (dict), not {type(params).__name__}")
        if context is not None and not isinstance(context, dict):
            raise LabError(f"context must be a JSON object (dict), not {type(context).__name__}")
        timeout = timeout or self.timeout
        description = await self._known_description(connection, service, timeout)
        if check and description is not None:
            await check_params(
                description,
                service,
                method,
                params,
                refresh=lambda: self._description(service, refresh=True, alias=alias),
            )
        encrypted = bool(encrypt)
        if not encrypt:
            spec = ((description or {}).get("methods") or {}).get(method)
            needs = None if spec is None else bool(spec.get("requires_encryption"))
            if needs and encrypt is False:
                raise LabError(
                    f"{service}.{method} requires encryption; a plaintext call is refused"
                )
            encrypted = bool(needs)
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
                )
            )

    async def _call(
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
        ``encrypt=False`` refuses such a method). ``raw`` returns the whole response.
        ``check=False`` sends params that do not fit the method's description."""
        merged = {**(params or {}), **kwparams}
        return await self._send(
            "call", target, merged, timeout, encrypt, context, trace_id, raw, alias, check
        )

    call = _blocking(_call)
    acall = _awaitable(_call)
    start_call = _background(_call)

    async def _command(
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

    command = _blocking(_command)
    acommand = _awaitable(_command)

    async def _publish(
        self,
        topic: str,
        event: Any,
        context: dict[str, Any] | None = None,
        trace_id: str | None = None,
        alias: str | None = None,
    ) -> None:
        """Publish an event on ``topic``."""
        if not topic:
            raise LabError("publish needs a topic")
        await self.connection(alias).api.publish_event(
            topic, event, context or {}, trace_id=trace_id
        )

    publish = _blocking(_publish)
    apublish = _awaitable(_publish)

    def history(self, n: int | None = None) -> pd.DataFrame:
        """The calls made in this session (newest last)."""
        return self._history.frame(n)

    @property
    def call_records(self) -> list[CallRecord]:
        return self._history.records()

    # --- tails ------------------------------------------------------------------------------

    async def _tail(
        self,
        *patterns: str,
        max_rows: int | None = None,
        backlog: int | None = None,
        alias: str | None = None,
    ) -> Tail:
        """Start a live tail of events matching ``patterns`` (default ``#``: all), keeping the
        newest ``max_rows``. ``backlog``: events the broker holds for the tail while it is
        behind (the oldest are dropped past it; default ``max_rows``, at least 1,000)."""
        connection = self.connection(alias)
        tail = Tail(
            list(patterns) or ["#"],
            max_rows or self.tail_max_rows,
            connection.alias,
            stopper=lambda t: self._stop_tail_soon(connection, t),
            runner=self._runner,
        )
        tail.subscription = await connection.api.subscribe(
            tail.patterns, tail.on_event, max_length=backlog or max(tail.max_rows, 1000)
        )
        connection.tails.append(tail)
        return tail

    tail = _blocking(_tail)
    atail = _awaitable(_tail)

    async def _stop_tail(self, connection: Connection, tail: Tail) -> None:
        if tail in connection.tails:
            connection.tails.remove(tail)
        tail._stopped = True
        if tail.subscription is not None:
            try:
                await connection.api.unsubscribe(tail.subscription)
            except NuropbException as exc:
                log.info("could not delete the tail's queue: %s", exc)

    def _stop_tail_soon(self, connection: Connection, tail: Tail) -> None:
        coro = self._stop_tail(connection, tail)
        if self._runner.in_loop_thread():
            self._runner.loop.create_task(coro)
        else:
            self._wait(coro)

    @property
    def tails(self) -> list[Tail]:
        return [t for c in self._connections.values() for t in c.tails]

    # --- taps (lab/tap/): the wire tap, the firehose switch, replay -------------------------

    tap = _blocking(tap_ops.tap)
    atap = _awaitable(tap_ops.tap)
    start_tap = _background(tap_ops.tap)
    firehose = _blocking(tap_ops.firehose)
    afirehose = _awaitable(tap_ops.firehose)
    firehose_off = _blocking(tap_ops.firehose_off)
    afirehose_off = _awaitable(tap_ops.firehose_off)
    replay = _blocking(_replay)
    areplay = _awaitable(_replay)

    @property
    def taps(self) -> list[Tap]:
        return [t for c in self._connections.values() for t in c.taps]

    # --- dead letters ---------------------------------------------------------------------

    async def _dead_letters(
        self,
        limit: int = 50,
        consume: bool = False,
        alias: str | None = None,
        queue: str | None = None,
    ) -> pd.DataFrame:
        """What was rejected to the mesh's dead-letter queue, and why (the broker's reason;
        the error, for a call of this session). Read without consuming unless ``consume``.
        ``queue``: default the one the dead-letter exchange feeds (see dead_letter_queue)."""
        connection = self.connection(alias)
        queue = queue or await dead_letter_queue(connection.api, connection.management)
        messages = await read_dead_letters(connection.api, queue, limit, consume)
        frame = dead_letter_rows(messages, self._history.records())
        frame.attrs["queue"] = queue
        return frame

    dead_letters = _blocking(_dead_letters)
    adead_letters = _awaitable(_dead_letters)

    # --- keys -------------------------------------------------------------------------------

    async def _keys(self, service: str | None = None, alias: str | None = None) -> pd.DataFrame:
        """Encryption status per service: key present, fingerprint (SHA-256 of the DER public
        key), key size, methods that require encryption, encrypted calls made and failed."""
        connection = self.connection(alias)
        if service is not None:
            services = [service]
        else:
            if not connection.services:
                await self._services(alias)
            services = sorted(connection.services)
        records = self._history.records()
        rows = []
        for name in services:
            try:
                description = await self._description(name, refresh=True, alias=alias)
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

    keys = _blocking(_keys)
    akeys = _awaitable(_keys)
    start_keys = _background(_keys)

    # --- load and latency (bench.py, capacity.py) ---------------------------------------------
    # Faces of their own: a run is an object (progress, stop, widget), and Ctrl-C in the
    # blocking face stops it and returns what it measured rather than raising.

    def _new_bench(self, target: str, params: ParamsArg, options: dict[str, Any]) -> BenchRun:
        connection = self.connection(options.pop("alias", None))
        spec = BenchSpec.make(target, params, default_timeout=self.timeout, **options)
        return BenchRun(spec, connection.api, self._runner, self.describe_timeout, self._benches)

    def bench(self, target: str, params: ParamsArg = None, **options: Any) -> BenchResult:
        """Put ``target`` ("service.method") under load and measure it; options: see
        :meth:`BenchSpec.make` (n or duration, concurrency or rate, warmup, timeout, encrypt,
        kind, label, context, check) and ``alias``. Ctrl-C stops it, keeping the result."""
        return self._new_bench(target, params, options).wait()

    async def abench(self, target: str, params: ParamsArg = None, **options: Any) -> BenchResult:
        """The async twin of :meth:`bench`."""
        return await self._runner.run_async(self._new_bench(target, params, options).execute())

    def start_bench(self, target: str, params: ParamsArg = None, **options: Any) -> BenchRun:
        """Start a bench and return at once: ``.progress``, ``.widget()`` (with a Stop button),
        ``.stop()``, ``.wait()``, ``.result``."""
        return self._new_bench(target, params, options).start()

    def benches(self) -> pd.DataFrame:
        """Every bench run of this session, side by side (one summary row each)."""
        return self._benches.frame()

    @property
    def bench_splitters(self) -> list[LatencySplitter]:
        """Taps that split a bench's latency into queued and in-service (bench_result.py)."""
        return self._benches.splitters

    def _new_sweep(self, target: str, params: ParamsArg, options: dict[str, Any]) -> CapacitySweep:
        api = self.connection(options.pop("alias", None)).api
        options.setdefault("timeout", self.timeout)
        runner, book = self._runner, self._benches
        return CapacitySweep.make(
            target, params, api, runner, self.describe_timeout, book, **options
        )

    def capacity(self, target: str, params: ParamsArg = None, **options: Any) -> CapacityResult:
        """A bench at each of ``concurrency=[1, 2, 4, ...]`` (the default) or ``rate=[...]``:
        the throughput-latency curve and its knee (``.df``, ``.knee``, ``.plot()``). Each step
        lasts ``duration`` (default 2 s) or ``n`` calls. Ctrl-C keeps the steps measured."""
        return self._new_sweep(target, params, options).wait()

    async def acapacity(
        self, target: str, params: ParamsArg = None, **options: Any
    ) -> CapacityResult:
        """The async twin of :meth:`capacity`."""
        return await self._runner.run_async(self._new_sweep(target, params, options).execute())

    # --- serving ----------------------------------------------------------------------------

    async def _serve(
        self,
        obj: object,
        name: str | None = None,
        alias: str | None = None,
        settings: Mapping[str, Any] | None = None,
        allow_any: bool = False,
    ) -> RMQAPI:
        """Serve ``obj``'s public methods on the mesh as service ``name`` (default: its
        ``_service_name`` or class name). Stopped by ``disconnect``. A module, class or
        builtin object is refused unless ``allow_any``: everyone on the mesh could call
        every public callable of it (a served ``os`` would hand the mesh a shell)."""
        connection = self.connection(alias)
        check_servable(obj, allow_any)
        name = name or service_name_of(obj)
        if name in connection.served:
            raise LabError(
                f"{name!r} is already served on {connection.alias}; disconnect to stop it"
            )
        api = RMQAPI(
            connection.api.nodes,
            service_name=name,
            service_instance=obj,
            transport_settings=dict(settings or {}),
        )
        await api.connect()
        connection.served[name] = api
        connection.known.add(name)
        return api

    serve = _blocking(_serve)
    aserve = _awaitable(_serve)


_DANGEROUS = frozenset(
    "system popen exec execv execve spawnv kill remove unlink rmdir rmtree rename chmod"
    " chown open write putenv eval compile setattr delattr clear pop".split()
)


def exposed_methods(obj: object) -> list[str]:
    """The names of the methods serving ``obj`` puts on the mesh."""
    return sorted(name for name, _, _ in public_methods(obj))


def check_servable(obj: object, allow_any: bool = False) -> None:
    """Refuse a module, class or builtin object (unless ``allow_any``), naming what it
    would expose."""
    if allow_any:
        return
    if inspect.ismodule(obj):
        kind = f"module {obj.__name__!r}"
    elif inspect.isclass(obj):
        kind = f"class {obj.__qualname__!r} (serve an instance of it)"
    elif inspect.isroutine(obj) or type(obj).__module__ == "builtins":
        kind = f"builtin {type(obj).__name__} object"
    else:
        return
    # the names that show the danger first (a served os.system is a shell for the mesh)
    methods = sorted(exposed_methods(obj), key=lambda m: (m not in _DANGEROUS, m))
    shown = ", ".join(methods[:8]) + (f", ... ({len(methods)} in all)" if len(methods) > 8 else "")
    raise LabError(
        f"refusing to serve a {kind}: anyone on the mesh could call {shown or 'it'};"
        " serve an object of your own, or pass allow_any=True (%nuropb serve ... --unsafe)"
    )


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
