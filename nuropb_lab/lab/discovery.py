"""Listing the services of a mesh.

nuropb has no registry: names come from the broker's management API (the bindings of the RPC
exchange and the ``nuropb-*-sq`` queues), exact instance and queue counts from passive queue
declares, and what each offers from ``nuropb_describe``, asked of all at once with a short
timeout. A service that does not answer is listed with its error. On a cluster (the API lists
more than one node) each service also gets where its queue lives (see placement.py).

Any peer may bind routing keys to the RPC exchange, each a "service": one discovery probes at
most DISCOVERY_PROBES of them (those named or called first, then those with a service queue of
their own), and lists the others as not probed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from ..mesh import RMQAPI, ManagementAPI, ManagementUnavailable, Topology
from ..mesh.errors import NuropbException, error_name
from ..mesh.limits import DISCOVERY_PROBES, ERROR_BYTES, clip_text
from .placement import Placement, placement_of

__all__ = ["ServiceInfo", "bound_queues", "discover", "service_names"]


@dataclasses.dataclass
class ServiceInfo:
    service: str
    queue: str
    instances: int | None = None  # consumers on the service queue; None when unknown
    queued: int | None = None  # messages waiting in it
    description: dict[str, Any] | None = None  # the nuropb_describe answer
    error: str | None = None
    placement: Placement | None = None  # where its queue lives, on a cluster

    @property
    def methods(self) -> list[str]:
        return sorted((self.description or {}).get("methods", {}) or {})

    @property
    def encrypted(self) -> bool | None:
        if self.description is None:
            return None
        return bool(self.description.get("encrypted_methods"))

    @property
    def version(self) -> str | None:
        return (self.description or {}).get("service_version")

    @property
    def summary(self) -> str | None:
        return (self.description or {}).get("description")


async def service_names(management: ManagementAPI, api: RMQAPI) -> dict[str, str]:
    """``{service: queue}`` from the RPC exchange's bindings and the service queues' names."""
    return (await _listing(management, api))[0]


async def bound_queues(management: ManagementAPI, api: RMQAPI, service: str) -> list[str]:
    """The queues bound to the RPC exchange with ``service`` as routing key: each gets the
    service's requests (``nuropb_describe`` too) and may answer them."""
    bindings = await management.exchange_bindings(api.mesh_name, api.topology.rpc_exchange)
    return sorted(
        {
            b["destination"]
            for b in bindings
            if b.get("destination_type") == "queue" and b.get("routing_key") == service
        }
    )


async def _listing(
    management: ManagementAPI, api: RMQAPI
) -> tuple[dict[str, str], dict[str, Placement]]:
    """Service names, and on a cluster where each queue lives."""
    vhost = api.mesh_name
    bindings, queues, nodes = await asyncio.gather(
        management.exchange_bindings(vhost, api.topology.rpc_exchange),
        management.queues(vhost),
        _nodes(management),
    )
    placements = {q["name"]: placement_of(q) for q in queues} if len(nodes) > 1 else {}
    names: dict[str, str] = {}
    for binding in bindings:
        queue = binding.get("destination", "")
        # a lab's tap queue gets copies of a service's requests: exclusive to its connection
        # (a probe of it is refused, RESOURCE_LOCKED) and not the service
        if queue.endswith("-tq"):
            continue
        if binding.get("destination_type") == "queue" and binding.get("routing_key"):
            names.setdefault(binding["routing_key"], queue)
    for queue in queues:
        service = Topology.service_from_queue(queue["name"])
        if service is not None:
            names.setdefault(service, queue["name"])
    return names, placements


async def _nodes(management: ManagementAPI) -> list[dict[str, Any]]:
    try:
        return await management.nodes()
    except ManagementUnavailable:  # a user without the monitoring tag may not list them
        return []


async def _probe(
    api: RMQAPI, info: ServiceInfo, describe_ttl_ms: int, refresh: bool
) -> ServiceInfo:
    try:
        counts = await api.queue_info(info.queue)
    except NuropbException as exc:
        info.error = clip_text(f"{type(exc).__name__}: {exc}", ERROR_BYTES)
        return info
    if counts is None:
        info.error = "no such service on the mesh"
        return info
    info.queued, info.instances = counts
    if info.instances == 0:
        info.error = "no instances running"
        cached = api.cached_description(info.service)
        info.description = cached
        return info
    try:
        info.description = await api.describe_service(
            info.service, refresh=refresh, ttl=describe_ttl_ms
        )
    except NuropbException as exc:  # a remote service's words: bounded
        info.error = clip_text(f"{error_name(exc)}: {exc}", ERROR_BYTES)
    return info


async def discover(
    api: RMQAPI,
    management: ManagementAPI | None,
    known: set[str],
    describe_ttl_ms: int = 2000,
    refresh: bool = True,
) -> tuple[list[ServiceInfo], str | None]:
    """Every service of the mesh, described; and a notice when the management API is off
    (then only ``known`` names are probed)."""
    notice = None
    names: dict[str, str] = {}
    placements: dict[str, Placement] = {}
    if management is not None:
        try:
            names, placements = await _listing(management, api)
        except ManagementUnavailable as exc:
            notice = f"{exc.description}; listing only services named or called so far"
    else:
        notice = "no management API configured; listing only services named or called so far"
    if notice is not None:
        for name in known:
            names.setdefault(name, Topology.service_queue(name))
    names.pop(f"{api.mesh_name}-client", None)
    infos = [
        ServiceInfo(service, queue, placement=placements.get(queue))
        for service, queue in sorted(names.items())
    ]
    # the services named or called first, then those with a service queue of their own
    ranked = sorted(
        infos, key=lambda i: (i.service not in known, i.queue != Topology.service_queue(i.service))
    )
    probed = ranked[:DISCOVERY_PROBES]
    if len(ranked) > DISCOVERY_PROBES:
        skipped = (
            f"not probed: one discovery probes at most {DISCOVERY_PROBES} of the"
            f" {len(infos)} services listed; describe it by name"
        )
        for info in ranked[DISCOVERY_PROBES:]:
            info.error = skipped
    await asyncio.gather(*(_probe(api, info, describe_ttl_ms, refresh) for info in probed))
    return infos, notice
