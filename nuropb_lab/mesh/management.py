"""A small client for the RabbitMQ management HTTP API (stdlib HTTP, run off the event loop).

On a cluster every node's API answers for the whole cluster: given several, a call goes to the
one that answered last and fails over to the others when it cannot be reached.

The password goes only where it was meant to: a redirect is not followed (urllib would send
the Authorization header on to wherever it points); plain http to another machine is warned
about; for an amqps mesh plain http is refused unless allowed (``allow_http``, or
$NUROPB_MANAGEMENT_ALLOW_HTTP=1); and an override of an API's URL ($NUROPB_MANAGEMENT_URL,
``management_url``) applies to the nodes on the host it names only (see :func:`api_urls`).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import ssl
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from .errors import NuropbTransportError
from .nodes import Nodes, split_urls
from .urls import AmqpTarget

T = TypeVar("T")

__all__ = ["ManagementAPI", "ManagementUnavailable", "api_urls"]

_TRUE = {"1", "true", "yes", "on"}


class ManagementUnavailable(NuropbTransportError):
    """The management API could not be reached or refused the credentials."""


class _Unreachable(ManagementUnavailable):
    """This node's API could not be reached: another node's may be."""


def _reason(exc: urllib.error.HTTPError) -> str:
    """The ``reason`` of the management API's JSON error body, if it has one."""
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return ""
    return str(body.get("reason") or "") if isinstance(body, dict) else ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect comes back as its HTTPError: urllib would follow it with the same
    Authorization header, to any host."""

    def redirect_request(self, *args: Any) -> None:
        return None


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_urls(nodes: Nodes, override: str | None = None) -> tuple[list[str], list[str]]:
    """The management API of each node (once each), and the override entries that named no
    node. ``override`` (default $NUROPB_MANAGEMENT_URL) is comma-separated entries: ``URL``
    applies to the nodes on that URL's host, ``HOST=URL`` (or ``HOST:PORT=URL``) to the nodes
    at that AMQP host (and port); a node no entry names has the API beside it (its AMQP port
    + 10000). So a password for broker B never goes to an API given for broker A."""
    spec = override if override is not None else os.environ.get("NUROPB_MANAGEMENT_URL", "")
    entries: list[tuple[str, str]] = []  # (host or host:port, url)
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        head, sep, tail = entry.partition("=")
        if sep and "://" not in head:
            entries.append((head.strip().lower(), tail.strip().rstrip("/")))
        else:
            entries.append(((urlsplit(entry).hostname or "").lower(), entry.rstrip("/")))
    urls: list[str] = []
    used: set[str] = set()
    for target in nodes:
        names = {target.host.lower(), f"{target.host}:{target.port}".lower()}
        mine = [url for host, url in entries if host in names]
        used.update(mine)
        urls += mine or [target.management_url()]
    return list(dict.fromkeys(urls)), [url for _, url in entries if url not in used]


class ManagementAPI:
    """Calls ``/api/...`` with basic auth; every call is bounded by ``timeout`` seconds (per
    node tried). ``base_url``: one URL, or one per node (a list, or comma-separated).
    ``https_only``: the credentials are not sent over plain http (an amqps mesh's)."""

    def __init__(
        self,
        base_url: str | Sequence[str],
        username: str,
        password: str,
        timeout: float = 5.0,
        https_only: bool = False,
    ) -> None:
        urls = split_urls(base_url) if isinstance(base_url, str) else list(base_url)
        self.base_urls = [url.rstrip("/") for url in urls] or [str(base_url).rstrip("/")]
        self.username = username
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.timeout = timeout
        self.https_only = https_only
        self.unused: list[str] = []  # override entries that named no node (api_urls)
        handlers: list[Any] = [_NoRedirect]
        if any(url.startswith("https") for url in self.base_urls):
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context()))
        self._opener = urllib.request.build_opener(*handlers)
        for url in self.base_urls:
            if url.startswith("http:") and not _loopback(url) and not https_only:
                warnings.warn(
                    f"the management API at {url} is plain http: the password of"
                    f" {username!r} crosses the network readable (use https)",
                    UserWarning,
                    stacklevel=2,
                )

    @classmethod
    def for_target(
        cls,
        target: AmqpTarget | Nodes,
        url: str | None = None,
        timeout: float = 5.0,
        allow_http: bool | None = None,
    ) -> ManagementAPI:
        """The API beside the target's node, or beside each of its nodes; ``url`` (default
        $NUROPB_MANAGEMENT_URL) overrides it for the hosts it names (see :func:`api_urls`).
        For an amqps mesh the password goes over https only, unless ``allow_http`` (default:
        $NUROPB_MANAGEMENT_ALLOW_HTTP)."""
        nodes = target if isinstance(target, Nodes) else Nodes([target])
        user = nodes.first
        urls, unused = api_urls(nodes, url)
        if allow_http is None:
            allow_http = os.environ.get("NUROPB_MANAGEMENT_ALLOW_HTTP", "").lower() in _TRUE
        https_only = any(t.tls for t in nodes) and not allow_http
        api = cls(urls, user.username, user.password, timeout, https_only)
        api.unused = unused
        return api

    @property
    def base_url(self) -> str:
        """The node's API asked first (the one that answered last)."""
        return self.base_urls[0]

    def __repr__(self) -> str:
        return f"ManagementAPI({', '.join(self.base_urls)!r}, user={self.username!r})"

    def call_blocking(self, method: str, path: str, body: Any = None) -> Any:
        """``method /api/{path}`` (a JSON ``body``), blocking: the decoded answer, None for
        404. For code without an event loop (exit handlers, widgets' redraws, scripts)."""
        return self._failover(lambda base: self._call_one(base, method, path, body))

    def _failover(self, call: Callable[[str], T]) -> T:
        """``call(base_url)`` on each node's API in turn until one can be reached; the one
        that answered is asked first next time."""
        unreachable: ManagementUnavailable | None = None
        for base in list(self.base_urls):
            try:
                result = call(base)
            except _Unreachable as exc:
                unreachable = unreachable or exc
                continue
            if base != self.base_urls[0]:  # one assignment: calls run in threads at once
                self.base_urls = [base, *(url for url in self.base_urls if url != base)]
            return result
        assert unreachable is not None
        if len(self.base_urls) > 1:
            raise ManagementUnavailable(
                f"no management API of the {len(self.base_urls)} nodes answered"
                f" ({', '.join(self.base_urls)}); {unreachable}"
            ) from None
        raise unreachable

    def _open(self, base: str, request: urllib.request.Request) -> bytes:
        """Send ``request`` (to ``base``) with the credentials; its body. A refused plain-http
        send, a redirect or an unreachable API is _Unreachable (another node's may do)."""
        if self.https_only and not base.startswith("https"):
            raise _Unreachable(
                f"refusing to send the password of {self.username!r} to {base} over plain http:"
                " the mesh is amqps; give an https management URL (NUROPB_MANAGEMENT_URL), or"
                " allow it with NUROPB_MANAGEMENT_ALLOW_HTTP=1 (allow_http=True)"
            )
        request.add_header("Authorization", self._auth)
        try:
            with self._opener.open(request, timeout=self.timeout) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                raise _Unreachable(
                    f"management API at {base} redirected ({exc.code}) to"
                    f" {exc.headers.get('Location')!r}, which is not followed (the password"
                    " goes to the URL given only); set NUROPB_MANAGEMENT_URL to the API's URL"
                ) from None
            raise
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            unused = (
                f"; NUROPB_MANAGEMENT_URL / management_url entries for no node of this mesh:"
                f" {', '.join(self.unused)} (HOST=URL names the AMQP host one is for)"
                if self.unused
                else ""
            )
            raise _Unreachable(
                f"management API at {base} is unreachable ({reason}); enable it with"
                " `rabbitmq-plugins enable rabbitmq_management` or set NUROPB_MANAGEMENT_URL"
                f"{unused}"
            ) from None

    def _call_one(self, base: str, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + "/api/" + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            raw = self._open(base, request)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if exc.code == 401:
                why = _reason(exc)
                raise ManagementUnavailable(
                    f"management API at {base} refused user {self.username!r}"
                    f" (401{': ' + why if why else ''})"
                ) from None
            raise ManagementUnavailable(
                f"management API {method} /api/{path} failed: {exc.code} {exc.reason}"
            ) from None
        return json.loads(raw) if raw else None

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self.call_blocking, method, path, body)

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
        """Create ``vhost`` (idempotent), give this user full permissions on it, and wait
        (at most ``timeout``) until every node of a cluster runs it: a node starts a new
        vhost a moment after the PUT returns, and refuses connections to it until then."""
        name = quote(vhost, safe="")
        await self.call("PUT", f"vhosts/{name}", {})
        await self.call(
            "PUT",
            f"permissions/{name}/{quote(self.username, safe='')}",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        started = False
        while loop.time() < deadline:
            state = (await self.get(f"vhosts/{name}") or {}).get("cluster_state") or {}
            stopped = [node for node, value in state.items() if value != "running"]
            if not stopped:
                return
            if not started and loop.time() > deadline - self.timeout / 2:
                # a node still finishing its boot when the vhost was made never starts it
                for node in stopped:
                    await self.call("POST", f"vhosts/{name}/start/{quote(node, safe='')}")
                started = True
            await asyncio.sleep(0.1)

    async def delete_vhost(self, vhost: str) -> None:
        await self.call("DELETE", f"vhosts/{quote(vhost, safe='')}")

    async def queues(self, vhost: str) -> list[dict[str, Any]]:
        # with where each queue lives: its node (a mirrored queue's master, a quorum queue's
        # leader), mirrors (in sync) or quorum members (online), and "down" when its node is
        columns = (
            "name,consumers,messages,messages_ready,durable,auto_delete,arguments,type,state,"
            "node,slave_nodes,synchronised_slave_nodes,leader,members,online,"
            "effective_policy_definition"
        )
        result = await self.get(f"queues/{quote(vhost, safe='')}?columns={columns}")
        return list(result or [])

    async def exchanges(self, vhost: str) -> list[dict[str, Any]]:
        columns = "name,type,durable,auto_delete,internal,arguments"
        result = await self.get(f"exchanges/{quote(vhost, safe='')}?columns={columns}")
        return list(result or [])

    async def bindings(self, vhost: str) -> list[dict[str, Any]]:
        return list(await self.get(f"bindings/{quote(vhost, safe='')}") or [])

    async def exchange_bindings(self, vhost: str, exchange: str) -> list[dict[str, Any]]:
        path = f"exchanges/{quote(vhost, safe='')}/{quote(exchange, safe='')}/bindings/source"
        return list(await self.get(path) or [])

    async def connections(self, vhost: str | None = None) -> list[dict[str, Any]]:
        path = f"vhosts/{quote(vhost, safe='')}/connections" if vhost else "connections"
        return list(await self.get(path) or [])

    async def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes: name and whether running."""
        return list(await self.get("nodes?columns=name,running") or [])

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
        info = self.call_blocking("GET", f"vhosts/{name}")
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
            # 3.10 reads "defaultqueuetype" (and ignores the other); later ones either
            body["default_queue_type"] = body["defaultqueuetype"] = queue_type
        self.call_blocking("PUT", f"vhosts/{name}", body)

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
        def _delete(base: str) -> None:
            request = urllib.request.Request(
                f"{base}/api/connections/{quote(name, safe='')}", method="DELETE"
            )
            request.add_header("X-Reason", reason)
            try:
                self._open(base, request)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise ManagementUnavailable(f"closing connection failed: {exc.code}") from None

        await asyncio.to_thread(self._failover, _delete)
