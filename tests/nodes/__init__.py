"""Throwaway RabbitMQ nodes for the tests (never the system broker): one node of any
configuration, and a 3-node cluster, of this machine's RabbitMQ or of a Debian root's."""

from .binaries import ROOT_ENV, Binaries, Epmd
from .cluster import Cluster, start_cluster
from .node import STRICT, NodeUnavailable, RabbitNode, answers, free_port, tool

__all__ = [
    "ROOT_ENV",
    "STRICT",
    "Binaries",
    "Cluster",
    "Epmd",
    "NodeUnavailable",
    "RabbitNode",
    "answers",
    "free_port",
    "start_cluster",
    "tool",
]
