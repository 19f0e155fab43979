"""02-browse-and-call in a real browser: JupyterLab on 127.0.0.1, Debian's Chromium driven by
Playwright (no browser download). Run all cells through the UI; the service browser must list
the demo services, and a call made through its form must show its result; 05-traffic's
pictures and tap view render; a hostile peer's markup shows as text and never runs. Screenshots
go to .cache/screenshots/. Without /usr/bin/chromium the test is skipped, and says why."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nuropb_lab.demo.run import demo_process

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / ".cache" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVICES = ["orders", "inventory", "vault", "sensors"]
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def sync_playwright() -> Any:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Debian's Chromium is not installed ({CHROMIUM} is missing): scripts/test installs"
            " it with `apt-get install chromium` when run as root"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"Python playwright is not installed ({exc}); it is in the test extra")
    return sync_playwright


@pytest.fixture(scope="module")
def demo_url(mesh_url: str, sync_playwright: Any) -> Iterator[str]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with (SCREENSHOTS / "demo.log").open("wb") as log:
        with demo_process(mesh_url, rate=8, timeout=60, output=log):
            yield mesh_url


def assert_no_stderr(page: Any) -> None:
    """No cell wrote to stderr. Its text is read from the DOM (text_content): JupyterLab
    does not render cells out of view, so their inner text is empty."""
    errors = page.locator('[data-mime-type="application/vnd.jupyter.stderr"]')
    assert errors.count() == 0, [error.text_content() for error in errors.all()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def jupyter_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JupyterLab server's folder: its notebooks in ``notebooks/``."""
    return tmp_path_factory.mktemp("jupyterlab")


@pytest.fixture(scope="module")
def jupyterlab(demo_url: str, jupyter_base: Path) -> Iterator[str]:
    """A JupyterLab server on a copy of notebooks/ (so nothing is saved into the repository),
    with its own config and runtime folders; returns the base URL (token in the query)."""
    base = jupyter_base
    shutil.copytree(ROOT / "notebooks", base / "notebooks")
    (base / "config" / "labconfig").mkdir(parents=True)
    # no "get notified about Jupyter news?" toast over the screenshots
    (base / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    port, token = free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        NUROPB_AMQP_URL=demo_url,  # the kernel's mesh
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={base / 'notebooks'}",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]
    log_path = SCREENSHOTS / "jupyterlab.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}: see {log_path}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within 60 s: see {log_path}")
                time.sleep(0.25)
        yield f"{url}/lab/tree/02-browse-and-call.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def test_service_browser_lists_services_and_calls(
    jupyterlab: str, sync_playwright: Any, tmp_path: Path
) -> None:
    with chromium_page(sync_playwright, tmp_path, "02-browse-and-call") as page:
        drive(page, jupyterlab)


@contextlib.contextmanager
def chromium_page(sync_playwright: Any, tmp_path: Path, notebook: str) -> Iterator[Any]:
    """A page of a fresh headless Chromium profile; on a failure, a screenshot of it."""
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(WAIT_MS)
        try:
            yield context.new_page()
        except Exception:
            if context.pages:
                context.pages[-1].screenshot(path=SCREENSHOTS / f"{notebook}-failed.png")
            raise
        finally:
            context.close()


def shot(page: Any, name: str, showing: Any = None) -> None:
    """A screenshot, once ``showing`` (a locator) is scrolled into the viewport: JupyterLab
    renders only the cells in view, so the shot waits for it to be there."""
    if showing is not None:
        from playwright.sync_api import expect

        showing.scroll_into_view_if_needed()
        expect(showing).to_be_in_viewport()
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def drive(page: Any, url: str) -> None:
    page.goto(url)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()  # the kernel is up
    shot(page, "02-browse-and-call-1-opened")

    # Run > Run All Cells, as a user would
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    # the last cell is %nuropb browse: its first select lists the services
    browser = page.locator(".jp-CodeCell").last
    services = browser.locator(".widget-select select").nth(0)
    methods = browser.locator(".widget-select select").nth(1)
    page.wait_for_function(
        """([select, names]) => names.every(
            (n) => [...select.options].some((o) => o.textContent.startsWith(n)))""",
        arg=[services.element_handle(), SERVICES],
    )
    listed = services.evaluate("(s) => [...s.options].map((o) => o.textContent)")
    assert sorted(label.split("\xa0")[0] for label in listed) == sorted(SERVICES)
    assert any(label.startswith("vault") and "🔒" in label for label in listed)
    shot(page, "02-browse-and-call-2-services", services)

    # the cells above it ran without an error, and their widgets rendered
    assert_no_stderr(page)
    assert page.get_by_text("{'sku': 'A100', 'units': 12}").count() == 1
    keys = page.locator(".jp-CodeCell", has_text="%nuropb keys --widget")
    keys.locator("td", has_text="reveal, store").wait_for()
    keys_text = keys.locator(".jp-OutputArea").inner_text()
    assert "2048" in keys_text and "nan" not in keys_text

    # pick inventory, then stock; fill in the SKU; Call
    services.select_option(index=next(i for i, s in enumerate(listed) if s.startswith("invent")))
    page.wait_for_function("(select) => select.options.length > 0", arg=methods.element_handle())
    method_names = methods.evaluate("(s) => [...s.options].map((o) => o.textContent)")
    assert method_names == ["days_of_stock", "low_stock", "restock", "stock", "take"]
    methods.select_option(index=method_names.index("stock"))
    browser.get_by_text("inventory.stock", exact=True).wait_for()
    sku = browser.locator(".widget-text input").first
    sku.fill("B200")
    sku.press("Tab")
    browser.get_by_role("button", name="Call").click()
    result = browser.locator(".widget-html pre", has_text='"units"')
    result.wait_for()
    assert json.loads(result.inner_text()) == {"sku": "B200", "units": 3}
    shot(page, "02-browse-and-call-3-called", result)


def test_tap_view_and_service_graph_show(
    jupyterlab: str, sync_playwright: Any, tmp_path: Path
) -> None:
    """05-traffic: the service graph (an SVG output) and the live tap view render."""
    # a workspace of its own, so only this notebook is open (and its kernel is the one shown)
    url = jupyterlab.replace(
        "/lab/tree/02-browse-and-call.ipynb?",
        "/lab/workspaces/traffic/tree/05-traffic.ipynb?reset&",
    )
    with chromium_page(sync_playwright, tmp_path, "05-traffic") as page:
        drive_traffic(page, url)


def run_all_cells(page: Any) -> None:
    """Run > Run All Cells, until a cell has started (a click while the notebook is still
    settling, its workspace just reset, can be lost)."""
    started = """() => [...document.querySelectorAll('.jp-InputPrompt')]
        .some((p) => /\\[(\\*|\\d+)\\]/.test(p.textContent))"""
    for _ in range(3):
        page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook has the focus
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(started, timeout=15_000)
            return
        except Exception:  # playwright's TimeoutError: try once more
            continue
    raise AssertionError("Run All Cells did not start the notebook")


def drive_traffic(page: Any, url: str) -> None:
    page.goto(url)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
    run_all_cells(page)
    # the last cell stops the tap: the firehose is off again
    page.locator(".jp-CodeCell").last.get_by_text("firehose of", exact=False).wait_for()
    assert "off" in page.locator(".jp-CodeCell").last.locator(".jp-OutputArea").inner_text()

    graph = page.locator(".jp-CodeCell", has_text="tap.graph()").first
    # JupyterLab shows an SVG output as an image of it
    picture = graph.locator(".jp-RenderedSVG img").first
    picture.wait_for()
    svg = urllib.parse.unquote(picture.get_attribute("src") or "")
    assert svg.startswith("data:image/svg+xml")
    assert all(f">{name}<" in svg for name in ("shopper", "orders", "inventory")), svg[:300]
    shot(page, "05-traffic-graph", picture)

    view = page.locator(".jp-CodeCell", has_text="tap.widget(rows=12)").first
    view.locator(".widget-html table tr").nth(5).wait_for()  # the newest messages
    view.locator(".widget-html svg").first.wait_for()  # the graph beside them
    # the newest messages of a busy mesh: which ones is up to the traffic (under load they can
    # all be events and answers), what they show is not
    lines = view.locator(".widget-html table").first.inner_text().splitlines()
    assert lines[0].split("\t")[:3] == ["time", "kind", "message"], lines[0]
    kinds = {line.split("\t")[1] for line in lines[1:]}
    assert kinds and kinds <= {"request", "response", "command", "event"}, lines
    assert any(name in line for line in lines[1:] for name in SERVICES), lines
    page.wait_for_function(  # the graph is redrawn (a new <svg>) while traffic comes
        """(cell) => {
            const names = new Set([...cell.querySelectorAll('.widget-html svg text')]
                .map((text) => text.textContent.trim()));
            return ['shopper', 'orders', 'inventory'].every((name) => names.has(name));
        }""",
        arg=view.element_handle(),
        timeout=30_000,
    )
    # the output area, not the table: the view redraws its table (a new element) now and then
    shot(page, "05-traffic-tap-view", view.locator(".jp-OutputArea").first)

    waterfall = page.locator(".jp-CodeCell", has_text="tap.trace(slowest").first
    waterfall.locator(".jp-RenderedHTMLCommon svg").first.wait_for()
    assert "shopper → orders.place_order" in waterfall.locator(".jp-OutputArea").inner_text()
    shot(page, "05-traffic-waterfall", waterfall.locator(".jp-RenderedHTMLCommon svg").first)
    assert_no_stderr(page)


# --- a hostile peer's markup stays text -------------------------------------------------------

HOSTILE_CELLS = [
    """%load_ext nuropb_lab
%nuropb connect
import time
import nuropb_lab

lab = nuropb_lab.get_lab()
tap = lab.tap()
tail = lab.tail("hostile.#")""",
    """# wait for the peer
deadline = time.monotonic() + 60
while not (any(row[3] == SERVICE for row in tap.snapshot()) and tail.received):
    if time.monotonic() > deadline:
        raise TimeoutError("the peer's traffic was not seen within 60 s")
    time.sleep(0.1)""",
    """# the tap view
view = tap.widget(rows=12)
view.filter.value = "pwned"
view.draw()
view""",
    """# the tail view
tail.widget()""",
    """# the tail's HTML
tail""",
    """# a trace's HTML
tap.trace(TRACE)""",
    """tap.stop()
tail.stop()
print("stopped")""",
]


def test_a_peers_markup_stays_text_in_the_page(
    jupyterlab: str, jupyter_base: Path, demo_url: str, sync_playwright: Any, tmp_path: Path
) -> None:
    """A peer of aio-pika alone (hostile_peer.py) on the kernel's mesh: its service, method,
    caller, trace id, topic and message kind are markup that, run, sets
    ``window.__nuropb_pwned``. The live tap view (and the graph beside it), the tail view, a
    tail's and a trace's HTML show it as text, and the flag stays unset, while the same markup
    put into the page as HTML sets a flag of its own (so it would have run)."""
    import nbformat
    from hostile_peer import SERVICE, TRACE, HostilePeer

    cells = [nbformat.v4.new_code_cell(f"SERVICE, TRACE = {SERVICE!r}, {TRACE!r}")]
    cells += [nbformat.v4.new_code_cell(source) for source in HOSTILE_CELLS]
    kernel = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernel})
    nbformat.write(notebook, jupyter_base / "notebooks" / "hostile.ipynb")
    url = jupyterlab.replace(
        "/lab/tree/02-browse-and-call.ipynb?", "/lab/workspaces/hostile/tree/hostile.ipynb?reset&"
    )
    stop = threading.Event()
    with HostilePeer(demo_url) as peer:

        def keep_sending() -> None:  # until the notebook has seen it
            while not stop.is_set():
                peer.send_traffic()
                stop.wait(0.5)

        sender = threading.Thread(target=keep_sending, daemon=True)
        sender.start()
        try:
            with chromium_page(sync_playwright, tmp_path, "hostile") as page:
                drive_hostile(page, url)
        finally:
            stop.set()
            sender.join(10)


def drive_hostile(page: Any, url: str) -> None:
    from hostile_peer import CALLER, METHOD, SERVICE, TOPIC, TRACE

    page.goto(url)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
    run_all_cells(page)

    view = page.locator(".jp-CodeCell", has_text="# the tap view").first
    table = view.locator(".widget-html table").first
    table.locator("tr").nth(1).wait_for()
    assert_not_run(page, "__nuropb_control_1")  # the tap view's markup, before the rest
    lines = table.inner_text().splitlines()
    assert lines[0].split("\t")[:3] == ["time", "kind", "message"], lines[0]
    kinds = {line.split("\t")[1] for line in lines[1:]}
    assert "unknown" in kinds and kinds <= {"request", "response", "event", "unknown"}, lines
    assert any(f"{CALLER} → {SERVICE}.{METHOD}" in line for line in lines), lines
    assert any(TRACE in line for line in lines), lines

    page.locator(".jp-CodeCell").last.get_by_text("stopped", exact=True).wait_for()
    assert_no_stderr(page)
    # the graph is redrawn (a new <svg>) while traffic comes: wait for one naming the service
    page.wait_for_function(
        """([cell, name]) => [...cell.querySelectorAll('.widget-html svg text')]
            .some((text) => text.textContent.trim() === name)""",
        arg=[view.element_handle(), SERVICE],
        timeout=30_000,
    )
    shot(page, "hostile-tap-view", view.locator(".jp-OutputArea").first)

    tail_view = page.locator(".jp-CodeCell", has_text="# the tail view").first
    tail_table = tail_view.locator(".widget-html table").first
    tail_table.locator("tr").nth(1).wait_for()
    assert TOPIC in tail_table.inner_text()
    shot(page, "hostile-tail-view", tail_view.locator(".jp-OutputArea").first)

    # an HTML output (JupyterLab typesets math in those): shown as it is, "$\foo$" too
    tail_html = page.locator(".jp-CodeCell", has_text="# the tail's HTML").first
    rendered = tail_html.locator(".jp-RenderedHTMLCommon").first
    rendered.wait_for()
    assert TOPIC in rendered.inner_text()
    shot(page, "hostile-tail-html", rendered)

    trace = page.locator(".jp-CodeCell", has_text="# a trace's HTML").first
    waterfall = trace.locator(".jp-RenderedHTMLCommon svg").first
    waterfall.wait_for()
    assert any(SERVICE in t for t in waterfall.locator("text").all_text_contents())
    assert f"{CALLER} → {SERVICE}.{METHOD}" in trace.locator(".jp-OutputArea").inner_text()
    shot(page, "hostile-trace", trace.locator(".jp-OutputArea").first)
    assert_not_run(page, "__nuropb_control_2")


def assert_not_run(page: Any, control: str) -> None:
    """The peer's markup shown so far did not run: the same markup put into the page as HTML
    now runs (sets ``control``), and by then the peer's flag is still unset."""
    from hostile_peer import IMG

    page.evaluate(
        """(markup) => {
            const box = document.createElement("div");
            box.innerHTML = markup;
            document.body.appendChild(box);
        }""",
        IMG.replace("__nuropb_pwned", control),
    )
    page.wait_for_function(f"() => window.{control} === 1")
    assert page.evaluate("() => window.__nuropb_pwned") is None
