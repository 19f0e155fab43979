"""The nodes of a RabbitMQ cluster an API may connect to, the order it tries them in, and
what the broker says about a queue whose node is down.

A mesh (one vhost) may live on a cluster; an API is given one URL or several (a list, a
comma-separated string, or nuropb's dict form with a list of ``hosts``), all of one vhost. It
connects to the first node that answers, in kombu's failover strategies: ``round-robin`` (the
order given, and after a loss the nodes after the one lost first) or ``shuffle`` (a random
order each time). A refusal that every node of a cluster would repeat (credentials, a missing
vhost) ends the search at once.

RabbitMQ 3.x on a durable classic queue whose home node is down (checked on 3.10): a mandatory
publish routed only to it comes back as basic.return 312 NO_ROUTE, the same as when no queue
is bound; a passive (or active) declare, a consume or a bind fails with 404 NOT_FOUND "home
node 'rabbit@x' of durable queue 'q' in vhost 'v' is down or inaccessible". So a returned call
is told from a missing service by declaring its queue passively (:class:`DownQueues`).
RabbitMQ 4.0 and 4.3 drop such a publish (no basic.return; a confirm is a nack), and the declare
fails with 404 "failed to perform operation on queue 'q' in vhost 'v' due to timeout",
naming no node.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, get_args

from .connect import CredentialsRefused, MeshNotFound
from .errors import NuropbTransportError
from .urls import AmqpTarget, mask_secrets, parse_amqp_url

__all__ = [
    "DownQueues",
    "FailoverStrategy",
    "Nodes",
    "QueueUnavailable",
    "connect_any",
    "queue_down",
    "split_urls",
]

T = TypeVar("T")
FailoverStrategy = Literal["round-robin", "shuffle"]
AmqpUrl = str | Mapping[str, Any] | AmqpTarget
_SCHEME = re.compile(r",\s*(?=[a-z][a-z0-9+.-]*://)", re.I)
_HOME_NODE_DOWN = re.compile(r"home node '(?P<node>[^']+)' of durable queue '(?P<queue>[^']+)'")
# RabbitMQ 4 names no node: its queue process does not answer the declare in time
_QUEUE_TIMED_OUT = re.compile(
    r"failed to perform operation on queue '(?P<queue>[^']+)' in vhost '[^']*' due to timeout"
)


def split_urls(text: str) -> list[str]:
    """``"amqp://a/v, amqp://b/v"`` -> two URLs (any scheme). Split only before a scheme, so
    that a comma in a password or a query stays where it is."""
    return [part.strip() for part in _SCHEME.split(text.strip()) if part.strip()]


class Nodes:
    """One or more targets of one vhost (the mesh), and the order to try them in."""

    def __init__(
        self, targets: Sequence[AmqpTarget], strategy: FailoverStrategy = "round-robin"
    ) -> None:
        if not targets:
            raise ValueError("no AMQP URL given: name one node or more")
        if strategy not in get_args(FailoverStrategy):
            choices = ", ".join(get_args(FailoverStrategy))
            raise ValueError(f"failover_strategy must be one of {choices}, not {strategy!r}")
        vhosts = {t.vhost for t in targets}
        if len(vhosts) > 1:
            listed = ", ".join(t.masked for t in targets)
            raise ValueError(
                f"the nodes must all be of one mesh (vhost), got {sorted(vhosts)}: {listed}"
            )
        self.targets = tuple(targets)
        self.strategy = strategy

    @classmethod
    def parse(
        cls, amqp_url: AmqpUrl | Sequence[AmqpUrl] | Nodes, strategy: str = "round-robin"
    ) -> Nodes:
        """Nodes from a URL, a comma-separated string of URLs, a target, nuropb's dict form
        (``host``, or ``hosts``: a list of ``"host[:port]"`` strings or dicts), or a list of
        any of these. Raises ValueError (or TypeError) saying which entry is wrong."""
        if isinstance(amqp_url, Nodes):
            return amqp_url
        entries: list[Any]
        if isinstance(amqp_url, str):
            entries = list(split_urls(amqp_url)) or [amqp_url]
        elif isinstance(amqp_url, (AmqpTarget, Mapping)):
            entries = [amqp_url]
        elif isinstance(amqp_url, Sequence):
            entries = list(amqp_url)
            if not entries:
                raise ValueError("amqp_url is an empty list: name one node or more")
        else:
            raise TypeError(
                f"amqp_url must be a str, a dict or a list of them, not {type(amqp_url).__name__}"
            )
        targets: list[AmqpTarget] = []
        for index, entry in enumerate(entries):
            try:
                if isinstance(entry, Mapping):
                    targets += _from_dict(entry)
                else:
                    targets.append(parse_amqp_url(entry))
            except (ValueError, TypeError) as exc:
                if len(entries) == 1:
                    raise
                raise type(exc)(
                    f"node {index + 1} of {len(entries)}: {mask_secrets(str(exc))}"
                ) from None
        return cls(targets, strategy)  # type: ignore[arg-type]  # checked in __init__

    def __len__(self) -> int:
        return len(self.targets)

    def __iter__(self) -> Iterator[AmqpTarget]:
        return iter(self.targets)

    def __repr__(self) -> str:
        return f"<Nodes {self.masked} ({self.strategy})>"

    @property
    def first(self) -> AmqpTarget:
        return self.targets[0]

    @property
    def vhost(self) -> str:
        return self.targets[0].vhost

    @property
    def masked(self) -> str:
        """Every node's URL, passwords masked, comma-separated."""
        return ", ".join(t.masked for t in self.targets)

    def position(self, target: AmqpTarget) -> str:
        """``"node 2 of 3"`` (empty for a single node)."""
        if len(self.targets) == 1 or target not in self.targets:
            return ""
        return f"node {self.targets.index(target) + 1} of {len(self.targets)}"

    def order(self, after: AmqpTarget | None = None) -> list[AmqpTarget]:
        """The order to try the nodes in; ``after`` (the node just lost) comes last."""
        nodes = list(self.targets)
        if self.strategy == "shuffle":
            random.shuffle(nodes)
            if after in nodes:
                nodes.remove(after)
                nodes.append(after)
            return nodes
        if after in nodes:
            start = nodes.index(after) + 1
            nodes = nodes[start:] + nodes[:start]
        return nodes


def _from_dict(spec: Mapping[str, Any]) -> list[AmqpTarget]:
    """nuropb's dict form; ``hosts`` (or a list in ``host``) gives one target per host."""
    hosts = spec.get("hosts")
    if hosts is None and isinstance(spec.get("host"), (list, tuple)):
        hosts = spec["host"]
    if hosts is None:
        return [parse_amqp_url(spec)]
    if isinstance(hosts, str) or not isinstance(hosts, Sequence) or not hosts:
        raise ValueError("amqp_url dict: 'hosts' must be a non-empty list of hosts")
    base = {k: v for k, v in spec.items() if k not in ("hosts", "host")}
    targets = []
    for host in hosts:
        if isinstance(host, Mapping):
            targets.append(parse_amqp_url({**base, **host}))
            continue
        if not isinstance(host, str) or not host:
            raise ValueError(f"amqp_url dict: a host must be 'name[:port]' or a dict, not {host!r}")
        name, colon, port = host.rpartition(":") if host.count(":") == 1 else ("", "", "")
        if colon and not port.isdigit():
            raise ValueError(f"amqp_url dict: host {host!r} has a port that is not a number")
        targets.append(
            parse_amqp_url({**base, "host": name or host, **({"port": int(port)} if colon else {})})
        )
    return targets


async def connect_any(
    order: Sequence[AmqpTarget], connect: Callable[[AmqpTarget], Awaitable[T]]
) -> tuple[T, AmqpTarget]:
    """``connect`` to the first node of ``order`` that answers; with it, that node.

    Credentials refused or a missing vhost are raised at once: every node of a cluster shares
    users and vhosts. With one node its own error is raised; with several, one that lists why
    each failed."""
    failures: list[tuple[AmqpTarget, NuropbTransportError]] = []
    for target in order:
        try:
            return await connect(target), target
        except (CredentialsRefused, MeshNotFound):
            raise
        except NuropbTransportError as exc:
            failures.append((target, exc))
    if len(failures) == 1:
        raise failures[0][1]
    reasons = "; ".join(str(exc) for _, exc in failures)
    raise NuropbTransportError(f"no node of the {len(failures)} answered: {reasons}")


class QueueUnavailable(NuropbTransportError):
    """The queue exists, but its home node is down or unreachable (and it is not replicated).
    ``node`` is None where the broker does not name it (RabbitMQ 4)."""

    def __init__(self, queue: str, node: str | None, detail: str = "") -> None:
        where = f"is on node {node}, which is" if node else "cannot be reached: its node is"
        super().__init__(
            f"queue {queue!r} {where} down or unreachable, and no replica takes over (not"
            " mirrored or quorum)"
        )
        self.queue = queue
        self.node = node
        self.detail = detail  # the broker's words


def queue_down(text: str) -> QueueUnavailable | None:
    """The broker's 404 about a durable queue whose home node is down (3.x), or whose queue
    process does not answer (4.x), as an error."""
    found = _HOME_NODE_DOWN.search(text)
    if found:
        return QueueUnavailable(found["queue"], found["node"], text)
    found = _QUEUE_TIMED_OUT.search(text)
    return QueueUnavailable(found["queue"], None, text) if found else None


class DownQueues:
    """Why messages for a queue come back: its home node is down (a passive declare says so).

    Asked once per queue in ``window`` seconds and shared by every caller meanwhile, so a
    burst of returned calls costs one declare; bounded by ``timeout``; never raises."""

    def __init__(
        self,
        queue_info: Callable[[str], Awaitable[Any]],
        window: float = 1.0,
        timeout: float = 2.0,
    ) -> None:
        self._queue_info = queue_info
        self._window = window
        self._timeout = timeout
        self._asked: dict[str, tuple[float, asyncio.Future[QueueUnavailable | None]]] = {}

    async def reason(self, queue: str) -> QueueUnavailable | None:
        now = time.monotonic()
        asked = self._asked.get(queue)
        if asked is None or now - asked[0] > self._window:
            asked = (now, asyncio.ensure_future(self._ask(queue)))
            self._asked[queue] = asked
        return await asyncio.shield(asked[1])

    async def _ask(self, queue: str) -> QueueUnavailable | None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._queue_info(queue)
        except QueueUnavailable as exc:
            return exc
        except Exception:  # not connected, timed out: no more to say than "not routed"
            return None
        return None
