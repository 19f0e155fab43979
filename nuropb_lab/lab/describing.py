"""The Lab's look at a mesh: its services, what each offers, its keys and dead letters."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..mesh.errors import NuropbException
from .base import LabBase, LabError, awaitable, background, blocking
from .dead_letters import dead_letter_queue, dead_letter_rows, read_dead_letters
from .discovery import ServiceInfo, discover
from .keys import key_row, keys_frame
from .params import parameters_of
from .placement import with_placement

__all__ = ["DESCRIBE_COLUMNS", "SERVICE_COLUMNS", "DescribingMixin"]

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


class DescribingMixin(LabBase):
    """The services of a mesh (discovery), what each offers (describe), their keys, and the
    dead-letter queue."""

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

    services = blocking(_services)
    aservices = awaitable(_services)

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

    description = blocking(LabBase._description)
    adescription = awaitable(LabBase._description)

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

    describe = blocking(_describe)
    adescribe = awaitable(_describe)

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

    dead_letters = blocking(_dead_letters)
    adead_letters = awaitable(_dead_letters)

    # --- keys -------------------------------------------------------------------------------

    async def _keys(self, service: str | None = None, alias: str | None = None) -> pd.DataFrame:
        """Encryption status per service (each described again): the fingerprint (SHA-256 of
        the DER public key) of the key it shows and of the key pinned for it, key size, methods
        that require encryption (as described, or seen so before), encrypted calls made and
        failed, and warnings: a describe conflict, a key that is not the pinned one or is under
        2048 bits, encrypted methods without a key."""
        connection = self.connection(alias)
        if service is not None:
            services = [service]
        else:
            if not connection.services:
                await self._services(alias)
            services = sorted(connection.services)
        records = self._history.records()
        descriptions = connection.api.descriptions
        rows = []
        for name in services:
            try:
                description = await self._description(name, refresh=True, alias=alias)
            except NuropbException as exc:
                error = f"{type(exc).__name__}: {exc}"
                rows.append(key_row(name, None, records, descriptions.status(name), error))
                continue
            rows.append(key_row(name, description, records, descriptions.status(name)))
        return keys_frame(rows)

    keys = blocking(_keys)
    akeys = awaitable(_keys)
    start_keys = background(_keys)

    async def _trust(self, service: str, fingerprint: str, alias: str | None = None) -> None:
        """Accept ``fingerprint`` (as ``lab.keys()`` shows it) as the key of ``service`` on
        this connection's mesh: pinned in the known keys in place of any other, ending a
        describe conflict. Check it with the service's owner first."""
        self.connection(alias).api.descriptions.trust(service, fingerprint)

    trust = blocking(_trust)
    atrust = awaitable(_trust)
