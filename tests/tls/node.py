"""A separate, throwaway RabbitMQ node with a TLS listener, for the TLS tests.

Its node name, data, logs, config, cookie (HOME) and ports are its own (a
:class:`nodes.RabbitNode`), so the system broker and its config are never touched.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nodes import NodeUnavailable, RabbitNode, free_port

from .certs import Certificates

__all__ = ["TlsNode", "TlsNodeUnavailable", "start_tls_node"]

MESH = "nuropb-tls"
TlsNodeUnavailable = NodeUnavailable  # the TLS node could not be started here


@dataclasses.dataclass
class TlsNode:
    node: RabbitNode
    tls_port: int
    certs: Certificates

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def home(self) -> Path:
        return self.node.home

    @property
    def boot_seconds(self) -> float:
        return self.node.boot_seconds

    @property
    def mesh(self) -> str:
        return MESH

    def rabbitmqctl(self, *args: str, timeout: float = 30) -> str:
        return self.node.rabbitmqctl(*args, timeout=timeout)

    def stop(self, timeout: float = 60) -> None:
        self.node.stop(timeout)


def start_tls_node(home: Path, certs: Certificates, boot_timeout: float = 90) -> TlsNode:
    """Boot a node whose only listener is TLS (verify_peer) on a spare port; wait for it."""
    tls_port = free_port()
    config = (
        "listeners.tcp = none\n"
        f"listeners.ssl.default = 127.0.0.1:{tls_port}\n"
        f"ssl_options.cacertfile = {certs.cafile}\n"
        f"ssl_options.certfile = {certs.server_cert}\n"
        f"ssl_options.keyfile = {certs.server_key}\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = false\n"
        "loopback_users = none\n"
        f"default_vhost = {MESH}\n"
    )
    node = RabbitNode(home, f"nuropb-tls-{tls_port}@localhost", config, ports=[tls_port])
    node.start()
    node.wait_ready(boot_timeout)
    return TlsNode(node, tls_port, certs)
