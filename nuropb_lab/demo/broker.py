"""Make sure a RabbitMQ broker (with its management API) answers; start one if it can.

Shared by the demo, the test suite, ``scripts/lab`` and Binder. In order:

1. ``$NUROPB_AMQP_URL``'s host and port (default 127.0.0.1:5672) answer: use that broker.
2. A RabbitMQ node of this machine is registered for that port but not answering yet (it is
   booting or restarting): wait for it rather than start a second one.
3. ``rabbitmq-server`` is installed: start a project-local broker, run as the current user,
   with its data, logs, config and enabled-plugins files (management on) under
   ``$NUROPB_BROKER_HOME``, else ``.cache/rabbitmq`` of the project (``~/.cache/nuropb-lab/
   rabbitmq`` for an installed package).
4. On Debian/Ubuntu as root: ``apt-get install rabbitmq-server``, then as in 1 or 3.
5. Else say exactly what to install, and stop.

It enables the management plugin when it can, waits until the broker answers, and stops only
what it started. A local broker on port P has its management API on P + 10000 and its Erlang
distribution port on P + 20000 (as the system broker has on 5672); the lab looks for the
management API on P + 10000 too. Standard library only.

A local broker's memory alarm is set from ``$MEM_LIMIT`` when it is set (a container's limit in
bytes, as Binder and JupyterHub's KubeSpawner set it): RabbitMQ would otherwise take it from the
whole machine's RAM, and the kernel's OOM killer would act before the broker's flow control.

``python -m nuropb_lab.demo.broker [ensure|prepare|stop] [--url URL]``;
``python -m nuropb_lab.demo.broker ctl ARGS...`` runs ``rabbitmqctl ARGS...`` against the local
broker (its node name and Erlang cookie), e.g. ``ctl list_queues -p nuropb-demo``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "BrokerError",
    "BrokerInfo",
    "broker_env",
    "default_home",
    "ensure_broker",
    "epmd_names",
    "local_node_running",
    "memory_watermark",
    "prepare_home",
    "run_ctl",
    "stop_broker",
    "stop_local_broker",
]

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
ROOT = Path(__file__).resolve().parents[2]
LOCAL_HOSTS = ("127.0.0.1", "localhost")
# Debian/Ubuntu put the real scripts here; /usr/sbin has wrappers that switch to the rabbitmq
# user (as root) or refuse to run (as anyone else), which a broker of our own must avoid.
REAL_BIN = ("/usr/lib/rabbitmq/bin",)
SBIN = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")
EPMD_PORT = 4369
# RabbitMQ 3.x's default share (vm_memory_high_watermark.relative = 0.4), taken of $MEM_LIMIT
WATERMARK_SHARE = 0.4
INSTALL_HINT = (
    "Install RabbitMQ (Debian/Ubuntu: `sudo apt-get install rabbitmq-server`; Fedora: `sudo dnf"
    " install rabbitmq-server`; macOS: `brew install rabbitmq`), or point NUROPB_AMQP_URL at a"
    " running broker, then run this again."
)


class BrokerError(RuntimeError):
    """No broker could be found or started; the message says what to do."""


@dataclasses.dataclass
class BrokerInfo:
    host: str
    port: int
    management_port: int
    started: bool  # True when this helper started it (and so may stop it)
    home: Path | None = None  # the project-local broker's folder, when it is one of ours
    process: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False)

    @property
    def node(self) -> str:
        return node_name(self.port)


def node_name(port: int) -> str:
    return f"nuropb-lab-{port}@localhost"


def default_home() -> Path:
    """Where a project-local broker keeps its files (the folder is gitignored)."""
    env = os.environ.get("NUROPB_BROKER_HOME")
    if env:
        return Path(env).expanduser().resolve()
    if (ROOT / "pyproject.toml").exists():  # a source checkout (editable install)
        return ROOT / ".cache" / "rabbitmq"
    return Path.home() / ".cache" / "nuropb-lab" / "rabbitmq"


def _answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _management_answers(host: str, port: int, user: str = "guest", password: str = "guest") -> bool:
    request = urllib.request.Request(f"http://{host}:{port}/api/overview")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=2):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code in (401, 403)  # it answers; credentials are another matter
    except OSError:
        return False


def _wait(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    failed: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``check`` until true; ``failed`` returns a reason to give up early (a dead process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        reason = failed() if failed is not None else None
        if reason:
            raise BrokerError(f"{what} did not come up: {reason}")
        time.sleep(0.25)
    raise BrokerError(f"{what} did not answer within {timeout:.0f} s")


def _tool(name: str, real: bool = False) -> str | None:
    """A RabbitMQ command; ``real`` prefers the unwrapped script (for a broker of our own)."""
    folders = REAL_BIN if real else ()
    for folder in folders:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    for folder in (*SBIN, *REAL_BIN):
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    return None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def epmd_names(timeout: float = 1.0) -> dict[str, int]:
    """Erlang nodes registered on this machine: short name -> distribution port ({} if none)."""
    try:
        with socket.create_connection(("127.0.0.1", EPMD_PORT), timeout=timeout) as sock:
            sock.sendall(struct.pack(">H", 1) + b"n")  # NAMES_REQ
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return {}
    names: dict[str, int] = {}
    for line in data[4:].decode(errors="replace").splitlines():
        parts = line.split()  # "name rabbit at port 25672"
        if len(parts) == 5 and parts[0] == "name" and parts[4].isdigit():
            names[parts[1]] = int(parts[4])
    return names


def _dist_port(port: int) -> int | None:
    return port + 20000 if port + 20000 <= 65535 else None


def _node_for_port(port: int) -> str | None:
    """A registered node that serves ``port`` by RabbitMQ's convention (dist = port + 20000)."""
    dist = _dist_port(port)
    return next((n for n, p in epmd_names().items() if dist is not None and p == dist), None)


def memory_watermark() -> int | None:
    """The local broker's memory alarm in bytes: ``WATERMARK_SHARE`` of ``$MEM_LIMIT`` (bytes),
    or None when it is not set (RabbitMQ then takes its share of the machine's RAM)."""
    raw = os.environ.get("MEM_LIMIT", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) == 0:
        raise BrokerError(f"MEM_LIMIT must be a whole number of bytes, got {raw[:40]!r}")
    return int(int(raw) * WATERMARK_SHARE)


def prepare_home(home: Path, port: int) -> dict[str, str]:
    """Write a local broker's files under ``home``; returns the environment that runs it."""
    watermark = memory_watermark()  # a bad $MEM_LIMIT stops it before anything is written
    for sub in ("mnesia", "log", "home"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    config = (
        f"listeners.tcp.local = 127.0.0.1:{port}\n"
        f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {port + 10000}\n"
    )
    if watermark is not None:
        config += f"vm_memory_high_watermark.absolute = {watermark}\n"
    (home / "rabbitmq.conf").write_text(config)
    (home / "enabled_plugins").write_text("[rabbitmq_management].\n")
    (home / "rabbitmq-env.conf").touch()  # so /etc/rabbitmq/rabbitmq-env.conf is not read
    return broker_env(home, port)


def broker_env(home: Path, port: int) -> dict[str, str]:
    """The environment of the local broker of ``home`` for ``port``, for its server and its
    tools (the same HOME, so the same Erlang cookie, and node name)."""
    env = dict(os.environ)
    env.update(
        HOME=str(home / "home"),  # the Erlang cookie lives here
        RABBITMQ_NODENAME=node_name(port),
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_MNESIA_BASE=str(home / "mnesia"),
        RABBITMQ_LOG_BASE=str(home / "log"),
        RABBITMQ_CONFIG_FILE=str(home / "rabbitmq"),  # rabbitmq.conf
        RABBITMQ_ENABLED_PLUGINS_FILE=str(home / "enabled_plugins"),
        RABBITMQ_PID_FILE=str(home / "rabbitmq.pid"),
        RABBITMQ_CONF_ENV_FILE=str(home / "rabbitmq-env.conf"),
        ERL_EPMD_ADDRESS="127.0.0.1",
        # not in the working folder (a terminal's, for rabbitmqctl) should the VM crash
        ERL_CRASH_DUMP=str(home / "log" / "erl_crash.dump"),
        # the Erlang distribution listens on loopback only, as the system broker's does
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
    )
    dist = _dist_port(port)
    if dist is not None:
        env["RABBITMQ_DIST_PORT"] = str(dist)
    return env


def _log_tail(home: Path, lines: int = 15) -> str:
    try:
        text = (home / "log" / "server.out").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _start_local(server: str, home: Path, port: int) -> subprocess.Popen[bytes]:
    try:
        env = prepare_home(home, port)
        with (home / "log" / "server.out").open("ab") as log:
            # a session of its own: the broker outlives this process and ignores its Ctrl-C
            return subprocess.Popen(
                [server],
                env=env,
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as exc:  # an unwritable home, a server that cannot be run
        raise BrokerError(f"could not start {server} with its files in {home}: {exc}") from None


def _install_with_apt() -> None:
    if not (_is_root() and shutil.which("apt-get") and Path("/etc/debian_version").exists()):
        raise BrokerError(f"RabbitMQ is not installed and no broker answers. {INSTALL_HINT}")
    print("installing rabbitmq-server with apt-get ...", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=120"]
    install = [*apt, "install", "-y", "-qq", "--no-install-recommends", "rabbitmq-server"]
    try:
        done = subprocess.run(install, env=env, stdin=subprocess.DEVNULL, timeout=900)
        if done.returncode != 0:  # a fresh machine's package lists may be empty or stale
            subprocess.run([*apt, "update", "-qq"], env=env, check=True, timeout=600)
            subprocess.run(install, env=env, stdin=subprocess.DEVNULL, check=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        raise BrokerError(f"could not install rabbitmq-server ({exc}). {INSTALL_HINT}") from None


def _enable_management(host: str, mgmt_port: int, timeout: float) -> None:
    if _management_answers(host, mgmt_port):
        return
    plugins = _tool("rabbitmq-plugins")
    if plugins is None or host not in LOCAL_HOSTS:
        print(
            f"warning: the management API at {host}:{mgmt_port} is off; enable it with"
            " `rabbitmq-plugins enable rabbitmq_management`",
            file=sys.stderr,
        )
        return
    done = subprocess.run(
        [plugins, "enable", "rabbitmq_management"], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        print(
            f"warning: could not enable the management plugin: {done.stderr.strip()[-300:]}",
            file=sys.stderr,
        )
        return
    _wait(lambda: _management_answers(host, mgmt_port), timeout, "the management API")


def ensure_broker(
    url: str | None = None,
    management: bool = True,
    timeout: float = 120,
    home: Path | None = None,
) -> BrokerInfo:
    """Make a broker answer at ``url`` (default ``$NUROPB_AMQP_URL``, else 127.0.0.1:5672);
    the result says whether this call started it."""
    parts = urlsplit(url or os.environ.get("NUROPB_AMQP_URL") or DEFAULT_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    mgmt_port = port + 10000
    local = host in LOCAL_HOSTS

    def found() -> BrokerInfo:
        if management:
            _enable_management(host, mgmt_port, timeout)
        return BrokerInfo(host, port, mgmt_port, started=False)

    if _answers(host, port):
        return found()
    if not local:
        raise BrokerError(f"no broker answers at {host}:{port} (and it is not local to start)")
    booting = _node_for_port(port)
    if booting is not None:  # e.g. a broker restarting: starting another would take its port
        print(f"waiting for RabbitMQ node {booting!r} to answer on {port} ...", file=sys.stderr)
        _wait(lambda: _answers(host, port), timeout, f"RabbitMQ node {booting!r}")
        return found()
    server = _tool("rabbitmq-server", real=True)
    if server is None:
        _install_with_apt()
        if _answers(host, port):  # the package may have started the system broker
            return found()
        server = _tool("rabbitmq-server", real=True)
        if server is None:
            raise BrokerError(f"rabbitmq-server is missing after installing it. {INSTALL_HINT}")
    home = (home or default_home()).resolve()
    print(f"starting RabbitMQ on {host}:{port} (files in {home}) ...", file=sys.stderr, flush=True)
    process = _start_local(server, home, port)

    def died() -> str | None:
        if process.poll() is None:
            return None
        return f"rabbitmq-server exited with {process.returncode}:\n{_log_tail(home)}"

    _wait(lambda: _answers(host, port), timeout, f"RabbitMQ at {host}:{port}", died)
    info = BrokerInfo(host, port, mgmt_port, started=True, home=home, process=process)
    if management:
        _wait(lambda: _management_answers(host, mgmt_port), timeout, "the management API", died)
    return info


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(home: Path) -> int | None:
    try:
        return int((home / "rabbitmq.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def local_node_running(port: int, home: Path | None = None) -> bool:
    """Whether the local broker of ``home`` for ``port`` runs (its beam process is alive)."""
    home = (home or default_home()).resolve()
    pid = _read_pid(home)
    return pid is not None and _pid_alive(pid)


def stop_local_broker(port: int, home: Path | None = None, timeout: float = 60) -> bool:
    """Stop the project-local broker of ``home`` for ``port``; False when none was running.
    A broker of someone else (another node, or the system's) is never touched."""
    home = (home or default_home()).resolve()
    pid = _read_pid(home)
    if pid is None or not _pid_alive(pid):
        return False
    ctl = _tool("rabbitmqctl", real=True)
    if ctl is not None:
        # the same HOME (Erlang cookie) as the node: only our own node accepts this
        env = broker_env(home, port)
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                [ctl, "-n", node_name(port), "stop", str(home / "rabbitmq.pid")],
                env=env,
                capture_output=True,
                timeout=timeout,
            )
    if _pid_alive(pid):  # rabbitmqctl missing or refused: the pid file is ours all the same
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _pid_alive(pid):
        raise BrokerError(f"the local broker (pid {pid}) did not stop within {timeout:.0f} s")
    with contextlib.suppress(OSError):
        (home / "rabbitmq.pid").unlink()
    return True


def stop_broker(info: BrokerInfo, timeout: float = 60) -> bool:
    """Stop a broker this helper started; leave any other alone. True when it stopped one."""
    if not info.started or info.home is None:
        return False
    stopped = stop_local_broker(info.port, info.home, timeout)
    if info.process is not None:  # the launcher script, our child: reap it
        with contextlib.suppress(subprocess.TimeoutExpired):
            info.process.wait(timeout)
    return stopped


def run_ctl(args: list[str], port: int, home: Path | None = None, timeout: float = 120) -> int:
    """Run ``rabbitmqctl ARGS`` against the local broker of ``home`` for ``port`` (its node name
    and Erlang cookie, which a plain ``rabbitmqctl`` lacks); its output is the command's own."""
    ctl = _tool("rabbitmqctl", real=True)
    if ctl is None:
        raise BrokerError(f"rabbitmqctl is not installed. {INSTALL_HINT}")
    home = (home or default_home()).resolve()
    if not local_node_running(port, home):
        raise BrokerError(f"no local broker runs for port {port} with its files in {home}")
    try:
        command = [ctl, "-n", node_name(port), *args]
        return subprocess.run(command, env=broker_env(home, port), timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        raise BrokerError(f"rabbitmqctl did not finish within {timeout:.0f} s") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nuropb_lab.demo.broker",
        description="Make a RabbitMQ broker answer for nuropb-lab (or stop the one it started).",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=("ensure", "prepare", "stop", "ctl"),
        default="ensure",
        help="ensure (default): use or start a broker; prepare: write a local broker's files;"
        " stop: stop the project-local broker; ctl ARGS: rabbitmqctl ARGS against it",
    )
    parser.add_argument(
        "--url", help="AMQP URL to check (default $NUROPB_AMQP_URL or 127.0.0.1:5672)"
    )
    parser.add_argument(
        "--no-management", action="store_true", help="do not enable the management API"
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for it")
    argv = sys.argv[1:] if argv is None else argv
    # ctl: what follows it is rabbitmqctl's (its options too); before it, ours
    at = argv.index("ctl") if "ctl" in argv else len(argv)
    args = parser.parse_args(argv[: at + 1])
    args.ctl_args = argv[at + 1 :]
    parts = urlsplit(args.url or os.environ.get("NUROPB_AMQP_URL") or DEFAULT_URL)
    port = parts.port or 5672
    try:
        if args.action == "ctl":
            if not args.ctl_args:
                parser.error("ctl needs rabbitmqctl's arguments, e.g. ctl list_queues")
            return run_ctl(args.ctl_args, port, timeout=args.timeout)
        if args.action == "prepare":
            prepare_home(default_home(), port)
            print(f"RabbitMQ files for port {port} are in {default_home()}")
            return 0
        if args.action == "stop":
            stopped = stop_local_broker(port, timeout=args.timeout)
            print("RabbitMQ stopped" if stopped else f"no local RabbitMQ of ours on port {port}")
            return 0
        info = ensure_broker(args.url, management=not args.no_management, timeout=args.timeout)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # scripts read the first word after "RabbitMQ" to know whether to stop it afterwards
    how = "started" if info.started else "already running"
    print(f"RabbitMQ {how} at {info.host}:{info.port} (management :{info.management_port})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
