"""Make sure a RabbitMQ broker (with its management API) answers; start one if it can.

Shared by the demo, the test suite and Binder. In order:

1. ``$NUROPB_AMQP_URL``'s host, or 127.0.0.1:5672, answers: use it.
2. ``rabbitmq-server`` is installed: as root, start the system broker
   (``rabbitmq-server -detached``); otherwise start a project-local one with its data, logs,
   config and enabled-plugins files under ``.cache/rabbitmq`` (or ``$NUROPB_BROKER_HOME``).
3. On Debian/Ubuntu as root: ``apt-get install rabbitmq-server``, then as in 2.
4. Else say exactly what to install, and stop.

It enables the management plugin when it can, waits until the broker answers, and stops only
what it started. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["BrokerError", "BrokerInfo", "ensure_broker", "stop_broker"]

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
ROOT = Path(__file__).resolve().parents[2]
SBIN = ("/usr/sbin", "/usr/lib/rabbitmq/bin", "/usr/local/sbin")


class BrokerError(RuntimeError):
    """No broker could be found or started; the message says what to do."""


@dataclasses.dataclass
class BrokerInfo:
    host: str
    port: int
    management_port: int
    started: bool  # True when this helper started it (and so may stop it)
    local_home: Path | None = None  # the project-local broker's folder, when local


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


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise BrokerError(f"{what} did not answer within {timeout:.0f} s")


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in SBIN:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    return None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _local_env(home: Path, port: int) -> dict[str, str]:
    """Environment for a broker whose every file lives under ``home``."""
    for sub in ("mnesia", "log", "home"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "rabbitmq.conf").write_text(
        f"listeners.tcp.local = 127.0.0.1:{port}\n"
        f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {port + 10000}\n"
        "loopback_users = none\n"
    )
    (home / "enabled_plugins").write_text("[rabbitmq_management].\n")
    env = dict(os.environ)
    env.update(
        HOME=str(home / "home"),  # the Erlang cookie lives here
        RABBITMQ_NODENAME=f"nuropb-lab-{port}@localhost",
        RABBITMQ_MNESIA_BASE=str(home / "mnesia"),
        RABBITMQ_LOG_BASE=str(home / "log"),
        RABBITMQ_CONFIG_FILE=str(home / "rabbitmq"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(home / "enabled_plugins"),
        RABBITMQ_PID_FILE=str(home / "rabbitmq.pid"),
        RABBITMQ_CONF_ENV_FILE=str(home / "rabbitmq-env.conf"),
        ERL_EPMD_ADDRESS="127.0.0.1",
    )
    (home / "rabbitmq-env.conf").touch()
    return env


def _install_with_apt() -> None:
    if not (_is_root() and shutil.which("apt-get") and Path("/etc/debian_version").exists()):
        raise BrokerError(
            "RabbitMQ is not installed and not reachable at 127.0.0.1:5672. Install it"
            " (Debian/Ubuntu: `sudo apt-get install rabbitmq-server`; macOS: `brew install"
            " rabbitmq`) or point NUROPB_AMQP_URL at a broker, then run this again."
        )
    print("installing rabbitmq-server with apt-get ...", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "rabbitmq-server"], check=True, env=env)


def _enable_management(host: str, port: int, mgmt_port: int) -> None:
    if _management_answers(host, mgmt_port):
        return
    plugins = _tool("rabbitmq-plugins")
    if plugins is None or host not in ("127.0.0.1", "localhost"):
        print(
            f"warning: the management API at {host}:{mgmt_port} is off; enable it with"
            " `rabbitmq-plugins enable rabbitmq_management`",
            file=sys.stderr,
        )
        return
    subprocess.run([plugins, "enable", "rabbitmq_management"], check=False, capture_output=True)
    _wait(lambda: _management_answers(host, mgmt_port), 60, "the management API")


def ensure_broker(
    url: str | None = None, management: bool = True, timeout: float = 120
) -> BrokerInfo:
    """Make a broker answer at ``url`` (default ``$NUROPB_AMQP_URL`` or 127.0.0.1:5672)."""
    parts = urlsplit(url or os.environ.get("NUROPB_AMQP_URL") or DEFAULT_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    mgmt_port = port + 10000
    if _answers(host, port):
        if management:
            _enable_management(host, port, mgmt_port)
        return BrokerInfo(host, port, mgmt_port, started=False)
    if host not in ("127.0.0.1", "localhost"):
        raise BrokerError(f"no broker answers at {host}:{port} and it is not local to start")
    server = _tool("rabbitmq-server")
    if server is None:
        _install_with_apt()
        server = _tool("rabbitmq-server")
        if server is None:
            raise BrokerError("rabbitmq-server is still missing after installing it")
    local_home: Path | None = None
    if _is_root() and port == 5672 and not os.environ.get("NUROPB_BROKER_HOME"):
        subprocess.run([server, "-detached"], check=False, capture_output=True)
    else:
        local_home = Path(os.environ.get("NUROPB_BROKER_HOME") or ROOT / ".cache" / "rabbitmq")
        env = _local_env(local_home, port)
        log = (local_home / "log" / "server.out").open("ab")
        subprocess.Popen(
            [server], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    _wait(lambda: _answers(host, port), timeout, f"RabbitMQ at {host}:{port}")
    if management:
        _enable_management(host, port, mgmt_port)
    return BrokerInfo(host, port, mgmt_port, started=True, local_home=local_home)


def stop_broker(info: BrokerInfo) -> None:
    """Stop a broker this helper started; leave any other alone."""
    if not info.started:
        return
    ctl = _tool("rabbitmqctl")
    if ctl is None:
        return
    env = _local_env(info.local_home, info.port) if info.local_home else None
    node = ["-n", f"nuropb-lab-{info.port}@localhost"] if info.local_home else []
    with contextlib.suppress(subprocess.SubprocessError):
        subprocess.run([ctl, *node, "stop"], env=env, check=False, capture_output=True, timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make a RabbitMQ broker answer for nuropb-lab.")
    parser.add_argument(
        "--url", help="AMQP URL to check (default $NUROPB_AMQP_URL or 127.0.0.1:5672)"
    )
    parser.add_argument(
        "--no-management", action="store_true", help="do not enable the management API"
    )
    args = parser.parse_args(argv)
    try:
        info = ensure_broker(args.url, management=not args.no_management)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    how = "started" if info.started else "already running"
    print(f"RabbitMQ {how} at {info.host}:{info.port} (management :{info.management_port})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
