"""The service graph's labels (lab/tap/pictures.py): each goes where it covers no node and no
other label, moved along its edge when its first spot is taken. No broker needed."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from nuropb_lab.lab.tap import pictures
from nuropb_lab.lab.tap.pictures import Box, place_label

INCH = (0.5, 1.0)  # data units an inch, x and y


def overlap(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_a_label_takes_its_first_free_spot() -> None:
    first = place_label([(1.0, 1.0), (1.0, 2.0)], 2.0, 0.2, INCH, [])
    assert first == pytest.approx((0.5, 0.9, 1.5, 1.1))
    # the same spots again: the first is taken, so the second
    second = place_label([(1.0, 1.0), (1.0, 2.0)], 2.0, 0.2, INCH, [first])
    assert second == pytest.approx((0.5, 1.9, 1.5, 2.1))


def test_where_every_spot_is_taken_the_least_covered_one() -> None:
    taken = [(0.0, 0.0, 2.0, 2.0), (2.9, 2.9, 3.05, 3.05)]
    box = place_label([(1.0, 1.0), (3.0, 3.0)], 0.4, 0.2, INCH, taken)
    assert box == pytest.approx((2.9, 2.9, 3.1, 3.1))


def call(source: str, target: str, per_s: float = 1.0, p50_ms: float = 2.5) -> dict[str, Any]:
    return {"source": source, "target": target, "kind": "call", "per_s": per_s, "errors": 0,
            "error_pct": 0.0, "p50_ms": p50_ms}  # fmt: skip


def event(source: str, target: str, per_s: float = 5.0) -> dict[str, Any]:
    return {"source": source, "target": target, "kind": "event", "per_s": per_s}


def node(name: str, kind: str, column: int, row: int) -> dict[str, Any]:
    return {"name": name, "kind": kind, "column": column, "row": row}


def fan_out() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A caller of five services and a service with three topics: edges that share a node."""
    services = ["orders", "inventory", "vault", "sensors", "rooms"]
    topics = ["sensors.door.*", "sensors.humidity.*", "sensors.temperature.*"]
    nodes = [node("shopper", "client", 0, 0)]
    nodes += [node(name, "service", 1, i) for i, name in enumerate(services)]
    nodes += [node(t, "topic", 2, i) for i, t in enumerate(topics)]
    edges = [call("shopper", s) for s in services] + [event("sensors", t) for t in topics]
    return nodes, edges


def traffic_tour() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The 05-traffic notebook's graph as the browser test once drew it: two callers of the
    same services, edges crossing between the first columns."""
    client = "test-browser-b7dc654b-client"
    topics = ["orders.placed", "sensors.door.*", "sensors.humidity.*", "sensors.temperature.*"]
    nodes = [node("shopper", "client", 0, 0), node(client, "client", 0, 1)]
    nodes += [node(s, "service", 1, i) for i, s in enumerate(["orders", "sensors", "vault"])]
    nodes += [node("inventory", "service", 2, 0), node("lab tail", "subscriber", 4, 0)]
    nodes += [node(t, "topic", 3, i) for i, t in enumerate(topics)]
    edges = [
        call("shopper", "orders", 1.9, 1.9), call("shopper", "sensors", 0.5, 0.5),
        call("shopper", "inventory", 0.2, 0.2), call(client, "orders", 0.2),
        call(client, "sensors", 0.2), call(client, "inventory", 0.2, 3.2),
        call(client, "vault", 0.2), call("orders", "inventory", 1.4, 0.7),
        event("orders", "orders.placed", 1.4), event("orders.placed", "inventory", 1.4),
        event("sensors", "sensors.door.*", 0.5), event("sensors", "sensors.humidity.*", 2.6),
        event("sensors", "sensors.temperature.*", 4.8),
        event("sensors.temperature.*", "lab tail", 4.8),
    ]  # fmt: skip
    return nodes, edges


@pytest.mark.parametrize("graph", [fan_out, traffic_tour])
def test_the_labels_cover_no_node_and_no_other_label(
    monkeypatch: pytest.MonkeyPatch, graph: Any
) -> None:
    nodes, edges = graph()
    placed: list[Box] = []
    node_boxes: list[Box] = []

    def recording(*args: Any) -> Box:
        if not node_boxes:
            node_boxes.extend(args[-1])  # the nodes are taken before any label
        box = place_label(*args)
        placed.append(box)
        return box

    monkeypatch.setattr(pictures, "place_label", recording)
    picture = pictures.draw_graph({"nodes": nodes, "edges": edges})
    assert "<svg" in picture.svg and len(placed) == len(edges) and len(node_boxes) == len(nodes)
    for a, b in itertools.combinations(placed, 2):
        assert not overlap(a, b), (a, b)
    for label, node_box in itertools.product(placed, node_boxes):
        assert not overlap(label, node_box), (label, node_box)


def test_pictures_drawn_at_once_in_two_threads_keep_their_text() -> None:
    """A widget redraws its graph in a worker thread while the kernel draws one: each picture
    keeps its names as text, drawn literally ("$" is not math), whatever the other does."""
    from concurrent.futures import ThreadPoolExecutor

    from nuropb_lab.lab.picture import draw

    name = "svc $\\foo$ <b>"

    def paint(figure: Any) -> None:
        axes = figure.add_subplot()
        for i in range(20):  # a while in savefig, where the race was
            axes.text(0.02 * i, 0.5, name)

    def one(_: int) -> str:
        return draw(paint, width=3, height=2).svg

    import matplotlib

    before = dict(matplotlib.rcParams)
    with ThreadPoolExecutor(4) as pool:
        pictures_drawn = list(pool.map(one, range(32)))
    for svg in pictures_drawn:
        assert svg.count("svc $\\foo$ &lt;b&gt;") == 20, svg[:400]
    assert dict(matplotlib.rcParams) == before  # and the process's settings are as they were
