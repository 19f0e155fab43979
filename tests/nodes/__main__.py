"""Run a command beside a throwaway RabbitMQ node of its own, then stop the node, whatever
happens (the command fails, or this process is told to end).

``PYTHONPATH=tests python -m nodes run [--strict] [--check-deprecated-features] -- COMMAND...``

The node (management API on, guest/guest from localhost) runs the programs of
``$NUROPB_TEST_RABBITMQ_ROOT`` (a Debian root, see scripts/setup.sh) or else this machine's, on
spare ports: AMQP P, management P + 10000, and its own epmd, never 5672/15672/25672/4369.
COMMAND gets ``NUROPB_TEST_AMQP_URL`` (the node, no vhost), ``NUROPB_TEST_RABBITMQCTL`` (a
script running rabbitmqctl against it) and ``NUROPB_TEST_BROKER`` (what the node is), and its
exit code is this one's. ``--strict`` denies what RabbitMQ 4.3.0 denied by default
(transient non-exclusive queues, global QoS); ``--check-deprecated-features`` fails the run
when ``rabbitmq-diagnostics check_if_any_deprecated_features_are_used`` reports a use after
COMMAND.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType

from .binaries import Binaries, NodeUnavailable, spare_amqp_port
from .node import STRICT, RabbitNode


def _ending(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _ctl_script(node: RabbitNode) -> Path:
    """An executable that runs rabbitmqctl against ``node`` with the node's environment."""
    keep = ("HOME", "PATH", "LANG", "LC_ALL")
    exports = "".join(
        f"export {key}={shlex.quote(value)}\n"
        for key, value in node.env.items()
        if key in keep or key.startswith(("RABBITMQ_", "ERL_"))
    )
    command = shlex.join([*node.binaries.command("rabbitmqctl"), "-n", node.name])
    script = node.home / "rabbitmqctl"
    script.write_text(f'#!/bin/sh\n{exports}exec {command} "$@"\n')
    script.chmod(0o755)
    return script


def run(strict: bool, check_deprecated: bool, command: list[str]) -> int:
    binaries = Binaries.from_env()
    port = spare_amqp_port()
    home = Path(tempfile.mkdtemp(prefix="nuropb-node-"))
    config = (
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        f"management.tcp.port = {port + 10000}\nmanagement.tcp.ip = 127.0.0.1\n"
        + (STRICT if strict else "")
    )
    node = RabbitNode(
        home,
        f"nuropb-test-{secrets.token_hex(3)}@localhost",
        config,
        ports=[port, port + 10000],
        plugins=["rabbitmq_management"],
        binaries=binaries,
    )
    what = f"{binaries.describe()}{', strict' if strict else ''}"
    child: subprocess.Popen[bytes] | None = None
    try:
        node.start()
        seconds = node.wait_ready()
        node.rabbitmqctl("await_startup", "--timeout", "60", timeout=90)
        print(
            f"RabbitMQ node {node.name} ({what}) on port {port}, up in {seconds:.1f} s", flush=True
        )
        env = dict(
            os.environ,
            NUROPB_TEST_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{port}/",
            NUROPB_TEST_RABBITMQCTL=str(_ctl_script(node)),
            NUROPB_TEST_BROKER=f"a throwaway node: {what}",
        )
        child = subprocess.Popen(command, env=env)
        code = child.wait()
        if check_deprecated:
            try:
                print(node.run("rabbitmq-diagnostics", "check_if_any_deprecated_features_are_used"))
            except NodeUnavailable as exc:
                print(f"deprecated features were used: {exc}", file=sys.stderr)
                code = code or 1
        return code
    except NodeUnavailable as exc:
        print(f"could not run the node: {exc}", file=sys.stderr)
        return 1
    finally:
        if child is not None and child.poll() is None:  # told to end: end the command too
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        node.stop()
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodes", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    runner = sub.add_parser("run", help="run COMMAND beside a node of its own")
    runner.add_argument("--strict", action="store_true", help="deny what RabbitMQ 4.3.0 denied")
    runner.add_argument(
        "--check-deprecated-features",
        action="store_true",
        help="fail when the node reports a deprecated feature used, after COMMAND",
    )
    runner.add_argument("command", nargs="+", help="the command (after --)")
    args = parser.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _ending)
    return run(args.strict, args.check_deprecated_features, args.command)


if __name__ == "__main__":
    sys.exit(main())
