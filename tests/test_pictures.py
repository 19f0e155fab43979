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


def test_the_labels_of_a_fan_out_cover_no_node_and_no_other_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller of five services and a service with three topics: edges that share a node."""
    services = ["orders", "inventory", "vault", "sensors", "rooms"]
    nodes: list[dict[str, Any]] = [{"name": "shopper", "kind": "client", "column": 0, "row": 0}]
    nodes += [
        {"name": name, "kind": "service", "column": 1, "row": i} for i, name in enumerate(services)
    ]
    topics = ["sensors.door.*", "sensors.humidity.*", "sensors.temperature.*"]
    nodes += [{"name": t, "kind": "topic", "column": 2, "row": i} for i, t in enumerate(topics)]
    edges = [
        {"source": "shopper", "target": s, "kind": "call", "per_s": 1.0, "errors": 0,
         "error_pct": 0.0, "p50_ms": 2.5}
        for s in services
    ] + [
        {"source": "sensors", "target": t, "kind": "event", "per_s": 5.0}
        for t in topics
    ]  # fmt: skip
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
    for label, node in itertools.product(placed, node_boxes):
        assert not overlap(label, node), (label, node)
