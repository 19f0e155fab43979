"""Encryption status per service: the key seen and the key pinned, size, encrypted methods,
calls, and warnings (a conflict, a changed or short key, encrypted methods without a key);
and trusting a key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ..mesh.descriptions import KeyStatus
from ..mesh.errors import NuropbException
from ..mesh.topology import Topology
from .connections import Connection, Connections
from .describing import Describing
from .history import CallRecord, History

__all__ = ["KEY_COLUMNS", "Keys", "key_row", "keys_frame"]

KEY_COLUMNS = [
    "service",
    "public_key",
    "fingerprint",
    "pinned",
    "key_size",
    "encrypted_methods",
    "encrypted_calls",
    "encrypted_failed",
    "warnings",
]


def key_row(
    service: str,
    description: Mapping[str, Any] | None,
    calls: Iterable[CallRecord],
    status: KeyStatus,
    error: str | None = None,
) -> dict[str, Any]:
    """One service's encryption status: ``status`` is what the API knows of its key,
    ``error`` why it gave no description now."""
    description = description or {}
    methods = description.get("methods") or {}
    described = {m for m, spec in methods.items() if (spec or {}).get("requires_encryption")}
    needs = sorted(described | status.requires_encryption)
    warnings = [f"no description: {error}"] if error else []
    warnings += [str(w) for w in description.get("warnings") or []]
    if status.problem is not None and not any(status.problem in w for w in warnings):
        warnings.append(status.problem)
    elif needs and not status.fingerprint:
        warnings.append("encrypted methods but no public key")
    encrypted = [c for c in calls if c.service == service and c.encrypted]
    return {
        "service": service,
        "public_key": bool(status.fingerprint),
        "fingerprint": status.fingerprint,
        "pinned": status.pinned,
        "key_size": status.key_size,
        "encrypted_methods": needs,
        "encrypted_calls": len(encrypted),
        "encrypted_failed": sum(not c.ok for c in encrypted),
        "warnings": warnings,
    }


def keys_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=KEY_COLUMNS)


class Keys:
    """The keys of a mesh's services, as seen and as pinned, and trusting one."""

    def __init__(self, connections: Connections, describing: Describing, history: History) -> None:
        self._connections = connections
        self._describing = describing
        self._history = history

    async def keys(self, service: str | None = None, alias: str | None = None) -> pd.DataFrame:
        """Encryption status per service (each described again): the fingerprint (SHA-256 of
        the DER public key) of the key it shows and of the key pinned for it, key size, methods
        that require encryption (as described, or seen so before), encrypted calls made and
        failed, and warnings: a describe conflict, a key that is not the pinned one or is under
        2048 bits, encrypted methods without a key."""
        connection = self._connections.connection(alias)
        if service is not None:
            services = [service]
        else:
            if not connection.services:
                await self._describing.services(alias)
            services = sorted(connection.services)
        records = self._history.records()
        descriptions = connection.api.descriptions
        rows = []
        for name in services:
            if await self._no_instances(connection, name):  # nobody would answer a describe
                cached = connection.api.cached_description(name)
                rows.append(key_row(name, cached, records, descriptions.status(name)))
                continue
            try:
                description = await self._describing.description(name, refresh=True, alias=alias)
            except NuropbException as exc:
                error = f"{type(exc).__name__}: {exc}"
                rows.append(key_row(name, None, records, descriptions.status(name), error))
                continue
            rows.append(key_row(name, description, records, descriptions.status(name)))
        return keys_frame(rows)

    @staticmethod
    async def _no_instances(connection: Connection, service: str) -> bool:
        """Whether the service's queue is there with no consumer (a service stopped, its queue
        left): asking it to describe itself would only wait for its timeout."""
        info = connection.services.get(service)
        queue = info.queue if info is not None else Topology.service_queue(service)
        try:
            counts = await connection.api.queue_info(queue)
        except NuropbException:
            return False  # the describe says what is wrong
        return counts is not None and counts[1] == 0

    async def trust(self, service: str, fingerprint: str, alias: str | None = None) -> None:
        """Accept ``fingerprint`` (as ``lab.keys()`` shows it) as the key of ``service`` on
        this connection's mesh: pinned in the known keys in place of any other, ending a
        describe conflict. Check it with the service's owner first."""
        self._connections.connection(alias).api.descriptions.trust(service, fingerprint)
