"""The Lab's look at a mesh: its services (discovery) and what each offers (describe)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from ..mesh.errors import NuropbException, NuropbNotDeliveredError
from .connections import Connection, Connections
from .discovery import ServiceInfo, discover
from .errors import LabError
from .params import parameters_of
from .placement import with_placement
from .settings import Settings

__all__ = ["DESCRIBE_COLUMNS", "DESCRIBE_RETRY_S", "SERVICE_COLUMNS", "Describing"]

DESCRIBE_RETRY_S = 30.0  # a service whose describe failed is not asked again for calls before
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


class Describing:
    """The services of a mesh (discovery, always afresh) and their descriptions (cached by
    the API, asked again on ``refresh``)."""

    def __init__(self, connections: Connections, settings: Settings) -> None:
        self._connections = connections
        self._settings = settings

    async def services(
        self, alias: str | None = None, names: list[str] | None = None
    ) -> pd.DataFrame:
        """Every service on the mesh, each described afresh: instances, queued messages,
        methods, encrypted, version, description, and the error of one that did not answer.
        ``names`` adds services to probe when the management API is off."""
        connection = self._connections.connection(alias)
        connection.known.update(names or [])
        infos, notice = await discover(
            connection.api,
            connection.management,
            connection.known,
            describe_ttl_ms=int(self._settings.describe_timeout * 1000),
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

    def cached_services(self, alias: str | None = None) -> dict[str, ServiceInfo]:
        """The last discovery's services, without I/O."""
        try:
            return dict(self._connections.connection(alias).services)
        except LabError:
            return {}

    def service_names(self, alias: str | None = None) -> list[str]:
        """Known service names, without I/O (for completion)."""
        try:
            connection = self._connections.connection(alias)
        except LabError:
            return []
        return sorted(set(connection.services) | connection.known)

    def method_names(self, service: str, alias: str | None = None) -> list[str]:
        """Known method names of ``service``, without I/O (for completion)."""
        try:
            connection = self._connections.connection(alias)
        except LabError:
            return []
        description = connection.api.cached_description(service) or {}
        return sorted(description.get("methods") or {})

    async def description(
        self, service: str, refresh: bool = False, alias: str | None = None
    ) -> dict[str, Any]:
        """The raw ``nuropb_describe`` answer of a service (cached by the API)."""
        connection = self._connections.connection(alias)
        connection.known.add(service)
        return await connection.api.describe_service(
            service, refresh=refresh, ttl=int(self._settings.describe_timeout * 1000)
        )

    async def checked_against(
        self, connection: Connection, service: str, timeout: float
    ) -> dict[str, Any] | None:
        """The service's (cached) description a call is checked against; None when it cannot
        say. A failed describe is not asked again for a while, so calls to a service that
        cannot describe itself do not each wait for it first."""
        description: dict[str, Any] | None = connection.api.cached_description(service)
        if description is None:
            if time.monotonic() < connection.undescribable.get(service, 0.0):
                return None
            try:
                description = await connection.api.describe_service(
                    service, ttl=int(min(self._settings.describe_timeout, timeout) * 1000)
                )
            except NuropbNotDeliveredError:
                raise  # no such service: said at once, as for the call itself
            except NuropbException:
                connection.undescribable[service] = time.monotonic() + DESCRIBE_RETRY_S
                return None
        return description

    async def known_description(
        self, service: str, alias: str | None = None
    ) -> dict[str, Any] | None:
        """The description a call to ``service`` is checked against (cached); None when the
        service cannot give one now."""
        connection = self._connections.connection(alias)
        return await self.checked_against(connection, service, self._settings.timeout)

    async def describe(
        self,
        service: str,
        method: str | None = None,
        refresh: bool = False,
        alias: str | None = None,
    ) -> pd.DataFrame:
        """A service's methods and parameters (one row per parameter), with encryption."""
        description = await self.description(service, refresh, alias)
        methods = description.get("methods") or {}
        if method is not None and method not in methods:
            raise LabError(
                f"{service} has no method {method!r} (methods: {', '.join(sorted(methods))})"
            )
        rows: list[list[Any]] = []
        for name in sorted(methods) if method is None else [method]:
            spec = methods[name] or {}
            properties, required = parameters_of(spec)
            encrypted = bool(spec.get("requires_encryption"))
            if not properties:
                rows.append([name, None, None, None, None, encrypted, spec.get("description")])
            for param, pspec in properties:
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
