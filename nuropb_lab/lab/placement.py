"""Where things live on a cluster: each service's queue (from the management API's queue
listing) and the node an API is connected to (``node_of``).

A classic queue lives on one node; with a mirroring policy (RabbitMQ 3.x) its master has
mirrors on other nodes, "in sync" once they hold every message. A quorum queue has a leader
and members; the API lists those online (Raft keeps a majority of them in step). A queue whose
node is down (and with no replica to take over) is listed with state "down".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..mesh import RMQAPI

__all__ = ["PLACEMENT_COLUMNS", "Placement", "node_of", "placement_of", "with_placement"]

PLACEMENT_COLUMNS = ["queue_type", "node", "replicas", "in_sync"]


@dataclasses.dataclass(frozen=True)
class Placement:
    kind: str  # classic, mirrored, quorum (or stream)
    node: str | None  # home node, mirrored master or quorum leader
    replicas: tuple[str, ...] = ()  # mirrors, or the other quorum members
    in_sync: tuple[str, ...] = ()  # mirrors in sync, or the other members online
    down: bool = False  # its node is down and nothing took over

    def row(self) -> list[Any]:
        """Values for PLACEMENT_COLUMNS."""
        node = f"{self.node} (down)" if self.down and self.node else self.node
        return [self.kind, node, ", ".join(self.replicas), ", ".join(self.in_sync)]

    @property
    def unsynced(self) -> tuple[str, ...]:
        return tuple(r for r in self.replicas if r not in self.in_sync)


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


def placement_of(queue: dict[str, Any]) -> Placement:
    """The placement of one row of ``ManagementAPI.queues``."""
    kind = str(queue.get("type") or "classic")
    down = queue.get("state") == "down"
    if kind == "quorum":
        leader = queue.get("leader")
        others = [m for m in _names(queue.get("members")) if m != leader]
        online = _names(queue.get("online"))
        return Placement(kind, leader, tuple(others), tuple(m for m in others if m in online), down)
    mirrors = _names(queue.get("slave_nodes"))
    synced = _names(queue.get("synchronised_slave_nodes"))
    policy = queue.get("effective_policy_definition")
    mirrored = bool(mirrors) or (isinstance(policy, dict) and "ha-mode" in policy)
    return Placement(
        "mirrored" if mirrored else kind,
        queue.get("node"),
        mirrors,
        tuple(m for m in mirrors if m in synced),
        down,
    )


def with_placement(
    columns: list[str], rows: list[list[Any]], placements: Sequence[Placement | None]
) -> tuple[list[str], list[list[Any]]]:
    """``rows`` with the PLACEMENT_COLUMNS added when any placement is known (a cluster)."""
    if all(p is None for p in placements):
        return columns, rows
    blank = [None] * len(PLACEMENT_COLUMNS)
    rows = [[*row, *(p.row() if p else blank)] for row, p in zip(rows, placements, strict=True)]
    return columns + PLACEMENT_COLUMNS, rows


def node_of(api: RMQAPI) -> str:
    """``host:port`` of the node the API is on, and which of several (``node 2 of 3``)."""
    target = api.target
    where = api.nodes.position(target)
    return f"{target.host}:{target.port}" + (f" ({where})" if where else "")
