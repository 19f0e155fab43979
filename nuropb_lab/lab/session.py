"""Lab: the plain-Python session that the magic and the widgets share.

Named connections to meshes, discovery, calls with their history, tails, keys and served
objects. Every method is synchronous (it waits, at most its timeout, for work done on the
Lab's background loop) and has an async twin prefixed with ``a`` for top-level ``await``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..mesh import RMQAPI, ManagementAPI, Nodes, configure_mesh
from .base import Connection, LabBase, LabError, awaitable, background, blocking, split_target
from .benching import BenchMixin
from .calls import CallsMixin
from .describing import DescribingMixin
from .discovery import bound_queues
from .errors import OptionError
from .served import ServeMixin, check_servable, exposed_methods, service_name_of
from .tailing import TailsMixin
from .tap import ops as tap_ops
from .tap.replay import replay as _replay

__all__ = [
    "DEFAULT_URL",
    "Connection",
    "Lab",
    "LabError",
    "check_servable",
    "exposed_methods",
    "get_lab",
    "service_name_of",
    "split_target",
]

log = logging.getLogger(__name__)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/nuropb-demo"
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


class Lab(CallsMixin, DescribingMixin, TailsMixin, BenchMixin, ServeMixin, LabBase):
    """A notebook's session on one or more nuropb meshes.

    Every operation is one coroutine run on the Lab's own loop, with a blocking face
    (``lab.call``), an async twin (``await lab.acall``) and, where widgets need it, a
    non-blocking one returning a future (``lab.start_call``). Each job is a part of its own
    (calls, describing, tailing, benching, serving); this class joins them and holds the
    connections' lifecycle and the taps' wiring.
    """

    def __repr__(self) -> str:
        aliases = ", ".join(f"{a}{'*' if a == self._current else ''}" for a in self._connections)
        return f"<Lab connections=[{aliases}]>"

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
        try:
            target = Nodes.parse(url, self.failover_strategy)
        except (ValueError, TypeError) as exc:  # Nodes.parse says which URL, and why
            raise OptionError(str(exc)) from None
        alias = alias or target.vhost
        if alias in self._connections:
            raise LabError(
                f"connection {alias!r} exists; disconnect it first or pass another --alias"
            )
        management_url = management_url or self.management_url
        if configure:
            await configure_mesh(target, management_url=management_url)
        settings = {"default_ttl": int(self.timeout * 1000), "known_keys": self.known_keys}
        api = RMQAPI(target, transport_settings=settings)
        await api.connect()
        connection = Connection(alias, api, ManagementAPI.for_target(target, management_url))
        # a describe conflict names the queues bound with the service's routing key
        api.descriptions.bound_queues = functools.partial(bound_queues, connection.management, api)
        self._connections[alias] = connection
        self._current = alias
        return connection

    connect = blocking(_connect)
    aconnect = awaitable(_connect)

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

    disconnect = blocking(_disconnect)
    adisconnect = awaitable(_disconnect)

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

    # --- taps (lab/tap/): the wire tap, the firehose switch, replay -------------------------

    tap = blocking(tap_ops.tap)
    atap = awaitable(tap_ops.tap)
    start_tap = background(tap_ops.tap)
    firehose = blocking(tap_ops.firehose)
    afirehose = awaitable(tap_ops.firehose)
    firehose_off = blocking(tap_ops.firehose_off)
    afirehose_off = awaitable(tap_ops.firehose_off)
    replay = blocking(_replay)
    areplay = awaitable(_replay)


_default_lab: Lab | None = None


def get_lab() -> Lab:
    """The Lab the ``%nuropb`` magic uses in this process (made on first use)."""
    global _default_lab
    if _default_lab is None:
        _default_lab = Lab()
    return _default_lab
