"""Where a throwaway node's programs come from: this machine's RabbitMQ, or a Debian root with
another version (scripts/setup.sh's ``setup_rabbitmq_root``), whose programs run chrooted by
``in-root`` beside this machine's broker, whatever its version.

A root's programs see this machine's temporary folder (bound in at the same path), so a node's
files (config, data, logs, certificates) have the same paths inside the root and out.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = [
    "ROOT_ENV",
    "Binaries",
    "Epmd",
    "NodeUnavailable",
    "answers",
    "free_port",
    "spare_amqp_port",
    "tool",
]

ROOT_ENV = "NUROPB_TEST_RABBITMQ_ROOT"  # a Debian root: throwaway nodes run its programs
IN_ROOT = Path(__file__).with_name("in-root")
# The packaged scripts under /usr/sbin switch to the rabbitmq user (and its HOME, so its Erlang
# cookie); the ones under /usr/lib/rabbitmq/bin run as the caller, with a node's own HOME.
_BIN_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/sbin", "/usr/sbin", "/usr/bin")


class NodeUnavailable(RuntimeError):
    """A node could not be started here; the message says why."""


def tool(name: str) -> str | None:
    """This machine's RabbitMQ (or Erlang) program ``name``."""
    for folder in _BIN_DIRS:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def spare_amqp_port() -> int:
    """An AMQP port whose + 10000 (the management port) is free too."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        try:
            with socket.socket() as one, socket.socket() as two:
                one.bind(("127.0.0.1", port))
                two.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise NodeUnavailable("no free pair of ports (AMQP, AMQP + 10000) found")


class Binaries:
    """The programs of this machine (``root`` None) or of a Debian root."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.shared = Path(tempfile.gettempdir()).resolve()  # what a root's programs see of ours
        if root is None:
            return
        if not (root / "etc" / "nuropb-lab-root").is_file():
            raise NodeUnavailable(f"{root} is not a root built by scripts/setup.sh")
        if os.geteuid() != 0:
            raise NodeUnavailable(f"the nodes of {root} run chrooted, which needs root")

    @classmethod
    def from_env(cls) -> Binaries:
        """The root named by ``$NUROPB_TEST_RABBITMQ_ROOT``, else this machine's programs."""
        root = os.environ.get(ROOT_ENV)
        return cls(Path(root).resolve() if root else None)

    def __repr__(self) -> str:
        return f"<Binaries {self.describe()}>"

    def describe(self) -> str:
        if self.root is None:
            return "this machine's RabbitMQ"
        facts = dict(
            part.split("=", 1)
            for part in (self.root / "etc" / "nuropb-lab-root").read_text().split()
            if "=" in part
        )
        return (
            f"rabbitmq-server {facts.get('version', '?')} of the Debian {facts.get('suite', '?')}"
            f" root {self.root}"
        )

    def command(self, name: str) -> list[str]:
        """How to run program ``name`` (its arguments follow)."""
        if self.root is None:
            found = tool(name)
            if found is None:
                raise NodeUnavailable(f"{name} is not installed (rabbitmq-server is needed)")
            return [found]
        inside = next(
            (f"{d}/{name}" for d in _BIN_DIRS if (self.root / d[1:] / name).exists()), None
        )
        if inside is None:
            raise NodeUnavailable(f"{self.root} has no {name}")
        return [str(IN_ROOT), str(self.root), str(self.shared), inside]

    def check_home(self, home: Path) -> None:
        """A root's node keeps its files where its programs see them: under ``shared``."""
        if self.root is not None and not home.resolve().is_relative_to(self.shared):
            raise NodeUnavailable(f"a node of {self.root} keeps its files under {self.shared}")


class Epmd:
    """An Erlang port mapper of the nodes' own, on a spare port (``ERL_EPMD_PORT``), so they
    never register with, or start, the one on 4369 (the system broker's)."""

    def __init__(self, binaries: Binaries, timeout: float = 30) -> None:
        self.port = free_port()
        command = [*binaries.command("epmd"), "-port", str(self.port), "-address", "127.0.0.1"]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise NodeUnavailable(f"epmd did not listen on port {self.port}: {command}")
            time.sleep(0.05)

    def stop(self) -> None:
        # SIGKILL: in-root's unshare ignores SIGTERM; epmd keeps nothing worth a clean stop
        if self.process.poll() is None:
            os.killpg(self.process.pid, 9)
        self.process.wait(timeout=30)
