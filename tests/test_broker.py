"""The broker helper: use a broker that answers, start a project-local one (files under its
home, management on), wait for one that is booting, say what to install, stop only its own."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import BASE_URL

from nuropb_lab.demo import broker
from nuropb_lab.demo.broker import (
    BrokerError,
    BrokerInfo,
    _answers,
    _management_answers,
    ensure_broker,
    epmd_names,
    stop_broker,
)


def free_broker_port(candidates: range = range(5690, 5698)) -> int:
    """A port whose AMQP, management (+10000) and distribution (+20000) ports are all free."""
    for port in candidates:
        if not any(_answers("127.0.0.1", p, 0.2) for p in (port, port + 10000, port + 20000)):
            return port
    pytest.fail(f"no free port for a local broker in {candidates}")


@pytest.fixture
def local_broker(tmp_path: Path) -> Iterator[BrokerInfo]:
    if broker._tool("rabbitmq-server", real=True) is None:
        pytest.skip("rabbitmq-server is not installed here, so no local broker can be started")
    port = free_broker_port()
    info = ensure_broker(f"amqp://guest:guest@127.0.0.1:{port}/", home=tmp_path / "rabbitmq")
    try:
        yield info
    finally:
        stop_broker(info)


def test_a_broker_that_answers_is_used_and_never_stopped() -> None:
    info = ensure_broker(BASE_URL + "/")
    assert not info.started and info.home is None
    assert not stop_broker(info)
    assert _answers(info.host, info.port)


def test_local_broker_lives_in_its_home_and_stops(local_broker: BrokerInfo) -> None:
    info, home = local_broker, local_broker.home
    assert info.started and home is not None
    assert _answers("127.0.0.1", info.port)
    assert _management_answers("127.0.0.1", info.port + 10000)
    assert "rabbitmq_management" in (home / "enabled_plugins").read_text()
    assert f"127.0.0.1:{info.port}" in (home / "rabbitmq.conf").read_text()
    assert (home / "mnesia" / info.node).is_dir()
    assert (home / "log" / f"{info.node}.log").exists()
    assert epmd_names().get(f"nuropb-lab-{info.port}") == info.port + 20000

    again = ensure_broker(f"amqp://guest:guest@127.0.0.1:{info.port}/", home=home)
    assert not again.started  # the running one is used, not started twice
    assert not stop_broker(again) and _answers("127.0.0.1", info.port)

    assert stop_broker(info)
    assert not _answers("127.0.0.1", info.port)
    assert f"nuropb-lab-{info.port}" not in epmd_names()
    assert not (home / "rabbitmq.pid").exists()
    assert not broker.stop_local_broker(info.port, home)  # nothing left to stop


def test_a_booting_node_is_waited_for_not_started_twice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    checks = iter([False, False, False, True])
    monkeypatch.setattr(broker, "_answers", lambda host, port, timeout=1.0: next(checks))
    monkeypatch.setattr(broker, "_node_for_port", lambda port: "rabbit")
    monkeypatch.setattr(broker, "_start_local", lambda *a: pytest.fail("started a second broker"))
    info = ensure_broker("amqp://guest:guest@127.0.0.1:5672/", management=False, home=tmp_path)
    assert not info.started and next(checks, "used up") == "used up"


def test_without_rabbitmq_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_broker_port()
    monkeypatch.setattr(broker, "_tool", lambda name, real=False: None)
    monkeypatch.setattr(broker, "_is_root", lambda: False)
    with pytest.raises(BrokerError, match="apt-get install rabbitmq-server"):
        ensure_broker(f"amqp://guest:guest@127.0.0.1:{port}/")
    assert broker.main(["--url", f"amqp://guest:guest@127.0.0.1:{port}/"]) == 2
    error = capsys.readouterr().err
    assert "brew install rabbitmq" in error and "NUROPB_AMQP_URL" in error


def test_a_broker_elsewhere_is_not_started() -> None:
    # 127.0.0.2 is loopback, but not a host the helper starts brokers for
    with pytest.raises(BrokerError, match="not local"):
        ensure_broker("amqp://guest:guest@127.0.0.2:5691/")


def test_epmd_names_without_a_registry_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setattr(broker, "EPMD_PORT", probe.getsockname()[1])
        assert epmd_names() == {}


def test_default_home_is_the_gitignored_project_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUROPB_BROKER_HOME", raising=False)
    root = Path(__file__).resolve().parents[1]
    assert broker.default_home() == root / ".cache" / "rabbitmq"
    monkeypatch.setenv("NUROPB_BROKER_HOME", os.fspath(root / "x"))
    assert broker.default_home() == root / "x"
