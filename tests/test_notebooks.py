"""The tour notebooks run headless (nbclient, a fresh kernel each) against the demo mesh, with
no error cell, and show what they promise; they are committed without outputs."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from nuropb_lab.demo.execute import NotebookFailed, execute_notebook
from nuropb_lab.demo.execute import main as execute_main
from nuropb_lab.demo.run import demo_process
from nuropb_lab.mesh import ManagementAPI

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / ".cache" / "executed" / "tests"  # kept for a look when one fails
NAMES = [
    "01-quickstart",
    "02-browse-and-call",
    "03-events",
    "04-encryption",
    "05-traffic",
    "06-load",
    "07-check-and-mock",
]
WIDGET = "application/vnd.jupyter.widget-view+json"
USER = f"nb-{uuid.uuid4().hex[:6]}"
PASSWORD = f"pw-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def demo_url(mesh_url: str, management: ManagementAPI) -> Iterator[str]:
    """The demo mesh; the notebooks reach it as a user with a password of its own, so that
    every executed notebook can be searched for that password."""
    vhost = mesh_url.rsplit("/", 1)[1]
    # an administrator: 05-traffic switches the mesh's firehose on (and off)
    management.call_blocking(
        "PUT", f"users/{USER}", {"password": PASSWORD, "tags": "administrator"}
    )
    management.call_blocking(
        "PUT", f"permissions/{vhost}/{USER}", {"configure": ".*", "write": ".*", "read": ".*"}
    )
    try:
        with (ROOT / ".cache" / "test-notebooks-demo.log").open("wb") as log:
            with demo_process(mesh_url, rate=25, timeout=60, output=log):
                yield mesh_url.replace("guest:guest@", f"{USER}:{PASSWORD}@")
    finally:
        management.call_blocking("DELETE", f"users/{USER}")


# the cells that may write to stderr (a warning is a defect of the tour too): the refusals the
# tour shows, by notebook and the start of the cell's source
STDERR_IN = {
    "04-encryption": ("%nuropb call vault.store name=wifi value=oops",),
    "06-load": ("%nuropb bench orders.place_order",),
    "07-check-and-mock": (
        "%nuropb call inventory.days_of_stock",  # the bug, reproduced
        "%nuropb mock inventory",  # notes: calls of the recording it could not use
        "%nuropb call inventory.take sku=K100 qty=7",  # not recorded
    ),
}


def unexpected_output(nb: nbformat.NotebookNode, name: str) -> list[tuple[str, str]]:
    """(first line, text) of every code cell of an executed notebook with an error, or with
    stderr where STDERR_IN allows none."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        first = cell.source.splitlines()[0] if cell.source else ""
        errors = [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]
        stderr = (
            "" if cell.source.startswith(STDERR_IN.get(name, ())) else text(cell.outputs, "stderr")
        )
        if errors or stderr:
            found.append((first, "\n".join([*errors, stderr]).strip()))
    return found


def run(name: str, url: str) -> nbformat.NotebookNode:
    """Execute a notebook: no cell may fail, nor write to stderr but as STDERR_IN allows."""
    # the kernel finds its mesh as a user's would: through $NUROPB_AMQP_URL
    env = dict(os.environ, NUROPB_AMQP_URL=url)
    try:
        nb = execute_notebook(
            NOTEBOOKS / f"{name}.ipynb", EXECUTED / f"{name}.ipynb", timeout=60, env=env
        )
    except NotebookFailed as exc:
        pytest.fail(f"a cell failed (executed copy: {EXECUTED / name}.ipynb):\n{exc}")
    executed = (EXECUTED / f"{name}.ipynb").read_text()
    assert PASSWORD not in executed and PASSWORD not in nbformat.writes(nb), "a password was shown"
    unexpected = unexpected_output(nb, name)
    assert not unexpected, unexpected
    return nb


def outputs(nb: nbformat.NotebookNode, source_start: str) -> list[Any]:
    """The outputs of the first code cell whose source starts with ``source_start``."""
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith(source_start):
            return list(cell.outputs)
    raise AssertionError(f"no cell starts with {source_start!r}")


def text(cell_outputs: list[Any], stream: str | None = None) -> str:
    parts = []
    for out in cell_outputs:
        if out.output_type == "stream" and stream in (None, out.name):
            parts.append(out.text)
        elif stream is None and "data" in out:
            parts.append(out.data.get("text/plain", ""))
    return "".join(parts)


def kinds(cell_outputs: list[Any]) -> set[str]:
    return {key for out in cell_outputs for key in out.get("data", {})}


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata.kernelspec.name == "python3"


def test_quickstart(demo_url: str) -> None:
    nb = run("01-quickstart", demo_url)
    assert f"connected to amqp://{USER}:***@" in text(outputs(nb, "%load_ext"), "stdout")
    services = text(outputs(nb, "%nuropb services"))
    assert all(s in services for s in ("orders", "inventory", "vault", "sensors"))
    assert "'order_id': 'O-1001'" in text(outputs(nb, "%nuropb call orders.place_order"))
    assert "{'sku': 'C300', 'units': 38}" in text(outputs(nb, "%nuropb call inventory.stock"))
    assert "sensors." in text(outputs(nb, "wait_for("))
    assert "image/png" in kinds(outputs(nb, "rates = "))  # the plot of event rates
    assert "place_order" in text(outputs(nb, "readings.stop()"))  # the history


def test_browse_and_call(demo_url: str) -> None:
    nb = run("02-browse-and-call", demo_url)
    for start in ("ConnectionStatus(lab)", "spec = ", "%nuropb tail", "%nuropb keys"):
        assert WIDGET in kinds(outputs(nb, start)), start
    assert text(outputs(nb, "form.call_button.click()")) == "{'sku': 'A100', 'units': 12}"
    last = nb.cells[-1]
    assert last.source == "%nuropb browse" and WIDGET in kinds(last.outputs)
    assert text(last.outputs).startswith("ServiceBrowser(")


def test_events(demo_url: str) -> None:
    nb = run("03-events", demo_url)
    by_kind = text(outputs(nb, "events.groupby"))
    assert "temperature" in by_kind and "kitchen" in by_kind
    assert "mean" in text(outputs(nb, 'temperature.groupby("room")'))
    assert "events" in text(outputs(nb, 'events.set_index("received_at").resample'))
    assert "image/png" in kinds(outputs(nb, "per_room = "))


def test_encryption(demo_url: str) -> None:
    nb = run("04-encryption", demo_url)
    assert "vault" in text(outputs(nb, "%nuropb keys"))
    assert "'stored': 'wifi'" in text(outputs(nb, "%nuropb call vault.store name=wifi value=c"))
    revealed = text(outputs(nb, "%nuropb call vault.reveal"))
    assert "'value': 'correct-horse'" in revealed and "'for': 'demo-user'" in revealed
    refused = outputs(nb, "%nuropb call vault.store name=wifi value=oops --plain")
    assert text(refused, "stderr").strip() == (
        "EncryptionRefused: vault.store requires encryption; a plaintext call is refused"
    )
    assert "refused by the vault: NuropbAuthorizationError" in text(outputs(nb, "import nuropb"))
    assert "[reveal, store]" in text(outputs(nb, "%nuropb keys vault"))


def test_traffic(demo_url: str, management: ManagementAPI) -> None:
    nb = run("05-traffic", demo_url)
    assert "(firehose): live" in text(outputs(nb, "%nuropb tap -o tap"))
    assert "shopper" in text(outputs(nb, "tap.stats()"))
    assert "place_order" in text(outputs(nb, 'tap.stats(by="method")'))
    graph = outputs(nb, "tap.graph()")
    assert "image/svg+xml" in kinds(graph) and "inventory" in graph[0].data["image/svg+xml"]
    assert WIDGET in kinds(outputs(nb, "tap.widget("))
    waterfall = outputs(nb, "calls = tap.calls")[0].data["text/html"]
    assert "<svg" in waterfall and "shopper → orders.place_order" in waterfall
    assert "'order_id': 'W-" in text(outputs(nb, "df = tap.df"))
    encrypted = text(outputs(nb, 'tap.df.query("encrypted")'))
    assert "vault" in encrypted and "shopper" in encrypted
    assert "shopper" in text(outputs(nb, "import tempfile"))
    assert text(outputs(nb, "tap.stop()")).strip().endswith(": off")
    vhost = demo_url.rsplit("/", 1)[1]
    assert management.call_blocking("GET", f"vhosts/{vhost}")["tracing"] is False


def test_load(demo_url: str, management: ManagementAPI) -> None:
    nb = run("06-load", demo_url)
    closed = outputs(nb, "%nuropb bench inventory.stock sku=A100")
    assert WIDGET in kinds(closed)  # the progress view
    assert "2,000 calls" in text(closed, "stdout")
    summary = text(closed)
    assert re.search(r"^count +2000$", summary, re.M) and re.search(r"^errors +0$", summary, re.M)
    assert "image/svg+xml" in kinds(outputs(nb, "closed.plot()"))
    opened = text(outputs(nb, "%nuropb bench inventory.stock sku=B200"))
    # 3 s at 200/s: 600 intended sends, of which a loaded machine may leave a few unsent
    sent = re.search(r"open rate=200/s\): ([\d,]+) calls", opened)
    assert sent and 500 <= int(sent[1].replace(",", "")) <= 600, opened
    assert "Name: rotating skus" in text(outputs(nb, "skus = "))
    refused = text(outputs(nb, "%nuropb bench orders.place_order"), "stderr").splitlines()
    assert refused == [
        "ParamError: qty: expected int, got 'notanumber'",
        "BenchError: concurrency must be a whole number from 1 to 10,000, got 0",
    ]
    assert "serving limited as 'limited'" in text(outputs(nb, "class Limited"))
    assert "knee at concurrency" in text(outputs(nb, "sweep = lab.capacity"))
    assert "image/svg+xml" in kinds(outputs(nb, "sweep.plot()"))
    benches = text(outputs(nb, "lab.benches()"))
    assert all(label in benches for label in ("stock-c20", "stock-200/s", "limited.work c=16"))
    # served as temporary, stopped at the end: no limited service left behind
    assert "inventory" in text(outputs(nb, 'lab.unserve("limited")'))
    assert "limited" not in text(outputs(nb, 'lab.unserve("limited")'))
    vhost = demo_url.rsplit("/", 1)[1]
    assert management.call_blocking("GET", f"queues/{vhost}/nuropb-limited-sq") is None


def test_check_and_mock(demo_url: str) -> None:
    nb = run("07-check-and-mock", demo_url)
    checked = outputs(nb, "%nuropb check inventory")
    assert WIDGET in kinds(checked)  # the progress view
    said = text(checked, "stdout")
    assert said.startswith(
        "checking inventory: calls stock, low_stock, days_of_stock for real, up to 50 inputs"
    )
    assert "check of inventory: 3 of 3 methods," in said and "seed 7 [done]" in said
    findings = text(outputs(nb, "found.findings"))  # the first such cell: the table
    assert "days_of_stock" in findings and "server_error" in findings
    assert "'per_day': 0" in findings
    reproduced = outputs(nb, "%nuropb call inventory.days_of_stock")
    assert text(reproduced, "stderr").strip() == "ZeroDivisionError: division by zero"
    assert "def test_" in text(outputs(nb, "tests = found.to_pytest"))
    mocked = outputs(nb, "%nuropb mock inventory --from recording")
    assert text(mocked, "stdout").startswith("mocking inventory on ")
    assert "inventory (mock)" in text(mocked)  # %nuropb status
    medians = text(outputs(nb, "wait_for(lambda: mock.stats"), "stdout")
    for method in ("take", "place_order"):
        match = re.search(
            rf"^{method}: median \d+ ms before, (\d+) ms with the mock$", medians, re.M
        )
        assert match and int(match.group(1)) >= 250, medians  # the injected delay
    unrecorded = text(outputs(nb, "%nuropb call inventory.take sku=K100 qty=7"), "stderr")
    assert unrecorded.startswith(
        "NuropbHandlingError: mock: no recorded call of inventory.take(sku='K100', qty=7);"
        " the nearest recorded: take(sku='K100', qty="
    )
    back = text(outputs(nb, "%nuropb mock inventory --stop"))
    assert "stopped the mock of inventory" in back and "'sku': 'A100'" in back


# what a Lab runs, printed by a cell appended to a notebook run twice in one kernel
STATE = """
import gc, json
import nuropb_lab
from nuropb_lab.widgets.live import Live
lab_ = nuropb_lab.get_lab()
print(json.dumps({
    "connections": {
        alias: {
            "tails": sorted(" ".join(t.patterns) for t in c.tails),
            "taps": sorted(" ".join(t.services) or "all" for t in c.taps),
            "served": sorted(c.served),
            "mocks": sorted(c.mocks),
        }
        for alias, c in lab_.connections.items()
    },
    "live view timers": sum(o.running for o in gc.get_objects() if isinstance(o, Live)),
}))
"""


@pytest.mark.parametrize("name", NAMES)
def test_run_all_twice_in_one_kernel(name: str, demo_url: str) -> None:
    """Run All, then Run All again in the same kernel (nbclient: setup_kernel, then
    execute_cell for every cell, twice): the second run shows no error and no stderr but as
    STDERR_IN allows, and leaves what the first left (connections, tails, taps, served objects,
    live views' timers)."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(STATE))
    client = NotebookClient(
        nb,
        timeout=60,
        startup_timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    copy = EXECUTED / f"{name}-twice.ipynb"
    states = []
    try:
        with client.setup_kernel(env=dict(os.environ, NUROPB_AMQP_URL=demo_url)):
            for run_number in (1, 2):
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
                unexpected = unexpected_output(nb, name)
                assert not unexpected, (f"run {run_number}", unexpected)
                states.append(json.loads(text(nb.cells[-1].outputs, "stdout")))
    except CellExecutionError as exc:
        pytest.fail(f"a cell failed (executed copy: {copy}):\n{exc}")
    finally:
        copy.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, copy)
    assert PASSWORD not in nbformat.writes(nb), "a password was shown"
    assert states[1] == states[0]
    assert list(states[0]["connections"]) == [demo_url.rsplit("/", 1)[1]]


def test_an_error_cell_fails_the_run_and_the_copy_is_written(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("print('before')"), nbformat.v4.new_code_cell("1 / 0")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    code = execute_main([str(path), "--out", str(tmp_path / "out"), "--timeout", "30"])
    assert code == 1
    written = nbformat.read(tmp_path / "out" / "broken.ipynb", as_version=4)
    assert written.cells[0].outputs[0].text == "before\n"
    assert written.cells[1].outputs[0].ename == "ZeroDivisionError"
