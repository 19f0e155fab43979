"""A small client for the RabbitMQ management HTTP API (stdlib HTTP, run off the event loop)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from .errors import NuropbTransportError
from .urls import AmqpTarget

__all__ = ["ManagementAPI", "ManagementUnavailable"]


class ManagementUnavailable(NuropbTransportError):
    """The management API could not be reached or refused the credentials."""


def _reason(exc: urllib.error.HTTPError) -> str:
    """The ``reason`` of the management API's JSON error body, if it has one."""
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return ""
    return str(body.get("reason") or "") if isinstance(body, dict) else ""


class ManagementAPI:
    """Calls ``/api/...`` with basic auth; every call is bounded by ``timeout`` seconds."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.timeout = timeout
        self._ssl = ssl.create_default_context() if self.base_url.startswith("https") else None

    @classmethod
    def for_target(
        cls, target: AmqpTarget, url: str | None = None, timeout: float = 5.0
    ) -> ManagementAPI:
        return cls(url or target.management_url(), target.username, target.password, timeout)

    def __repr__(self) -> str:
        return f"ManagementAPI({self.base_url!r}, user={self.username!r})"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + "/api/" + path, data=data, method=method)
        request.add_header("Authorization", self._auth)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if exc.code == 401:
                why = _reason(exc)
                raise ManagementUnavailable(
                    f"management API at {self.base_url} refused user {self.username!r}"
                    f" (401{': ' + why if why else ''})"
                ) from None
            raise ManagementUnavailable(
                f"management API {method} /api/{path} failed: {exc.code} {exc.reason}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ManagementUnavailable(
                f"management API at {self.base_url} is unreachable ({reason}); enable it with"
                " `rabbitmq-plugins enable rabbitmq_management` or set NUROPB_MANAGEMENT_URL"
            ) from None
        return json.loads(raw) if raw else None

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self._call, method, path, body)

    async def get(self, path: str) -> Any:
        return await self.call("GET", path)

    async def available(self) -> bool:
        try:
            await self.get("overview")
        except ManagementUnavailable:
            return False
        return True

    async def vhost_exists(self, vhost: str) -> bool:
        return await self.get(f"vhosts/{quote(vhost, safe='')}") is not None

    async def create_vhost(self, vhost: str) -> None:
        """Create ``vhost`` (idempotent) and give this user full permissions on it."""
        name = quote(vhost, safe="")
        await self.call("PUT", f"vhosts/{name}", {})
        await self.call(
            "PUT",
            f"permissions/{name}/{quote(self.username, safe='')}",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )

    async def delete_vhost(self, vhost: str) -> None:
        await self.call("DELETE", f"vhosts/{quote(vhost, safe='')}")

    async def queues(self, vhost: str) -> list[dict[str, Any]]:
        columns = "name,consumers,messages,messages_ready,durable,auto_delete,arguments"
        result = await self.get(f"queues/{quote(vhost, safe='')}?columns={columns}")
        return list(result or [])

    async def exchange_bindings(self, vhost: str, exchange: str) -> list[dict[str, Any]]:
        path = f"exchanges/{quote(vhost, safe='')}/{quote(exchange, safe='')}/bindings/source"
        return list(await self.get(path) or [])

    async def connections(self, vhost: str | None = None) -> list[dict[str, Any]]:
        path = f"vhosts/{quote(vhost, safe='')}/connections" if vhost else "connections"
        return list(await self.get(path) or [])

    async def whoami(self) -> dict[str, Any]:
        """This user's name and tags (``administrator``, ``management`` ...)."""
        return dict(await self.get("whoami") or {})

    async def tracing(self, vhost: str) -> bool | None:
        """Whether the vhost's firehose (``amq.rabbitmq.trace``) is on; None when the vhost is
        not visible. The vhost list is open to any management user; one vhost is not."""
        for row in await self.get("vhosts?columns=name,tracing") or []:
            if row.get("name") == vhost:
                return bool(row.get("tracing"))
        return None

    def set_tracing_blocking(self, vhost: str, on: bool) -> None:
        """Switch the vhost's firehose on or off (administrator only), blocking. The PUT
        replaces the vhost's settings, so its description, tags and default queue type are
        sent as they are."""
        name = quote(vhost, safe="")
        info = self._call("GET", f"vhosts/{name}")
        if info is None:
            raise ManagementUnavailable(f"no vhost {vhost!r} on {self.base_url}")
        body: dict[str, Any] = {"tracing": on}
        if info.get("description"):
            body["description"] = info["description"]
        tags = info.get("tags")
        if tags:
            body["tags"] = ",".join(tags) if isinstance(tags, list) else str(tags)
        queue_type = info.get("default_queue_type")
        if queue_type and queue_type != "undefined":
            body["default_queue_type"] = queue_type
        self._call("PUT", f"vhosts/{name}", body)

    async def set_tracing(self, vhost: str, on: bool) -> None:
        await asyncio.to_thread(self.set_tracing_blocking, vhost, on)

    async def global_parameter(self, name: str) -> Any:
        """The value of a global runtime parameter, or None when there is none."""
        found = await self.get(f"global-parameters/{quote(name, safe='')}")
        return found.get("value") if isinstance(found, dict) else None

    async def set_global_parameter(self, name: str, value: Any) -> None:
        """Set a global runtime parameter (administrator only)."""
        body = {"name": name, "value": value}
        await self.call("PUT", f"global-parameters/{quote(name, safe='')}", body)

    async def delete_global_parameter(self, name: str) -> None:
        await self.call("DELETE", f"global-parameters/{quote(name, safe='')}")

    async def close_connection(self, name: str, reason: str = "closed by nuropb-lab") -> None:
        request = urllib.request.Request(
            f"{self.base_url}/api/connections/{quote(name, safe='')}", method="DELETE"
        )
        request.add_header("Authorization", self._auth)
        request.add_header("X-Reason", reason)

        def _delete() -> None:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl):
                    pass
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise ManagementUnavailable(f"closing connection failed: {exc.code}") from None

        await asyncio.to_thread(_delete)
