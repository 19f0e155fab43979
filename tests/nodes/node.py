"""A throwaway RabbitMQ node started by the tests: node name, ports, data, logs, config, cookie,
HOME and epmd of its own, so the system broker and its config are never touched. Its programs
are this machine's or a Debian root's (:class:`Binaries`): one harness for either.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from .binaries import Binaries, Epmd, NodeUnavailable, answers, free_port, tool

__all__ = ["STRICT", "NodeUnavailable", "RabbitNode", "answers", "free_port", "tool"]

# What RabbitMQ 4.3.0 denied by default and later releases are expected to deny again (a node
# of 3.12 or earlier does not know these keys and would not boot)
STRICT = (
    "deprecated_features.permit.transient_nonexcl_queues = false\n"
    "deprecated_features.permit.global_qos = false\n"
)


class RabbitNode:
    """One node: ``start`` it (again after ``kill``), ``wait_ready``, ``rabbitmqctl``, ``stop``.

    ``config`` is the body of its rabbitmq.conf; ``ports`` are those that answer once it has
    booted (its listeners); ``cookie`` is written to its HOME (nodes of a cluster share one).
    ``binaries``: whose programs it runs (default: ``Binaries.from_env()``). ``epmd``: the
    port mapper it registers with (a cluster's nodes share one); without one it starts its
    own, stopped with it.
    """

    def __init__(
        self,
        home: Path,
        name: str,
        config: str,
        ports: list[int],
        plugins: list[str] | None = None,
        cookie: str | None = None,
        dist_port: int | None = None,
        binaries: Binaries | None = None,
        epmd: Epmd | None = None,
    ) -> None:
        self.binaries = binaries or Binaries.from_env()
        self.binaries.check_home(home)
        self.server = self.binaries.command("rabbitmq-server")
        self.ctl = self.binaries.command("rabbitmqctl")
        self.name = name
        self.home = home
        self.ports = ports
        self.dist_port = dist_port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.boot_seconds = 0.0
        self._epmd = epmd
        self._own_epmd = epmd is None
        for sub in ("mnesia", "log", "home"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        (home / "rabbitmq.conf").write_text(config)
        (home / "enabled_plugins").write_text(f"[{','.join(plugins or [])}].\n")
        (home / "rabbitmq-env.conf").write_text("")
        if cookie is not None:
            cookie_file = home / "home" / ".erlang.cookie"
            cookie_file.write_text(cookie)
            cookie_file.chmod(0o400)
        # nothing inherited that would point the node or its CLI at another one
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        self.env.update(
            HOME=str(home / "home"),  # the Erlang cookie lives here
            RABBITMQ_NODENAME=name,
            RABBITMQ_DIST_PORT=str(self.dist_port),
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

    def __repr__(self) -> str:
        return f"<RabbitNode {self.name} {'running' if self.running else 'down'}>"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the node's process (returns at once; see :meth:`wait_ready`)."""
        if self.running:
            return
        if self._epmd is None:
            self._epmd = Epmd(self.binaries)
        self.env["ERL_EPMD_PORT"] = str(self._epmd.port)
        log = (self.home / "log" / "server.out").open("ab")
        self._started = time.monotonic()
        self.process = subprocess.Popen(
            self.server,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() takes all of it
            cwd=self.home,
        )
        log.close()

    def wait_ready(self, timeout: float = 90) -> float:
        """Wait until every listener answers; the seconds since :meth:`start`."""
        deadline = self._started + timeout
        while not all(answers(port) for port in self.ports):
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise NodeUnavailable(
                    f"node {self.name} exited with {code} while booting:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise NodeUnavailable(
                    f"node {self.name} did not listen on {self.ports} within {timeout:.0f} s:\n"
                    + self.log_tail()
                )
            time.sleep(0.1)
        self.boot_seconds = time.monotonic() - self._started
        return self.boot_seconds

    def kill(self) -> None:
        """SIGKILL the node's whole process group (a crash: nothing is closed cleanly)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def run(self, program: str, *args: str, timeout: float = 60) -> str:
        """Run a CLI program of the node's binaries (rabbitmqctl, rabbitmq-diagnostics, ...)
        against this node; its output, or NodeUnavailable saying why it failed."""
        done = subprocess.run(
            [*self.binaries.command(program), "-n", self.name, *args],
            env=self.env,
            capture_output=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise NodeUnavailable(
                f"{program} {' '.join(args)} on {self.name} failed ({done.returncode}):"
                f" {done.stderr.decode(errors='replace')[-2000:]}"
                f" {done.stdout.decode(errors='replace')[-2000:]}"
            )
        return done.stdout.decode(errors="replace")

    def rabbitmqctl(self, *args: str, timeout: float = 60) -> str:
        return self.run("rabbitmqctl", *args, timeout=timeout)

    def stop(self, timeout: float = 60) -> None:
        """Stop the node (rabbitmqctl stop), killing its process group if that fails; and
        its own epmd."""
        if self.running:
            with contextlib.suppress(subprocess.SubprocessError, OSError, NodeUnavailable):
                self.rabbitmqctl("stop", timeout=timeout)
            assert self.process is not None
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._own_epmd and self._epmd is not None:
            self._epmd.stop()
            self._epmd = None

    def log_tail(self, lines: int = 30) -> str:
        text: list[str] = []
        for path in sorted((self.home / "log").glob("*")):
            if path.is_file():
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text[-lines:])
