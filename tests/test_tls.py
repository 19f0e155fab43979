"""TLS against a separate RabbitMQ node with a TLS listener (``ssl_options.verify =
verify_peer``) and a throwaway CA, both made here: ``amqps://`` URLs, nuropb's dict form with a
client certificate, and clear errors for an untrusted server or client."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from support import wait_until
from tls import Certificates, TlsNode, TlsNodeUnavailable, make_certificates, start_tls_node

import nuropb_lab as nl


class Echo:
    def echo(self, text: str) -> str:
        return text

    @nl.publish_to_mesh(requires_encryption=True)
    def secret(self, text: str) -> str:
        return text[::-1]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNode]:
    home = tmp_path_factory.mktemp("tls")
    certs = make_certificates(home / "certs")
    try:
        started = start_tls_node(home / "node", certs)
    except TlsNodeUnavailable as exc:
        print(f"TLS node unavailable: {exc}", file=sys.stderr)
        pytest.skip(f"cannot start a RabbitMQ node with a TLS listener here: {exc}")
    print(f"\nTLS node {started.name} booted in {started.boot_seconds:.1f} s", file=sys.stderr)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Another CA, and a client certificate it signed, that the node does not trust."""
    return make_certificates(tmp_path_factory.mktemp("rogue"), "rogue")


def url_for(node: TlsNode, **files: Path) -> str:
    query = "&".join(f"{name}={quote(str(path))}" for name, path in files.items())
    return f"amqps://guest:guest@localhost:{node.tls_port}/{node.mesh}?{query}"


def dict_for(node: TlsNode, certs: Certificates, **overrides: Any) -> dict[str, Any]:
    return {
        "host": "localhost",
        "port": node.tls_port,
        "username": "guest",
        "password": "guest",
        "vhost": node.mesh,
        "cafile": str(certs.cafile),
        "certfile": str(certs.client_cert),
        "keyfile": str(certs.client_key),
        **overrides,
    }


def connections(node: TlsNode) -> dict[str, dict[str, Any]]:
    """The node's connections by client-given name, with ``ssl`` and ``peer_cert_subject``."""
    columns = ("client_properties", "ssl", "peer_cert_subject")
    rows = json.loads(node.rabbitmqctl("list_connections", "-q", "--formatter", "json", *columns))
    by_name = {}
    for row in rows:
        properties = {item[0]: item[-1] for item in row["client_properties"]}
        by_name[str(properties.get("connection_name"))] = row
    return by_name


async def test_amqps_url_round_trip(node: TlsNode) -> None:
    """The service presents a client certificate (in the URL); the client gives only the CA."""
    certs = node.certs
    service_url = url_for(
        node, cafile=certs.cafile, certfile=certs.client_cert, keyfile=certs.client_key
    )
    async with nl.RMQAPI(service_url, "tls-echo", service_instance=Echo()) as service:
        async with nl.RMQAPI(url_for(node, cafile=certs.cafile)) as client:
            assert client.target.tls and client.target.masked.startswith("amqps://")
            assert await client.request("tls-echo", "echo", {"text": "hi"}, {}, ttl=5000) == "hi"
            encrypted = await client.request(
                "tls-echo", "secret", {"text": "abc"}, {}, ttl=5000, encrypted=True
            )
            assert encrypted == "cba"
            seen = connections(node)
            service_row = seen[service.transport.config.connection_name]
            client_row = seen[client.transport.config.connection_name]
            assert service_row["ssl"] and client_row["ssl"]
            assert f"CN={certs.client_cn}" in service_row["peer_cert_subject"]
            assert client_row["peer_cert_subject"] in ("", None, [])  # presented none


async def test_dict_form_with_client_certificate(node: TlsNode) -> None:
    spec = dict_for(node, node.certs)
    async with nl.RMQAPI(spec, "tls-dict", service_instance=Echo()):
        async with nl.RMQAPI(spec) as client:
            assert client.target.tls and client.target.certfile == spec["certfile"]
            assert await client.request("tls-dict", "echo", {"text": "x"}, {}, ttl=5000) == "x"
            row = connections(node)[client.transport.config.connection_name]
            assert row["ssl"] and f"CN={node.certs.client_cn}" in row["peer_cert_subject"]


async def test_events_over_tls(node: TlsNode) -> None:
    """Subscriptions are consumed on a connection of their own, with the same TLS settings."""

    async def events_row(target: str | dict[str, Any]) -> dict[str, Any]:
        seen: list[nl.MeshEvent] = []
        async with nl.RMQAPI(target) as api:
            await api.subscribe(["tls.#"], seen.append)
            await api.publish_event("tls.x", {"ok": True}, {})
            await wait_until(lambda: seen, what="the event over TLS")
            assert seen[0].event == {"ok": True}
            assert api.transport.events is not None
            return connections(node)[api.transport.events.name]

    with_certificate = await events_row(dict_for(node, node.certs))
    assert with_certificate["ssl"]
    assert f"CN={node.certs.client_cn}" in with_certificate["peer_cert_subject"]
    ca_only = await events_row(url_for(node, cafile=node.certs.cafile))
    assert ca_only["ssl"] and ca_only["peer_cert_subject"] in ("", None, [])


async def test_untrusted_server_is_a_clear_transport_error(
    node: TlsNode, rogue: Certificates
) -> None:
    """A CA that did not sign the server's certificate: refused at once, saying why."""
    for target in (
        url_for(node, cafile=rogue.cafile),
        dict_for(node, node.certs, cafile=str(rogue.cafile)),
    ):
        api = nl.RMQAPI(target, transport_settings={"connect_timeout": 5})
        with pytest.raises(nl.NuropbTransportError, match="certificate verify failed") as info:
            await asyncio.wait_for(api.connect(), 10)
        assert "amqps://guest:***@localhost" in str(info.value)  # where, without the password
        assert not api.connected


async def test_untrusted_client_certificate_is_refused(node: TlsNode, rogue: Certificates) -> None:
    spec = dict_for(
        node, node.certs, certfile=str(rogue.client_cert), keyfile=str(rogue.client_key)
    )
    api = nl.RMQAPI(spec, transport_settings={"connect_timeout": 5})
    with pytest.raises(nl.NuropbTransportError, match="client certificate"):
        await asyncio.wait_for(api.connect(), 10)
    assert not api.connected


async def test_tls_mistakes_are_clear_errors(node: TlsNode, tmp_path: Path) -> None:
    plain = f"amqp://guest:guest@localhost:{node.tls_port}/{node.mesh}"
    with pytest.raises(nl.NuropbTransportError, match="TLS listener"):
        await asyncio.wait_for(nl.RMQAPI(plain).connect(), 10)
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(nl.NuropbTransportError, match=f"cafile '{missing}' does not exist"):
        await nl.RMQAPI(url_for(node, cafile=missing)).connect()
