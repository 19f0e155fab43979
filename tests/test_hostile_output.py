"""A hostile peer can do nothing to the notebook through what the lab shows: every view, every
``_repr_html_`` and every picture keeps the peer's markup as text.

The peer (hostile_peer.py) is aio-pika and cryptography alone, on a real broker: a service
whose names, descriptions, results and errors are markup, calls with a markup caller, trace id
and context, a request whose kind header is markup, an event on a markup topic, a dead letter.
Each HTML is parsed as a browser would: no ``<img>`` or ``<script>`` element and no ``on...``
attribute may come of it, and the peer's text must be there, as text (so a view that dropped
it would fail too). Pictures are SVG parsed as XML: SVG elements only, the names as text.
"""

from __future__ import annotations

import contextlib
import html
import html.parser
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import TypeVar

import pandas as pd
import pytest
from hostile_peer import (
    ATTR,
    CALLER,
    IMG,
    KIND,
    METHOD,
    PARAM,
    SECRET,
    SERVICE,
    TOPIC,
    TRACE,
    HostilePeer,
    hostile,
    shown,
)
from support import LabSetup, wait_for

from nuropb_lab.lab import Lab, ProgressRun
from nuropb_lab.lab.tap import Tap
from nuropb_lab.lab.tap.pictures import draw_graph, draw_waterfall
from nuropb_lab.lab.tap.tables import trace_spans
from nuropb_lab.widgets import (
    BenchView,
    CallForm,
    ConnectionStatus,
    GraphView,
    KeysView,
    ServiceBrowser,
    TailView,
    TapView,
)

T = TypeVar("T")
KINDS = {"request", "response", "command", "event", "unknown"}
SVG = "{http://www.w3.org/2000/svg}"
# matplotlib's metadata: RDF with Dublin Core and Creative Commons terms
METADATA = (
    "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}",
    "{http://purl.org/dc/elements/1.1/}",
    "{http://creativecommons.org/ns#}",
)


class Parsed(html.parser.HTMLParser):
    """What a browser would make of an HTML string: its elements, attributes and text."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes += [(tag, name, value) for name, value in attrs]

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert(markup: str, *texts: str) -> None:
    """``markup`` makes no element or handler of the peer's, and shows each of ``texts``."""
    parsed = Parsed(markup)
    assert not parsed.tags & {"img", "script", "iframe", "object", "embed", "foreignobject"}, (
        parsed.tags,
        markup[:2000],
    )
    handlers = [a for a in parsed.attributes if a[1].startswith("on")]
    assert not handlers, handlers
    text = "".join(parsed.text)
    missing = [t for t in texts if t not in text]
    assert not missing, (missing, text[:3000])


def assert_output(markup: str, *texts: str) -> None:
    """A notebook output (``_repr_html_``) of the lab's: inert, and in a block that math
    typesetting skips (JupyterLab typesets HTML outputs: ``$...$`` would not show as it is)."""
    assert_inert(markup, *texts)
    assert Parsed(markup).attributes[0] == ("div", "class", "tex2jax_ignore mathjax_ignore")


def svg_texts(svg: str) -> list[str]:
    """The texts of an SVG picture, once it is checked to hold SVG elements (and matplotlib's
    metadata) only."""
    root = ET.fromstring(svg)
    for element in root.iter():
        assert isinstance(element.tag, str) and element.tag.startswith((SVG, *METADATA)), element
        assert element.tag not in (f"{SVG}script", f"{SVG}foreignObject"), element.tag
        assert not [a for a in element.attrib if a.lower().startswith("on")], element.attrib
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


# --- the mesh and the peer ----------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_setup() -> LabSetup:
    return LabSetup(alias="h", settings={"timeout": 10, "describe_timeout": 5})


@pytest.fixture(scope="module")
def peer(mesh_url: str) -> Iterator[HostilePeer]:
    with HostilePeer(mesh_url) as peer:
        yield peer


@pytest.fixture(scope="module")
def tap(lab: Lab, peer: HostilePeer) -> Iterator[Tap]:
    """A tap (on the firehose) that saw the peer's traffic and the lab's calls of it."""
    tap = lab.tap()
    try:
        assert tap.mode == "firehose"
        peer.send_traffic()
        lab.call(f"{SERVICE}.text")
        with pytest.raises(Exception, match="failure"):
            lab.call(f"{SERVICE}.fail")

        def seen() -> bool:
            df = tap.df
            return (
                len(df[df["trace_id"] == TRACE]) >= 5  # 2 requests, a response, an event
                and len(df[df["error"].notna()]) >= 1
            )

        wait_for(seen, timeout=20, what="the peer's traffic in the tap")
        yield tap
    finally:
        tap.stop()


# --- the wire tap ---------------------------------------------------------------------------


def test_the_message_kind_is_one_of_the_known_ones(tap: Tap) -> None:
    """The kind comes from the peer's ``nuropb_type`` header: it is mapped to the known kinds
    where it is captured, so no view, table or file ever holds the raw header."""
    df = tap.df
    assert set(df["kind"]) <= KINDS, set(df["kind"])
    unknown = df[df["kind"] == "unknown"]
    assert SERVICE in set(unknown["service"])  # the request (and the dead letter, to "")
    assert not df.isin([KIND]).any().any()


def test_the_tap_view_and_its_graph_stay_text(tap: Tap) -> None:
    view = TapView(tap, rows=50)
    try:
        view.draw()
        assert_inert(
            view.table.value,
            "unknown",
            f"{CALLER} → {SERVICE}.{METHOD}",
            TRACE,
            shown("key"),  # the params, as JSON
            shown("Error"),  # the error
        )
        assert shown("kind") not in Parsed(view.table.value).text
        assert_inert(view.status.value)
        view.graph.draw()
        assert "<svg" in view.graph.picture.value, "the graph was not drawn"
        assert_inert(view.graph.picture.value, CALLER, SERVICE)
        assert_inert(view.graph.caption.value, "service graph")
        graph = GraphView(tap, interval=60)
        try:
            assert_inert(graph.picture.value, CALLER, SERVICE)
        finally:
            graph.close()
    finally:
        view.close()


def test_the_taps_tables_graph_and_waterfall_stay_text(tap: Tap) -> None:
    assert_output(tap._repr_html_(), shown("svc"))
    for by in ("edge", "method", "call"):
        assert_inert(tap.stats(by=by, window=None)._repr_html_(), shown("svc"))
    assert_inert(tap.traces()._repr_html_(), shown("trace"))
    graph = tap.graph(window=None)
    texts = svg_texts(graph.svg)
    assert CALLER in texts and SERVICE in texts, texts  # literally: no math text
    trace = tap.trace(TRACE)
    assert len(trace.df) >= 2
    assert any(f"{CALLER} → {SERVICE}.{METHOD}" in t for t in svg_texts(trace.picture.svg))
    assert_output(trace._repr_html_(), shown("caller"), shown("svc"))
    assert_inert(tap.calls._repr_html_(), shown("svc"))


def test_names_reach_pictures_literally() -> None:
    """Math text (``$...$``), an odd ``$`` and backslashes draw as they are, in the graph and
    the waterfall alike."""
    names = [SERVICE, TOPIC, r"a\b $c", "$x^2$", "$$", "$\\$"]
    nodes = [{"name": n, "kind": "service", "column": 0, "row": i} for i, n in enumerate(names)]
    edges = [{"source": names[0], "target": names[1], "kind": "call", "per_s": 1.0,
              "errors": 0, "error_pct": 0.0, "p50_ms": 2.0}]  # fmt: skip
    texts = svg_texts(draw_graph({"nodes": nodes, "edges": edges}).svg)
    assert set(names) <= set(texts), texts
    span = {"start_ms": 0.0, "depth": 0, "kind": "request", "caller": CALLER, "method": "$m$",
            "topic": None, "latency_ms": 3.0, "queued_ms": 1.0, "ok": False,
            "error": hostile("e"), "parent": None, "time": pd.Timestamp.now(tz="UTC")}  # fmt: skip
    spans = pd.DataFrame(
        [{**span, "service": n, "correlation_id": str(i)} for i, n in enumerate(names)]
    )
    texts = svg_texts(draw_waterfall(TRACE, trace_spans(spans)).svg)
    for name in names:
        assert any(f"{CALLER} → {name}.$m$" in t for t in texts), (name, texts)
    assert any(TRACE in t for t in texts), texts


# --- tails --------------------------------------------------------------------------------


def test_the_tail_view_and_tail_stay_text(lab: Lab, peer: HostilePeer) -> None:
    tail = lab.tail("hostile.#")
    view = TailView(tail, rows=10)
    try:
        peer.send_traffic()
        wait_for(lambda: tail.received >= 1, what="the peer's event")
        view.draw()
        assert_inert(view.table.value, TOPIC, shown("key"), TRACE)
        assert_inert(view.status.value, TOPIC)
        assert_output(tail._repr_html_(), TOPIC, shown("key"))
        assert_inert(tail.df._repr_html_(), shown("hostile.t"))
        assert_inert(tail.rates()._repr_html_(), shown("hostile.t"))
    finally:
        view.close()
        tail.stop()


# --- services, calls, keys ------------------------------------------------------------------


def test_the_service_browser_and_call_form_stay_text(lab: Lab, peer: HostilePeer) -> None:
    browser = ServiceBrowser(lab, refresh_interval=60)
    try:
        wait_for(lambda: SERVICE in browser.infos, timeout=20, what="the peer's service")
        form = browser.select(SERVICE, METHOD)
        assert isinstance(form, CallForm)
        assert_inert(browser.detail.value, SERVICE, hostile("about"), hostile("v"))
        assert_inert(browser.summary.value, "1 services")
        title = form.children[0].value
        assert_inert(title, f"{SERVICE}.{METHOD}", hostile("does"))
        assert {i.name for i in form.inputs} == {PARAM, "n"}
        form.call_button.click()
        form.pending.result(10)  # type: ignore[union-attr]
        wait_for(lambda: "<table" in form.result.value, what="the result table")
        assert_inert(form.result.value, hostile("column"), hostile("cell"))
        text = browser.select(SERVICE, "text")
        assert text is not None
        text.call_button.click()
        wait_for(lambda: "result" in text.result.value, what="the text")
        assert_inert(text.result.value, shown("result"))
        fail = browser.select(SERVICE, "fail")
        assert fail is not None
        fail.call_button.click()
        wait_for(lambda: fail.last_error is not None, what="the error")
        wait_for(lambda: "failure" in fail.result.value, what="the error line")
        assert_inert(fail.result.value, hostile("failure"))
    finally:
        browser.close()
    assert_inert(lab.services()._repr_html_(), shown("svc"), shown("v"))
    assert_inert(lab.describe(SERVICE)._repr_html_(), shown("param"))
    assert_inert(lab.history()._repr_html_(), shown("svc"), shown("failure"))


def test_the_keys_view_stays_text(lab: Lab, peer: HostilePeer) -> None:
    view = KeysView(lab, service=SERVICE)
    view.pending.result(10)  # type: ignore[union-attr]
    wait_for(lambda: view.rows, what="the key row")
    assert_inert(view.table.value, SERVICE, SECRET, hostile("warning"))
    assert_inert(lab.keys(SERVICE)._repr_html_(), shown("svc"), shown("secret"))


@contextlib.contextmanager
def finished_in_its_view(run: ProgressRun[T]) -> Iterator[tuple[T, BenchView]]:
    """A run (a bench, a check) waited for, with its progress view redrawn at its end."""
    view = run.widget()
    assert isinstance(view, BenchView)
    try:
        result = run.wait(timeout=60)
        wait_for(lambda: "done" in view.status.value, what="the final redraw")
        yield result, view
    finally:
        view.close()


def test_the_bench_view_and_results_stay_text(lab: Lab, peer: HostilePeer) -> None:
    run = lab.start_bench(f"{SERVICE}.fail", n=5, concurrency=1)
    with finished_in_its_view(run) as (result, view):
        assert_inert(view.status.value, "5 errors")
        assert result.summary()["errors"] == 5
        assert_output(result._repr_html_(), shown("svc"), shown("Error"))
        svg_texts(result.plot().svg)
    capacity = lab.capacity(f"{SERVICE}.text", concurrency=[1, 2], n=4)
    assert_output(capacity._repr_html_(), shown("svc"))
    svg_texts(capacity.plot().svg)
    assert_inert(lab.benches()._repr_html_(), shown("svc"))


def test_a_checks_findings_and_its_view_stay_text(lab: Lab, peer: HostilePeer) -> None:
    run = lab.start_check(SERVICE, methods=["fail", METHOD], max_examples=5, seed=1)
    with finished_in_its_view(run) as (result, view):
        assert_inert(view.status.value, "findings")
    found = {(row.method, row.check) for row in result.findings.itertuples()}
    assert {("fail", "server_error"), (METHOD, "accepted_invalid")} <= found
    assert_output(result._repr_html_(), shown("svc"), shown("Error"), shown("method"))
    assert_inert(result.summary().to_html(), shown("method"))


# --- dead letters, status -------------------------------------------------------------------


def test_dead_letters_stay_text(lab: Lab, peer: HostilePeer) -> None:
    peer.send_traffic()

    frames: list[pd.DataFrame] = []

    def dead() -> bool:
        frames.append(lab.dead_letters(limit=100))
        return bool((frames[-1]["reason"] == hostile("reason")).any())

    wait_for(dead, what="the peer's dead letter")
    frame = frames[-1]
    assert_inert(frame._repr_html_(), shown("reason"), shown("kind"), shown("trace"))


def test_the_connection_status_stays_text(lab: Lab, mesh_url: str) -> None:
    """The status line shows no text of a peer's: the alias, URL, node and served names are
    the user's and the broker's. Markup in an alias stays text all the same."""
    alias = hostile("alias")
    lab.connect(mesh_url, alias=alias)
    status = ConnectionStatus(lab, interval=60)
    try:
        assert_inert(status.value, alias, "● connected")
        assert_inert(lab.status()._repr_html_(), shown("alias"))
    finally:
        status.close()
        lab.disconnect(alias)


def test_markup_escapes_text_and_attributes() -> None:
    """lab/markup.py: values are escaped in element text and attribute values alike; Markup
    built there passes once, as it is; a DataFrame's cells and headers are escaped whatever the
    options say."""
    from nuropb_lab.lab.markup import Markup, frame, join, output, tag

    cell = tag("td", SERVICE, title=ATTR, style=None)
    assert_inert(cell, SERVICE)
    assert Parsed(cell).attributes == [("td", "title", ATTR)]
    assert isinstance(cell, Markup) and tag("tr", cell).count("<td") == 1  # not escaped again
    assert_inert(join([tag("b", KIND), TRACE], " · "), KIND, TRACE)
    table = pd.DataFrame([{PARAM: SECRET}])
    assert_inert(frame(table, escape=False), PARAM, SECRET)
    assert_output(output(frame(table)), PARAM)


def test_helpers_see_markup() -> None:
    """The checks above would see the peer's markup: unescaped, it is an element and a
    handler; escaped, it is text."""
    with pytest.raises(AssertionError):
        assert_inert(f"<td>{IMG}</td>")
    with pytest.raises(AssertionError):
        assert_inert(f"<td title='{hostile('x')}'>x</td>")
    assert_inert(f"<td>{html.escape(IMG)}</td>", IMG)
    with pytest.raises(AssertionError):
        svg_texts('<svg xmlns="http://www.w3.org/2000/svg"><text onload="x">t</text></svg>')
