"""Where a service's queue lives on a cluster, from the management API's queue listing.

A classic queue lives on one node; with a mirroring policy (RabbitMQ 3.x) its master has
mirrors on other nodes, "in sync" once they hold every message. A quorum queue has a leader
and members; the API lists those online (Raft keeps a majority of them in step). A queue whose
node is down (and with no replica to take over) is listed with state "down".
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["PLACEMENT_COLUMNS", "Placement", "placement_of"]

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
