"""AMQP connection targets: a URL or nuropb's dict form, parsed once, printed without secrets."""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = ["AmqpTarget", "mask_secrets", "parse_amqp_url"]

_TRUE = {"1", "true", "yes", "on"}


@dataclasses.dataclass(frozen=True)
class AmqpTarget:
    """Where and how to connect; ``repr`` and ``masked`` never show the password."""

    host: str
    port: int
    username: str
    password: str = dataclasses.field(repr=False)
    vhost: str
    tls: bool = False
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    verify: bool = True
    heartbeat: int | None = None

    @property
    def masked(self) -> str:
        scheme = "amqps" if self.tls else "amqp"
        user = f"{quote(self.username, safe='')}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}/{quote(self.vhost, safe='')}"

    def scrub(self, text: str) -> str:
        """``text`` without this target's password, in URLs or standing alone."""
        text = mask_secrets(text)
        if len(self.password) >= 3:
            text = text.replace(self.password, "***")
        return text

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        # ssl's own errors do not say which file is missing
        for name in ("cafile", "certfile", "keyfile"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise FileNotFoundError(f"TLS {name} {path!r} does not exist")
        if self.keyfile and not self.certfile:
            raise ValueError("a TLS keyfile needs its certfile")
        context = ssl.create_default_context(cafile=self.cafile)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def management_url(self) -> str:
        """The management HTTP API beside this broker: port 15672 (15671 over TLS) for a
        broker on the standard port, else the AMQP port + 10000, as nuropb derives it
        (overridden per host: see management.api_urls)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port + 10000}"

    def with_vhost(self, vhost: str) -> AmqpTarget:
        return dataclasses.replace(self, vhost=vhost)


def parse_amqp_url(amqp_url: str | Mapping[str, Any] | AmqpTarget) -> AmqpTarget:
    """Parse ``amqp[s]://user:pass@host:port/vhost?cafile=..`` or the dict form.

    A target without a vhost is an error: the vhost is the mesh.
    """
    if isinstance(amqp_url, AmqpTarget):
        return amqp_url
    if isinstance(amqp_url, Mapping):
        return _from_dict(amqp_url)
    if not isinstance(amqp_url, str):
        raise TypeError(f"amqp_url must be a str or dict, not {type(amqp_url).__name__}")
    try:
        parts = urlsplit(amqp_url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid AMQP URL {mask_secrets(amqp_url)}: {exc}") from None
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"AMQP URL must start with amqp:// or amqps://: {mask_secrets(amqp_url)}")
    vhost = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if not vhost:
        raise ValueError(
            f"AMQP URL has no vhost (the mesh name): {mask_secrets(amqp_url)};"
            " add it as the path, e.g. amqp://guest:guest@127.0.0.1:5672/nuropb-demo"
        )
    query = dict(parse_qsl(parts.query))
    tls = parts.scheme == "amqps"
    return AmqpTarget(
        host=parts.hostname or "127.0.0.1",
        port=port or (5671 if tls else 5672),
        username=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        vhost=vhost,
        tls=tls,
        cafile=query.get("cafile"),
        certfile=query.get("certfile"),
        keyfile=query.get("keyfile"),
        verify=query.get("verify", "true").lower() in _TRUE,
        heartbeat=int(query["heartbeat"]) if "heartbeat" in query else None,
    )


def _from_dict(spec: Mapping[str, Any]) -> AmqpTarget:
    vhost = spec.get("vhost")
    if not vhost:
        raise ValueError("amqp_url dict has no 'vhost' (the mesh name)")
    tls = bool(spec.get("ssl") or spec.get("use_ssl") or spec.get("cafile"))
    port = spec.get("port")
    return AmqpTarget(
        host=str(spec.get("host") or "127.0.0.1"),
        port=int(port) if port else (5671 if tls else 5672),
        username=str(spec.get("username") or "guest"),
        password=str(spec.get("password") or ("guest" if not spec.get("username") else "")),
        vhost=str(vhost),
        tls=tls,
        cafile=spec.get("cafile"),
        certfile=spec.get("certfile"),
        keyfile=spec.get("keyfile"),
        verify=bool(spec.get("verify", True)),
        heartbeat=spec.get("heartbeat"),
    )


_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<tail>@)", re.I
)


def mask_secrets(text: str) -> str:
    """Replace the password of every URL in ``text`` with ***."""
    return _URL_PASSWORD.sub(r"\g<head>***\g<tail>", text)
