"""A throwaway 3-node RabbitMQ cluster on this machine, for the cluster tests.

Each node has a name, AMQP, management and distribution ports, data, logs and HOME of its own;
the three share one Erlang cookie (made here, not the system broker's). The first node boots
alone; the others find it by classic-config peer discovery and join it as they boot. A node
that was killed is started again with the same data and rejoins by itself. The management API
of each node listens on its AMQP port + 10000, where nuropb (and the lab) look for it.
"""

from __future__ import annotations

import concurrent.futures
import json
import secrets
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .binaries import Binaries, Epmd, spare_amqp_port
from .node import NodeUnavailable, RabbitNode

__all__ = ["Cluster", "start_cluster"]

LETTERS = ("a", "b", "c")


class Cluster:
    """Nodes ``a``, ``b``, ``c``: URLs per node, kill and restart a node, its management API."""

    def __init__(
        self, home: Path, nodes: dict[str, RabbitNode], ports: dict[str, int], epmd: Epmd
    ) -> None:
        self.home = home
        self.nodes = nodes
        self.ports = ports  # AMQP port by letter
        self.epmd = epmd  # the three nodes' own
        self.boot_seconds = 0.0

    def __repr__(self) -> str:
        return f"<Cluster {', '.join(repr(n) for n in self.nodes.values())}>"

    def node_name(self, letter: str) -> str:
        return self.nodes[letter].name

    def letter_of(self, node_name: str) -> str:
        return next(k for k, node in self.nodes.items() if node.name == node_name)

    def url(self, letter: str, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.ports[letter]}/{quote(vhost, safe='')}"

    def urls(self, vhost: str, order: str = "abc") -> list[str]:
        return [self.url(letter, vhost) for letter in order]

    def management_url(self, letter: str) -> str:
        return f"http://127.0.0.1:{self.ports[letter] + 10000}"

    def api(self, method: str, path: str, body: Any = None, letter: str | None = None) -> Any:
        """Call the management API of ``letter`` (default: the first running node)."""
        letter = letter or next(k for k, node in self.nodes.items() if node.running)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.management_url(letter)}/api/{path}", data=data, method=method
        )
        request.add_header("Authorization", "Basic " + b64encode(b"guest:guest").decode())
        request.add_header("Content-Type", "application/json")
        # generous: a vhost made just after the cluster formed waits for every node to start it
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def put_vhost(self, vhost: str, body: dict[str, Any], timeout: float = 90) -> None:
        """Create a vhost and wait until every running node runs it. The PUT is made again
        while the cluster answers 5xx (a node still settling after its boot fails it for a
        while), and a node starts a new vhost a moment after the PUT returns: a connection to
        it before then is refused as if there were no such vhost."""
        deadline = time.monotonic() + timeout
        name = quote(vhost, safe="")
        while True:
            try:
                self.api("PUT", f"vhosts/{name}", body)
                break
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)
        running = {self.nodes[letter].name: letter for letter in self.running_nodes()}
        restart_at = time.monotonic() + 5
        while True:
            state = (self.api("GET", f"vhosts/{name}") or {}).get("cluster_state") or {}
            stopped = [node for node in running if state.get(node) != "running"]
            if not stopped:
                return
            if time.monotonic() > deadline:
                raise NodeUnavailable(f"vhost {vhost!r} is not running on every node: {state}")
            if time.monotonic() > restart_at:  # a node that missed it starts it when asked
                for node in stopped:
                    self.nodes[running[node]].rabbitmqctl("restart_vhost", "-p", vhost)
                restart_at = deadline
            time.sleep(0.1)

    @property
    def version(self) -> tuple[int, ...]:
        """The RabbitMQ version the cluster runs, e.g. (3, 10, 8)."""
        text = str(self.api("GET", "overview")["rabbitmq_version"])
        return tuple(int(part) for part in text.split("-")[0].split(".") if part.isdigit())

    @property
    def khepri(self) -> bool:
        """Whether the cluster keeps its metadata in Khepri (the only store of 4.3, the default
        of a new 4.2 cluster) rather than Mnesia: it keeps the exclusive queues of a node
        that died until the node is back."""
        flags = self.api("GET", "feature-flags") or []
        return any(f["name"] == "khepri_db" and f["state"] == "enabled" for f in flags)

    def running_nodes(self) -> set[str]:
        """Letters of the nodes the cluster sees running (asked of a running node)."""
        try:
            nodes = self.api("GET", "nodes?columns=name,running")
        except OSError:
            return set()
        return {self.letter_of(n["name"]) for n in nodes if n.get("running")}

    def wait_members(self, letters: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.running_nodes() != set(letters):
            if time.monotonic() > deadline:
                raise NodeUnavailable(
                    f"the cluster sees {sorted(self.running_nodes())} running, not {letters}"
                )
            time.sleep(0.25)

    def kill(self, letter: str) -> None:
        """SIGKILL the node (as a crash or a pulled plug would end it)."""
        self.nodes[letter].kill()

    def restart(self, letter: str, timeout: float = 90) -> float:
        """Start a killed node again and wait until it is back in the cluster; seconds taken."""
        node = self.nodes[letter]
        node.start()
        node.wait_ready(timeout)
        self.wait_members("abc", timeout)
        self.await_startup(letter)
        return time.monotonic() - node._started

    def await_startup(self, letters: str) -> None:
        """Wait until the nodes have finished booting: the management API lists a node as
        running before it is, and a vhost made meanwhile is not started on it."""
        for letter in letters:
            self.nodes[letter].rabbitmqctl("await_startup", "--timeout", "60", timeout=90)

    def stop(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda node: node.stop(timeout=30), self.nodes.values()))
        self.epmd.stop()


def start_cluster(
    home: Path, boot_timeout: float = 120, binaries: Binaries | None = None
) -> Cluster:
    """Boot nodes a, b and c as one cluster (of ``binaries``, default
    ``Binaries.from_env()``); raises NodeUnavailable saying why it cannot."""
    started = time.monotonic()
    binaries = binaries or Binaries.from_env()
    cookie = secrets.token_hex(16)
    tag = secrets.token_hex(3)
    ports = {letter: spare_amqp_port() for letter in LETTERS}
    names = {letter: f"nuropb-cluster-{tag}-{letter}@localhost" for letter in LETTERS}
    nodes: dict[str, RabbitNode] = {}
    epmd = Epmd(binaries)
    try:
        for letter in LETTERS:
            port = ports[letter]
            config = (
                f"listeners.tcp.default = 127.0.0.1:{port}\n"
                f"management.tcp.port = {port + 10000}\n"
                "management.tcp.ip = 127.0.0.1\n"
                # fresh figures in the management API (queue members, connections) sooner
                "collect_statistics_interval = 1000\n"
            )
            if letter != "a":  # a boots alone; the others join it on their first boot
                config += (
                    "cluster_formation.peer_discovery_backend = classic_config\n"
                    f"cluster_formation.classic_config.nodes.1 = {names['a']}\n"
                )
            nodes[letter] = RabbitNode(
                home / letter,
                names[letter],
                config,
                ports=[port, port + 10000],
                plugins=["rabbitmq_management"],
                cookie=cookie,
                binaries=binaries,
                epmd=epmd,
            )
        cluster = Cluster(home, nodes, ports, epmd)
        nodes["a"].start()
        nodes["a"].wait_ready(boot_timeout)
        for letter in "bc":
            nodes[letter].start()
        for letter in "bc":
            nodes[letter].wait_ready(boot_timeout)
        cluster.wait_members("abc", timeout=boot_timeout)
        cluster.await_startup("abc")
    except BaseException:
        for node in nodes.values():
            node.kill()
        epmd.stop()
        raise
    cluster.boot_seconds = time.monotonic() - started
    return cluster
