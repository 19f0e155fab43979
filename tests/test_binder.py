"""binder/start, as Binder runs it: a scratch HOME, no broker answering at the mesh URL, so it
starts RabbitMQ as this user with its files under HOME (its memory alarm from MEM_LIMIT), then
the demo mesh, then execs the command it was given; the tests stop what it started and check the
node is gone. It execs the command all the same, within a hub's http_timeout, when the broker
fails to start or never answers. (scripts/binder-standin tries the whole of binder/.)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nuropb_lab.demo import broker

ROOT = Path(__file__).resolve().parents[1]
MEM_LIMIT = 2 * 1024**3  # what Binder gives
# JupyterHub's Spawner.http_timeout: the server must answer by then (binder/start waits less)
HTTP_TIMEOUT = 30

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


def start_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUROPB_", "RABBITMQ_"))}
    env.update(
        HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # `python`
        NUROPB_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{port}/nuropb-demo",
        NUROPB_MANAGEMENT_URL=f"http://127.0.0.1:{port + 10000}",  # a broker off 5672
        **extra,
    )
    return env


def binder_start(home: Path, env: dict[str, str], command: str) -> tuple[str, float]:
    """Run binder/start wrapping ``python -c command``; its output and the seconds until the
    command ran (it prints "server ran at" first). What binder/start left running in its
    process group once the command ended (the demo mesh, a wait for the broker) is ended too:
    in the server's place, the command is what lives longest on Binder."""
    started = time.monotonic()
    command = f"import time; print('server ran at', time.monotonic(), flush=True)\n{command}"
    process = subprocess.Popen(
        ["bash", str(ROOT / "binder" / "start"), sys.executable, "-c", command],
        cwd=home,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        process.wait(timeout=180)  # not for the end of its output: the background holds it
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    assert process.stdout is not None
    output = process.stdout.read()
    assert process.returncode == 0, output
    marks = [line for line in output.splitlines() if line.startswith("server ran at ")]
    assert marks, f"the wrapped command did not run:\n{output}"
    return output, float(marks[0].split()[-1]) - started


def test_binder_start_runs_broker_and_demo_under_home(tmp_path: Path) -> None:
    if broker._tool("rabbitmq-server", real=True) is None:
        pytest.skip("rabbitmq-server is not installed here (binder/apt.txt installs it on Binder)")
    port = spare_port()
    home = tmp_path / "home"
    home.mkdir()
    state, broker_home = home / ".nuropb-lab", home / ".nuropb-lab" / "rabbitmq"
    # under load the demo may take longer than a hub would wait: this test is about what runs
    env = start_env(home, port, MEM_LIMIT=str(MEM_LIMIT), NUROPB_START_WAIT="120")
    try:
        output, _ = binder_start(home, env, CHECK)
        assert f"RabbitMQ started at 127.0.0.1:{port}" in output, output
        assert "demo mesh answers on amqp://guest:***@" in output, output
        assert "warning" not in output, output
        assert "services: inventory,orders,sensors,vault" in output, output
        assert "stock: {'sku': 'A100', 'units': 12}" in output, output
        demo_pid = int((state / "demo.pid").read_text())  # ended with binder/start's group
        assert wait_gone(demo_pid, 20), "the demo mesh did not stop on SIGTERM"
        # everything of the broker's is under HOME, the management plugin on
        assert "rabbitmq_management" in (broker_home / "enabled_plugins").read_text()
        assert (broker_home / "mnesia" / f"nuropb-lab-{port}@localhost").is_dir()
        assert (broker_home / "home" / ".erlang.cookie").exists()
        assert broker._management_answers("127.0.0.1", port + 10000)
        assert broker.local_node_running(port, broker_home)
        # the command README gives for a terminal (whose environment is the server's, so
        # binder/start's), rabbitmqctl against this broker: its memory alarm is a share of
        # the container's limit, not of this machine's RAM
        env["NUROPB_BROKER_HOME"] = str(broker_home)
        status = json.loads(ctl(env, "status", "--formatter", "json"))
        assert status["vm_memory_high_watermark_limit"] == int(MEM_LIMIT * 0.4), status
        assert status["vm_memory_high_watermark_setting"] == {"absolute": int(MEM_LIMIT * 0.4)}
        queues = ctl(env, "list_queues", "-p", "nuropb-demo", "--quiet", "--no-table-headers")
        assert "nuropb-orders-sq" in queues.split(), queues
    finally:
        beam = broker._read_pid(broker_home)
        broker.stop_local_broker(port, broker_home)
    assert beam is not None and not broker._pid_alive(beam)
    assert not broker._answers("127.0.0.1", port)
    assert f"nuropb-lab-{port}" not in broker.epmd_names()


def ctl(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "nuropb_lab.demo.broker", "ctl", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextlib.contextmanager
def listening(port: int) -> Iterator[None]:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a node's TIME_WAIT
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


def test_binder_start_serves_at_once_when_the_broker_cannot_start(tmp_path: Path) -> None:
    """The broker fails at boot (its Erlang distribution port is taken): the server starts as
    soon as that is known, without waiting out NUROPB_START_WAIT, and the log says why."""
    if broker._tool("rabbitmq-server", real=True) is None:
        pytest.skip("rabbitmq-server is not installed here (binder/apt.txt installs it on Binder)")
    port = spare_port()
    home = tmp_path / "home"
    home.mkdir()
    env = start_env(home, port, NUROPB_START_WAIT=str(HTTP_TIMEOUT * 10))
    with listening(port + 20000):
        output, took = binder_start(home, env, "")
    assert "warning: no RabbitMQ broker; see" in output, output
    assert "dist_port_already_used" in output, output  # the broker's own reason
    assert took < HTTP_TIMEOUT, (took, output)
    assert not broker._answers("127.0.0.1", port)


@contextlib.contextmanager
def booting_node(name: str, dist_port: int) -> Iterator[None]:
    """A node registered with epmd that never answers, as a broker stuck while booting shows:
    the registration (ALIVE2_REQ) lasts as long as its connection."""
    with socket.create_connection(("127.0.0.1", broker.EPMD_PORT), timeout=2) as sock:
        request = struct.pack(">BHBBHHH", 120, dist_port, 77, 0, 6, 5, len(name))
        request += name.encode() + struct.pack(">H", 0)
        sock.sendall(struct.pack(">H", len(request)) + request)
        reply = sock.recv(16)
        assert reply[:1] in (b"v", b"y") and reply[1] == 0, reply  # ALIVE2_(X_)RESP, ok
        yield


def test_binder_start_serves_after_its_wait_when_the_broker_never_answers(
    tmp_path: Path,
) -> None:
    """A broker that never answers (a node of that port booting, registered with epmd): the
    server starts after NUROPB_START_WAIT seconds, and the log says the mesh is still starting."""
    if not broker._answers("127.0.0.1", broker.EPMD_PORT):
        pytest.skip("no epmd runs here (the system broker's) to register a booting node with")
    port = spare_port()
    home = tmp_path / "home"
    home.mkdir()
    env = start_env(home, port, NUROPB_START_WAIT="5")
    booting = f"nuropb-lab-booting-{port}"
    with booting_node(booting, port + 20000):
        output, took = binder_start(home, env, "")
    assert f"waiting for RabbitMQ node {booting!r}" in output, output
    assert "warning: the demo mesh is not up yet; it goes on starting" in output, output
    assert 5 <= took < HTTP_TIMEOUT, (took, output)


def test_a_bad_mem_limit_and_ctl_without_a_broker_say_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEM_LIMIT", "2G")
    with pytest.raises(broker.BrokerError, match=r"^MEM_LIMIT must be a whole number of bytes"):
        broker.prepare_home(tmp_path, 5699)
    assert not (tmp_path / "rabbitmq.conf").exists()  # nothing half-written
    monkeypatch.setenv("MEM_LIMIT", "1000")
    assert broker.memory_watermark() == 400
    monkeypatch.setenv("NUROPB_BROKER_HOME", str(tmp_path))
    assert broker.main(["--url", "amqp://guest:guest@127.0.0.1:5699/", "ctl", "status"]) == 2
    assert capsys.readouterr().err == (
        f"error: no local broker runs for port 5699 with its files in {tmp_path.resolve()}\n"
    )


def test_options_go_before_or_after_the_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """scripts/setup.sh stops the broker it started as ``stop --url URL``; ctl passes on
    everything after it, options too."""
    monkeypatch.setenv("NUROPB_BROKER_HOME", str(tmp_path))
    url = "amqp://guest:guest@127.0.0.1:5699/"
    assert broker.main(["stop", "--url", url]) == 0
    assert broker.main(["--url", url, "stop"]) == 0
    assert capsys.readouterr().out == "no local RabbitMQ of ours on port 5699\n" * 2
    assert broker.main(["--url", url, "ctl", "list_queues", "--timeout", "5"]) == 2
    assert "no local broker runs for port 5699" in capsys.readouterr().err
