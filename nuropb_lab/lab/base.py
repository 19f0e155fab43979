"""What every part of the Lab stands on: its state, its named connections, its errors, and the
three faces each operation gets (blocking, async twin, background).

The Lab is one class put together from a part per job (calls.py, describing.py, tailing.py,
benching.py, served.py; session.py joins them): each part is a mixin of :class:`LabBase`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..mesh import RMQAPI, ManagementAPI
from ..mesh.known_keys import KnownKeys, default_path
from .bench import Benches
from .discovery import ServiceInfo
from .errors import LabError
from .history import History
from .placement import node_of
from .runner import LoopRunner
from .tail import Tail
from .tap import Tap

__all__ = [
    "Connection",
    "LabBase",
    "LabError",
    "awaitable",
    "background",
    "blocking",
    "split_target",
]

T = TypeVar("T")
P = ParamSpec("P")
L = TypeVar("L", bound="LabBase")


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


def blocking(
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


def awaitable(
    coro_fn: Callable[Concatenate[L, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[L, P], Coroutine[Any, Any, T]]:
    """The async twin: await it from any loop (a notebook's top-level ``await``)."""

    async def run(self: L, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._runner.run_async(coro_fn(self, *args, **kwargs))

    functools.update_wrapper(run, coro_fn)
    return run


def background(
    coro_fn: Callable[Concatenate[L, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[L, P], concurrent.futures.Future[T]]:
    """The non-blocking face, for widgets: start it and return a future at once."""

    def start(self: L, /, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[T]:
        return self._runner.submit(coro_fn(self, *args, **kwargs))

    functools.update_wrapper(start, coro_fn)
    return start


class LabBase:
    """The Lab's state and its named connections (see session.Lab for the whole)."""

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        describe_timeout: float = 2.0,
        tail_max_rows: int = 10_000,
        history_size: int = 10_000,
        management_url: str | None = None,
        failover_strategy: str = "round-robin",
        known_keys: str | os.PathLike[str] | KnownKeys | None = None,
    ) -> None:
        self.timeout = timeout
        self.failover_strategy = failover_strategy  # for several nodes: or "shuffle"
        self.describe_timeout = describe_timeout
        self.tail_max_rows = tail_max_rows
        self.management_url = management_url
        # the keys pinned and the encryption seen required, per mesh and service: a file the
        # user keeps (default: $NUROPB_LAB_KNOWN_KEYS, else in the user's config directory)
        self.known_keys = (
            known_keys
            if isinstance(known_keys, KnownKeys)
            else KnownKeys(known_keys if known_keys is not None else default_path())
        )
        self._history = History(history_size)
        # a running wire tap splits a bench's latency into queued and in-service
        self._benches = Benches(lambda: self.taps)
        # The transport reports a lost connection in one line; aiormq's own record of it
        # (an error with a traceback) would fill the notebook during every broker restart.
        logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
        self._runner = LoopRunner()
        self._connections: dict[str, Connection] = {}
        self._current: str | None = None

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

    @property
    def tails(self) -> list[Tail]:
        return [t for c in self._connections.values() for t in c.tails]

    @property
    def taps(self) -> list[Tap]:
        return [t for c in self._connections.values() for t in c.taps]

    async def _description(
        self, service: str, refresh: bool = False, alias: str | None = None
    ) -> dict[str, Any]:
        """The raw ``nuropb_describe`` answer of a service (cached by the API)."""
        connection = self.connection(alias)
        connection.known.add(service)
        return await connection.api.describe_service(
            service, refresh=refresh, ttl=int(self.describe_timeout * 1000)
        )
