"""binder/start, as Binder runs it: a scratch HOME, no broker answering at the mesh URL, so it
starts RabbitMQ as this user with its files under HOME, then the demo mesh, then execs the
command it was given. The test then stops what it started and checks the node is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nuropb_lab.demo import broker

ROOT = Path(__file__).resolve().parents[1]

# run by binder/start's `exec "$@"`, in place of the notebook server
CHECK = """
import nuropb_lab
lab = nuropb_lab.Lab(timeout=10)
lab.connect()  # $NUROPB_AMQP_URL, as the notebooks do
print("services:", ",".join(sorted(lab.services()["service"])))
print("stock:", lab.call("inventory.stock", sku="A100"))
lab.close()
"""


def spare_port(candidates: range = range(5699, 5710)) -> int:
    for port in candidates:
        taken = (broker._answers("127.0.0.1", p, 0.2) for p in (port, port + 10000, port + 20000))
        if not any(taken):
            return port
    pytest.fail(f"no spare port for a local broker in {candidates}")


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not broker._pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_binder_start_runs_broker_and_demo_under_home(tmp_path: Path) -> None:
    if broker._tool("rabbitmq-server", real=True) is None:
        pytest.skip("rabbitmq-server is not installed here (binder/apt.txt installs it on Binder)")
    port = spare_port()
    home = tmp_path / "home"
    home.mkdir()
    state, broker_home = home / ".nuropb-lab", home / ".nuropb-lab" / "rabbitmq"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUROPB_", "RABBITMQ_"))}
    env.update(
        HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # `python`
        NUROPB_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{port}/nuropb-demo",
        NUROPB_MANAGEMENT_URL=f"http://127.0.0.1:{port + 10000}",  # a broker off 5672
    )
    try:
        done = subprocess.run(
            ["bash", str(ROOT / "binder" / "start"), sys.executable, "-c", CHECK],
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert f"RabbitMQ started at 127.0.0.1:{port}" in done.stdout, output
        assert "demo mesh answers on amqp://guest:***@" in done.stdout, output
        assert "services: inventory,orders,sensors,vault" in done.stdout, output
        assert "stock: {'sku': 'A100', 'units': 12}" in done.stdout, output
        # everything of the broker's is under HOME, the management plugin on
        assert "rabbitmq_management" in (broker_home / "enabled_plugins").read_text()
        assert (broker_home / "mnesia" / f"nuropb-lab-{port}@localhost").is_dir()
        assert (broker_home / "home" / ".erlang.cookie").exists()
        assert broker._management_answers("127.0.0.1", port + 10000)
        assert broker.local_node_running(port, broker_home)
    finally:
        demo_pid = int((state / "demo.pid").read_text()) if (state / "demo.pid").exists() else 0
        if demo_pid and broker._pid_alive(demo_pid):
            os.kill(demo_pid, signal.SIGTERM)
            assert wait_gone(demo_pid, 20), "the demo mesh did not stop on SIGTERM"
        beam = broker._read_pid(broker_home)
        broker.stop_local_broker(port, broker_home)
    assert beam is not None and not broker._pid_alive(beam)
    assert not broker._answers("127.0.0.1", port)
    assert f"nuropb-lab-{port}" not in broker.epmd_names()
