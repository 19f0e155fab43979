"""A separate, throwaway RabbitMQ node with a TLS listener, for the TLS tests.

Its node name, data, logs, config, cookie (HOME) and ports are its own, so the system broker
and its config are never touched. Modelled on nuropb_lab.demo.broker's project-local broker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .certs import Certificates

__all__ = ["TlsNode", "TlsNodeUnavailable", "start_tls_node"]

# The packaged scripts under /usr/sbin switch to the rabbitmq user (and its HOME, so its
# Erlang cookie); the ones under lib run as the caller, with this node's own HOME.
_BIN_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/sbin", "/usr/sbin")
MESH = "nuropb-tls"


class TlsNodeUnavailable(RuntimeError):
    """The TLS node could not be started here; the message says why."""


@dataclasses.dataclass
class TlsNode:
    name: str
    tls_port: int
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    ctl: str
    certs: Certificates
    boot_seconds: float = 0.0

    @property
    def mesh(self) -> str:
        return MESH

    def rabbitmqctl(self, *args: str, timeout: float = 30) -> str:
        done = subprocess.run(
            [self.ctl, "-n", self.name, *args],
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout.decode(errors="replace")

    def stop(self, timeout: float = 60) -> None:
        """Stop the node (rabbitmqctl stop), killing its process group if that fails."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.rabbitmqctl("stop", timeout=timeout)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        text = []
        for path in sorted((self.home / "log").glob("*")):
            if path.is_file():
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text[-lines:])


def _tool(name: str) -> str | None:
    for folder in _BIN_DIRS:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_tls_node(home: Path, certs: Certificates, boot_timeout: float = 90) -> TlsNode:
    """Boot a node whose only listener is TLS (verify_peer) on a spare port; wait for it."""
    server, ctl = _tool("rabbitmq-server"), _tool("rabbitmqctl")
    if server is None or ctl is None:
        raise TlsNodeUnavailable("rabbitmq-server / rabbitmqctl are not installed")
    tls_port, dist_port = _free_port(), _free_port()
    name = f"nuropb-tls-{tls_port}@localhost"
    for sub in ("mnesia", "log", "home"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "rabbitmq.conf").write_text(
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
    (home / "enabled_plugins").write_text("[].\n")
    (home / "rabbitmq-env.conf").write_text("")
    env = dict(os.environ)
    env.update(
        HOME=str(home / "home"),  # the Erlang cookie lives here
        RABBITMQ_NODENAME=name,
        RABBITMQ_DIST_PORT=str(dist_port),
        RABBITMQ_MNESIA_BASE=str(home / "mnesia"),
        RABBITMQ_LOG_BASE=str(home / "log"),
        RABBITMQ_CONFIG_FILE=str(home / "rabbitmq"),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(home / "advanced.config"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(home / "enabled_plugins"),
        RABBITMQ_PID_FILE=str(home / "rabbitmq.pid"),
        RABBITMQ_CONF_ENV_FILE=str(home / "rabbitmq-env.conf"),
        ERL_EPMD_ADDRESS="127.0.0.1",
        ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}",
    )
    log = (home / "log" / "server.out").open("ab")
    started = time.monotonic()
    process = subprocess.Popen(
        [server], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=home
    )
    node = TlsNode(name, tls_port, home, env, process, ctl, certs)
    deadline = started + boot_timeout
    while not _answers(tls_port):
        if process.poll() is not None:
            raise TlsNodeUnavailable(
                f"the TLS node exited with {process.returncode} while booting:\n{node.log_tail()}"
            )
        if time.monotonic() > deadline:
            node.stop(timeout=20)
            raise TlsNodeUnavailable(
                f"the TLS node did not listen on {tls_port} within {boot_timeout:.0f} s:\n"
                + node.log_tail()
            )
        time.sleep(0.2)
    node.boot_seconds = time.monotonic() - started
    return node
