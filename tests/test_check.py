"""``lab.check`` on the real broker, nuropb 0.1.8 services under test (peers/
nuropb_buggy_service.py): the planted bugs found and shrunk, reproducers that reproduce, the
correct methods left alone, a service that does not validate, a method that hangs, seeds,
the test file that fails on the bug, Ctrl-C and Stop keeping what was found, bad input in
one line, and the magic."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from support import LabSetup, ctrl_c_after, peer_process, wait_for

import nuropb_lab as nl
from nuropb_lab.lab import Lab, LabError, get_lab
from nuropb_lab.lab.check import CheckError, CheckResult, replay
from nuropb_lab.lab.connections import Connection, Connections
from nuropb_lab.mesh import NuropbValidationError

SEED = 20_240_611
TIMEOUT = 1.0  # s a call may take: hang's calls end here
# what the peer's planted bugs are, and nothing else
PLANTED = {
    ("hang", "timeout"),
    ("initial", "server_error"),
    ("ratio", "server_error"),
    ("secret", "plaintext_accepted"),
}
CORRECT = ("add", "echo", "greet", "secret")


@pytest.fixture(scope="module", autouse=True)
def peer(nuropb_python: Path, mesh_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """The nuropb 0.1.8 services with planted bugs: ``buggy`` and ``lax``."""
    with peer_process(nuropb_python, "nuropb_buggy_service.py", mesh_url, "buggy", "lax") as proc:
        yield proc


@pytest.fixture(scope="module")
def lab_setup() -> LabSetup:
    return LabSetup(alias="checks", settings={"timeout": 10, "describe_timeout": 2})


@pytest.fixture(scope="module")
def found(lab: Lab) -> CheckResult:
    return lab.check("buggy", max_examples=40, timeout=TIMEOUT, seed=SEED)


def pairs(result: CheckResult) -> set[tuple[str, str]]:
    return {(row.method, row.check) for row in result.findings.itertuples()}


def row(result: CheckResult, method: str, check: str) -> Any:
    rows = result.findings
    return rows[(rows["method"] == method) & (rows["check"] == check)].iloc[0]


def test_the_planted_bugs_are_found_shrunk_to_their_smallest_input(found: CheckResult) -> None:
    assert found.state == "done" and pairs(found) == PLANTED
    ratio = row(found, "ratio", "server_error")
    assert ratio.params == {"total": 0, "parts": 0}
    # a sync method's exception, as nuropb 0.1.8 reports it
    assert "ZeroDivisionError: division by zero" in ratio.error
    assert ratio.reproducer == "%nuropb call buggy.ratio total=0 parts=0"
    initial = row(found, "initial", "server_error")
    assert initial.params == {"name": ""}
    assert initial.error == "IndexError: string index out of range"  # async: its own class
    assert initial.reproducer == '%nuropb call buggy.initial name=""'
    hang = row(found, "hang", "timeout")
    assert hang.params == {} and hang.reproducer == "%nuropb call buggy.hang --timeout 1"
    plaintext = row(found, "secret", "plaintext_accepted")
    assert plaintext.params == {"text": ""} and not plaintext.encrypted
    assert plaintext.error == "answered a plaintext call with ''"


def test_the_correct_methods_are_exercised_and_nothing_is_flagged(found: CheckResult) -> None:
    summary = found.summary().set_index("method")
    for method in CORRECT:
        assert summary.loc[method, "server_error"] == 0, method
        assert summary.loc[method, "accepted_invalid"] == 0, method  # they validate
        assert summary.loc[method, "fitting"] == 40 and summary.loc[method, "unfitting"] == 40
    # fitting inputs were sent encrypted to the method that requires it
    assert summary.loc["secret", "plaintext"] >= 1
    assert summary.loc["hang", "notes"] == "left after 3 timeouts"
    assert summary.loc["hang", "examples"] == 3
    assert found.headline().startswith("check of buggy: 7 of 7 methods,")


def test_the_reproducers_reproduce_through_the_magic(found: CheckResult, mesh_url: str) -> None:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nuropb_lab")
    lab = get_lab()
    lab.connect(mesh_url, alias="reproduce")
    ip.user_ns.update(lab=lab, nuropb_lab=nl)
    try:
        for finding in found.findings.itertuples():
            line = finding.reproducer
            with capture_output() as captured:
                if line.startswith("%nuropb "):
                    ip.run_line_magic("nuropb", line.removeprefix("%nuropb "))
                else:  # the plaintext call the lab refuses to make: replay's line
                    print(ip.ev(line))
            said = captured.stderr + captured.stdout
            expected = {
                "ratio": "ZeroDivisionError",
                "initial": "IndexError: string index out of range",
                "hang": "NuropbTimeoutError",
                "secret": "answered a plaintext call with ''",
            }[finding.method]
            assert expected in said, (line, said)
    finally:
        lab.disconnect("reproduce")


def test_a_service_that_does_not_validate_accepts_what_does_not_fit(
    lab: Lab, mesh_url: str
) -> None:
    result = lab.check("lax", max_examples=30, timeout=TIMEOUT, seed=SEED)
    assert pairs(result) == {("label", "accepted_invalid"), ("scale", "accepted_invalid")}
    label = row(result, "label", "accepted_invalid")
    assert "name: expected str" in label.error and "answered" in label.error
    # the reproducer sends the value as the check did (no retyping to the described str)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nuropb_lab")
    magic = get_lab()
    magic.connect(mesh_url, alias="lax")
    try:
        with capture_output():
            answer = ip.run_line_magic("nuropb", label.reproducer.removeprefix("%nuropb "))
        assert "--no-check" in label.reproducer
        assert answer == f"<{label.params['name']}>"
    finally:
        magic.disconnect("lax")


def test_the_same_seed_finds_the_same(lab: Lab) -> None:
    runs = [
        lab.check("buggy", methods=["ratio", "initial", "add"], max_examples=25, seed=7)
        for _ in range(2)
    ]
    first, second = (r.findings.drop(columns=["reproducer"]).to_dict("records") for r in runs)
    assert first == second and len(first) == 2
    assert runs[0].seed == runs[1].seed == 7
    assert [r.examples for r in runs[0].reports] == [r.examples for r in runs[1].reports]
    unseeded = lab.check("buggy", methods=["ratio"], max_examples=5)
    assert unseeded.seed != 7 and f"seed {unseeded.seed}" in unseeded.headline()


class Fixed:
    """The planted bugs mended (served by the lab under the same name)."""

    def ratio(self, total: int, parts: int) -> float:
        if parts == 0:
            raise NuropbValidationError("parts must not be 0")
        return total / parts

    async def initial(self, name: str) -> str:
        if not name:
            raise NuropbValidationError("name must not be empty")
        return name[0]

    async def hang(self, seconds: float = 0.0) -> None:
        return None

    @nl.publish_to_mesh(requires_encryption=True)
    def secret(self, text: str) -> str:
        return text[::-1]


def run_pytest(path: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["NUROPB_AMQP_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(path), "-q", "-p", "no:cacheprovider"],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_test_file_fails_while_the_bugs_are_there(
    found: CheckResult, mesh_url: str, fresh_mesh_url: str, tmp_path: Path
) -> None:
    path = found.to_pytest(tmp_path / "test_buggy.py")
    text = path.read_text()
    assert "guest" not in text  # no URL, no password: NUROPB_AMQP_URL at run time
    done = run_pytest(path, mesh_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "4 failed" in done.stdout
    assert "ZeroDivisionError" in done.stdout and "IndexError" in done.stdout
    # the same file against the service with its bugs mended passes
    mended = Lab(timeout=10)
    try:
        mended.connect(fresh_mesh_url)
        mended.serve(Fixed(), name="buggy")
        done = run_pytest(path, fresh_mesh_url)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "4 passed" in done.stdout
    finally:
        mended.close()
    with pytest.raises(LabError, match="would keep the URL's password"):
        found.to_pytest(tmp_path / "test_other.py", url=mesh_url)


def test_ctrl_c_keeps_what_was_found(lab: Lab) -> None:
    with ctrl_c_after(3.0):
        result = lab.check("buggy", methods=["ratio", "add"], max_examples=50_000, seed=SEED)
    assert result.state == "interrupted"
    assert ("ratio", "server_error") in pairs(result)
    assert row(result, "ratio", "server_error").params == {"total": 0, "parts": 0}
    summary = result.summary().set_index("method")
    assert summary.loc["add", "fitting"] < 50_000  # cut short


def test_a_run_in_the_background_shows_its_progress_and_stops(lab: Lab) -> None:
    from nuropb_lab.widgets import BenchView

    run = lab.start_check("buggy", methods=["add", "ratio"], max_examples=50_000)
    view = run.widget()
    assert isinstance(view, BenchView)
    wait_for(lambda: run.progress.done > 20, 30, "examples sent")
    view.draw()
    assert " examples" in view.status.value
    view.stop_button.click()  # as a user would, for a run in the background
    result = run.wait()
    assert result.state == "stopped" and result is run.result
    wait_for(lambda: view.stop_button.disabled, 5, "the view to see the end")


class Liar:
    """Lab-served: a result that does not fit its annotation (described under 'returns')."""

    def count(self, n: int) -> int:
        return str(n)  # type: ignore[return-value]

    def honest(self, n: int) -> int | None:
        return None if n < 0 else n


def test_a_result_that_does_not_fit_its_described_type(lab: Lab) -> None:
    lab.serve(Liar(), name="liar")
    result = lab.check("liar", max_examples=20, seed=SEED)
    # honest returns None for some: its "int | None" allows it (a lab service does not check
    # the types of its params, so both also accept params that do not fit)
    assert {p for p in pairs(result) if p[1] != "accepted_invalid"} == {
        ("count", "result_mismatch")
    }
    mismatch = row(result, "count", "result_mismatch")
    assert mismatch.params == {"n": 0}
    assert mismatch.error == "returned '0', described as returning int"


class Guarded:
    """Lab-served: a method that authorizes its caller."""

    @nl.nuropb_context
    @nl.publish_to_mesh(authorize_func=lambda token: {"sub": "x"} if token == "good" else None)
    def whoami(self, ctx: Any, verbose: bool = False) -> str:
        return str(ctx.user_claims["sub"])


def test_a_method_that_authorizes_needs_the_context(lab: Lab) -> None:
    lab.serve(Guarded(), name="guarded")
    without = lab.check("guarded", max_examples=10, seed=SEED)
    assert without.summary().loc[0, "notes"] == (
        "every input that fits was refused: NuropbAuthenticationError"
        " (a method that authorizes needs context=, a token)"
    )
    given = lab.check("guarded", max_examples=10, seed=SEED, context={"Authorization": "good"})
    assert given.summary().loc[0, "notes"] == "" and given.summary().loc[0, "fitting"] > 0
    assert "good" not in given.findings.to_string() + repr(given)  # the token is not shown


async def _queue_without_consumer(url: str, service: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"nuropb-{service}-sq", durable=True, auto_delete=True)
        await queue.bind("nuropb-rpc-exchange", routing_key=service)


def test_bad_input_is_one_line(lab: Lab, mesh_url: str) -> None:
    with pytest.raises(CheckError, match=r"^cannot check nope: .*nope"):
        lab.check("nope")
    with pytest.raises(CheckError, match=r"^buggy has no method 'nope' \(methods: add, echo"):
        lab.check("buggy.nope")
    with pytest.raises(CheckError, match=r"^buggy has no method 'x'"):
        lab.check("buggy", methods=["add", "x"])
    for options, message in [
        ({"max_examples": 0}, "max_examples must be from 1"),
        ({"timeout": "soon"}, "timeout must be a number"),
        ({"concurrency": 2.5}, "concurrency must be a number"),
        ({"methods": "add"}, "methods must be a list"),
    ]:
        with pytest.raises(CheckError, match=message):
            lab.check("buggy", **options)
    asyncio.run(_queue_without_consumer(mesh_url, "mute"))
    started = time.monotonic()
    with pytest.raises(CheckError, match=r"^mute did not describe itself \(NuropbTimeoutError"):
        lab.check("mute")
    assert time.monotonic() - started < 30  # nothing waits forever: the describe's timeout


async def _closed_connection(url: str) -> Any:
    api = nl.RMQAPI(url)
    await api.connect()
    await api.disconnect()
    return api


def test_a_connection_that_may_not_send_refuses(mesh_url: str) -> None:
    api = asyncio.run(_closed_connection(mesh_url))
    closed = Connection("gone", api, None)  # type: ignore[arg-type]
    with pytest.raises(LabError, match="connection 'gone' is closed: a check sends nothing"):
        Connections.may_send(closed, "a check")
    # the check and the mock ask it before they send or serve anything
    other = Lab(timeout=10)
    try:
        connection = other.connect(mesh_url, alias="gone")
        other.runner.run(connection.api.disconnect(), 10)
        with pytest.raises(LabError, match="connection 'gone' is closed: a check sends nothing"):
            other.check("buggy")
        with pytest.raises(LabError, match="connection 'gone' is closed: a mock sends nothing"):
            other.mock("buggy", handlers={"ping": lambda: "pong"})
        assert other.connection("gone").mocks == {} and other.connection("gone").served == {}
    finally:
        other.close()


def test_replay_of_a_finding_that_is_gone_is_none(mesh_url: str) -> None:
    # ratio with parts 1 answers: no server error to see
    assert replay(mesh_url, "buggy", "ratio", {"total": 1, "parts": 1}, "server_error") is None
    still = replay(mesh_url, "buggy", "ratio", {"total": 0, "parts": 0}, "server_error")
    assert still is not None and "ZeroDivisionError" in still


def test_the_magic(lab: Lab, mesh_url: str) -> None:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nuropb_lab")
    magic = get_lab()
    magic.connect(mesh_url, alias="checkmagic")
    try:
        with capture_output() as captured:
            value = ip.run_line_magic("nuropb", "check buggy.ratio -n 20 --seed 3 -o checked")
        lines = captured.stdout.strip().splitlines()
        assert lines[0] == (
            "checking buggy: calls ratio for real, up to 20 inputs that fit and 20 that do not"
            " per method (seed 3)"
        )
        assert lines[-1].startswith("check of buggy: 1 of 1 methods,") and value is None
        checked = ip.user_ns["checked"]
        assert pairs(checked) == {("ratio", "server_error")}
        with capture_output() as captured:
            ip.run_line_magic("nuropb", "check nope")
        assert captured.stderr.startswith("CheckError: cannot check nope:")
        assert captured.stderr.count("\n") == 1
    finally:
        magic.disconnect("checkmagic")
