"""Test-only TLS setup: a throwaway CA with server and client certificates, and a separate
RabbitMQ node with a TLS listener (the system broker's config is never touched)."""

from .certs import Certificates, make_certificates
from .node import TlsNode, TlsNodeUnavailable, start_tls_node

__all__ = [
    "Certificates",
    "TlsNode",
    "TlsNodeUnavailable",
    "make_certificates",
    "start_tls_node",
]
