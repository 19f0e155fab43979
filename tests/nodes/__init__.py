"""Throwaway RabbitMQ nodes for the tests (never the system broker): one node of any
configuration, and a 3-node cluster."""

from .cluster import Cluster, start_cluster
from .node import NodeUnavailable, RabbitNode, answers, free_port, tool

__all__ = [
    "Cluster",
    "NodeUnavailable",
    "RabbitNode",
    "answers",
    "free_port",
    "start_cluster",
    "tool",
]
