"""The Lab's named connections to meshes: each a client API, the mesh's management API, and
what the Lab did through it (served objects, tails, taps, services named or seen)."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..mesh import RMQAPI, ManagementAPI, Nodes, configure_mesh
from ..mesh.known_keys import KnownKeys
from .discovery import ServiceInfo, bound_queues
from .errors import LabError, OptionError
from .placement import node_of
from .settings import Settings
from .tail import Tail
from .tap.tap import Tap

if TYPE_CHECKING:
    from .mock import Mock

__all__ = ["DEFAULT_URL", "Connection", "Connections", "split_target"]

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/nuropb-demo"


@dataclasses.dataclass(eq=False)
class Connection:
    """One named connection to a mesh: a client API, and what the Lab did through it."""

    alias: str
    api: RMQAPI
    management: ManagementAPI
    # refuses whatever sends on the mesh or changes it (Connections.may_send)
    read_only: bool = False
    served: dict[str, RMQAPI] = dataclasses.field(default_factory=dict)
    tails: list[Tail] = dataclasses.field(default_factory=list)
    taps: list[Tap] = dataclasses.field(default_factory=list)
    mocks: dict[str, Mock] = dataclasses.field(default_factory=dict)  # also in served
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
    def mode(self) -> str:
        return "read-only" if self.read_only else "read-write"

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
        mode = ", read-only" if self.read_only else ""
        return f"<Connection {self.alias!r} {self.url} ({self.api.transport.state}{mode})>"


def split_target(target: str, method: str | None = None) -> tuple[str, str]:
    """``"service.method"`` (the service name may itself hold dots) -> (service, method)."""
    if method is not None:
        return target, method
    service, dot, name = target.rpartition(".")
    if not dot or not service or not name:
        raise LabError(f"target must look like SERVICE.METHOD, got {target!r}")
    return service, name


class Connections:
    """The connections by alias, and the current one (used when no alias is given)."""

    def __init__(self, settings: Settings, known_keys: KnownKeys) -> None:
        self._settings = settings
        self._known_keys = known_keys
        self._by_alias: dict[str, Connection] = {}
        self._current: str | None = None

    def __repr__(self) -> str:
        return ", ".join(f"{a}{'*' if a == self._current else ''}" for a in self._by_alias)

    def connection(self, alias: str | None = None) -> Connection:
        """The named connection, or the current one."""
        name = alias or self._current
        if name is None:
            raise LabError("not connected: run `%nuropb connect [URL]` (or lab.connect(url)) first")
        try:
            return self._by_alias[name]
        except KeyError:
            known = ", ".join(self._by_alias) or "none"
            raise LabError(f"no connection named {name!r} (connections: {known})") from None

    @property
    def all(self) -> dict[str, Connection]:
        return dict(self._by_alias)

    @property
    def current(self) -> str | None:
        return self._current

    @staticmethod
    def may_send(connection: Connection, what: str) -> None:
        """Whether ``what`` may send on ``connection``: the one place every operation that
        sends, serves or switches something on the mesh asks first (calls, commands, events,
        serving, benches, capacity sweeps, replays, checks, mocks, the firehose switch,
        consuming dead letters). LabError, one line, when not: nothing is sent."""
        if connection.read_only:
            raise LabError(
                f"connection {connection.alias!r} is read-only: {what} is refused and sends"
                " nothing (connect without read-only to do it)"
            )
        if connection.api.transport.state == "closed":
            raise LabError(f"connection {connection.alias!r} is closed: {what} sends nothing")

    def use(self, alias: str) -> Connection:
        """Make ``alias`` the current connection."""
        connection = self.connection(alias)
        self._current = alias
        return connection

    async def connect(
        self,
        url: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]] | None = None,
        alias: str | None = None,
        *,
        configure: bool = False,
        management_url: str | None = None,
        read_only: bool = False,
    ) -> Connection:
        """Connect to a mesh (URL default: $NUROPB_AMQP_URL, else the demo mesh) as ``alias``
        (default: the mesh name), and make it current. ``configure`` creates the mesh.
        The same URL under an existing alias is that connection (made current); another URL,
        or another mode (read-only or not), under it is refused.
        Several nodes of a cluster: a list of URLs, or one string of them comma-separated.
        ``read_only`` (always, when the ``read_only`` setting is on): discovery, describe,
        keys, history, tails, taps without switching the firehose and reading dead letters
        work; whatever would send or change something on the mesh is refused in one line."""
        read_only = read_only or self._settings.read_only
        if configure and read_only:
            raise OptionError(
                "a read-only connection cannot configure the mesh (that declares its exchanges"
                " and queues): connect once without read-only to configure it"
            )
        if url is None:
            url = os.environ.get("NUROPB_AMQP_URL") or DEFAULT_URL
        try:
            target = Nodes.parse(url, self._settings.failover_strategy)
        except (ValueError, TypeError) as exc:  # Nodes.parse says which URL, and why
            raise OptionError(str(exc)) from None
        alias = alias or target.vhost
        existing = self._by_alias.get(alias)
        if existing is not None:
            if existing.api.nodes.targets != target.targets:
                raise LabError(
                    f"connection {alias!r} is to {existing.url}; disconnect it first or pass"
                    " another --alias"
                )
            if existing.read_only != read_only:  # never a read-write one for a read-only ask
                raise LabError(
                    f"connection {alias!r} is {existing.mode}; disconnect it first or pass"
                    " another --alias"
                )
            # the same connect again (a cell run again): it is the connection there is
            self._current = alias
            return existing
        management_url = management_url or self._settings.management_url
        if configure:
            await configure_mesh(target, management_url=management_url)
        settings = {
            "default_ttl": int(self._settings.timeout * 1000),
            "known_keys": self._known_keys,
        }
        api = RMQAPI(target, transport_settings=settings)
        await api.connect()
        management = ManagementAPI.for_target(target, management_url)
        connection = Connection(alias, api, management, read_only=read_only)
        # a describe conflict names the queues bound with the service's routing key
        api.descriptions.bound_queues = functools.partial(bound_queues, connection.management, api)
        self._by_alias[alias] = connection
        self._current = alias
        return connection

    def closing(self, alias: str | None = None, every: bool = False) -> list[Connection]:
        """The connections a disconnect of ``alias`` (or of ``every`` one) closes."""
        return list(self._by_alias.values()) if every else [self.connection(alias)]

    async def close(self, connection: Connection) -> None:
        """Disconnect its client and forget it (what it served, tailed or tapped is stopped
        by their parts first); the newest other connection becomes current."""
        await connection.api.disconnect()
        self._by_alias.pop(connection.alias, None)
        if self._current not in self._by_alias:
            self._current = next(reversed(self._by_alias), None) if self._by_alias else None
