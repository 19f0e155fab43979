"""Shared fixtures: a real RabbitMQ, a fresh vhost per test module, the nuropb 0.1.8 peer, a
connected Lab. Helpers that are not fixtures are in support.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from support import NUROPB_VENV, ROOT, Broker, LabSetup, fresh_vhost, mesh_url_for, the_broker

from nuropb_lab.demo.run import KEY_ENV as DEMO_KEY_ENV
from nuropb_lab.mesh import ManagementAPI, parse_amqp_url
from nuropb_lab.mesh.known_keys import ENV as KNOWN_KEYS_ENV

if TYPE_CHECKING:
    from nuropb_lab.lab import Lab


@pytest.fixture(scope="session", autouse=True)
def known_keys_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tests' own known-keys file (the Labs they make pin keys there) and demo vault key,
    never the user's; notebooks' kernels and demo processes inherit them."""
    path = tmp_path_factory.mktemp("known-keys") / "known_keys.json"
    files = {KNOWN_KEYS_ENV: path, DEMO_KEY_ENV: path.with_name("demo-vault-key.pem")}
    before = {name: os.environ.get(name) for name in files}
    os.environ.update({name: str(value) for name, value in files.items()})
    yield path
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def management() -> ManagementAPI:
    api = ManagementAPI.for_target(parse_amqp_url(mesh_url_for("x")))
    try:
        api.call_blocking("GET", "overview")
    except Exception as exc:
        pytest.fail(
            f"the RabbitMQ management API is needed by the tests: {exc} (scripts/test sets it up)"
        )
    return api


@pytest.fixture(scope="module")
def mesh_url(request: pytest.FixtureRequest, management: ManagementAPI) -> Iterator[str]:
    """A configured mesh on a vhost of its own for this test module, deleted afterwards."""
    label = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    yield from fresh_vhost(management, label)


@pytest.fixture
def fresh_mesh_url(request: pytest.FixtureRequest, management: ManagementAPI) -> Iterator[str]:
    """A mesh of its own for one test."""
    yield from fresh_vhost(management, request.node.name[:20].replace("_", "-").lower())


@pytest.fixture(scope="session")
def broker(management: ManagementAPI) -> Broker:
    return the_broker()


@pytest.fixture(scope="session")
def nuropb_python(broker: Broker) -> Path:
    """The interpreter of a virtualenv holding the published nuropb==0.1.8; skipped, saying
    why, on a broker where nuropb 0.1.8 cannot run."""
    if not broker.permits_transient_queues:
        pytest.skip(
            "nuropb 0.1.8 cannot run on a broker that denies transient non-exclusive queues"
            " (its response queues and DLQ are such); scripts/test runs this on one that permits"
            " them"
        )
    python = NUROPB_VENV / "bin" / "python"
    check = [str(python), "-c", "import nuropb.rmq_api"]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        script = "source scripts/setup.sh && setup_nuropb_venv"
        subprocess.run(["bash", "-c", script], cwd=ROOT, check=True)
    return python


@pytest.fixture(scope="session")
def compat_python(nuropb_python: Path) -> Path:
    """The interpreter of a virtualenv with nuropb==0.1.8 and the lab side by side (where
    nuropb 0.1.8 can run, see ``nuropb_python``)."""
    python = ROOT / ".cache" / "compat" / "bin" / "python"
    check = [str(python), "-c", "import nuropb.rmq_api, nuropb_lab"]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        script = "source scripts/setup.sh && setup_compat_venv"
        subprocess.run(["bash", "-c", script], cwd=ROOT, check=True)
    return python


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A throwaway 3-node RabbitMQ cluster of the tests' own (tests/nodes), one per session;
    skipped, saying why, where it cannot start."""
    from nodes import NodeUnavailable, start_cluster

    try:
        started = start_cluster(tmp_path_factory.mktemp("cluster"))
    except NodeUnavailable as exc:
        print(f"cluster unavailable: {exc}", file=sys.stderr)
        pytest.skip(f"cannot start a 3-node RabbitMQ cluster here: {exc}")
    print(f"\n3-node cluster booted in {started.boot_seconds:.1f} s", file=sys.stderr)
    try:
        yield started
    finally:
        started.stop()


def _broker_line() -> str:
    try:
        return f"broker: {the_broker().describe()}"
    except Exception as exc:  # the management fixture fails the tests, saying why
        return f"broker: {parse_amqp_url(mesh_url_for('x')).masked} ({exc})"


def pytest_report_header() -> list[str]:
    return [_broker_line(), f"python: {sys.version.split()[0]}"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what needs a nuropb 0.1.8 peer and what needs the 3-node cluster, so a run can
    pick them (scripts/test runs them on a broker where nuropb 0.1.8 can run)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & {"nuropb_python", "compat_python"}:
            item.add_marker(pytest.mark.nuropb_peer)
        if "cluster" in fixtures:
            item.add_marker(pytest.mark.cluster)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(f"ran on {_broker_line()}")


@pytest.fixture(scope="module")
def lab_setup() -> LabSetup:
    """How this module's ``lab`` is made; a module overrides this fixture to change it."""
    return LabSetup()


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, lab_setup: LabSetup) -> Iterator[Lab]:
    """A Lab connected to the module's mesh (see :class:`support.LabSetup`), with the objects
    it serves, closed after the module."""
    from nuropb_lab.lab import Lab

    made = Lab(**lab_setup.settings)
    try:
        made.connect(lab_setup.url or request.getfixturevalue("mesh_url"), alias=lab_setup.alias)
        for name, obj in lab_setup.serve.items():
            made.serve(obj, name=name)
        yield made
    finally:
        made.close()
