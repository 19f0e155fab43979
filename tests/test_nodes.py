"""Several nodes of a cluster: the forms they are given in, the order they are tried in, bad
input, and never showing a password (no broker needed)."""

from __future__ import annotations

import collections
import os
import re
from typing import Any
from unittest import mock

import pytest

import nuropb_lab as nl
from nuropb_lab.lab import Lab, LabError
from nuropb_lab.lab.tap.capture import queue_label
from nuropb_lab.mesh import ManagementAPI, Nodes, Topology
from nuropb_lab.mesh.events import TAIL_QUEUE_PATTERN, tail_queue_name
from nuropb_lab.mesh.nodes import DownQueues, QueueUnavailable, queue_down, split_urls

A = "amqp://alice:s3cr3t-pw@h1:5672/mesh"
B = "amqp://alice:s3cr3t-pw@h2:5673/mesh"
C = "amqp://alice:s3cr3t-pw@h3/mesh"


def hosts(nodes: Nodes) -> list[str]:
    return [f"{t.host}:{t.port}" for t in nodes]


def test_the_forms_of_several_nodes() -> None:
    expected = ["h1:5672", "h2:5673", "h3:5672"]
    assert hosts(Nodes.parse([A, B, C])) == expected
    assert hosts(Nodes.parse(f"{A},{B}, {C}")) == expected  # as $NUROPB_AMQP_URL has them
    spec = {"hosts": ["h1", "h2:5673", {"host": "h3"}], "username": "alice",
            "password": "s3cr3t-pw", "vhost": "mesh"}  # fmt: skip
    assert hosts(Nodes.parse(spec)) == expected
    assert hosts(Nodes.parse({**spec, "host": spec["hosts"], "hosts": None})) == expected
    assert hosts(Nodes.parse([A, {"host": "h2", "port": 5673, "vhost": "mesh"}])) == expected[:2]
    # one URL stays one node, and a comma inside a password does not split it
    single = Nodes.parse("amqp://u:pa,ss@h/mesh")
    assert len(single) == 1 and single.first.password == "pa,ss"
    assert split_urls("http://a:15672, http://b:15672") == ["http://a:15672", "http://b:15672"]
    assert Nodes.parse(Nodes.parse(A)).first.host == "h1"


def test_every_node_is_masked() -> None:
    nodes = Nodes.parse([A, B, C])
    shown = nodes.masked + repr(nodes) + repr(list(nodes))
    assert "s3cr3t" not in shown and shown.count("alice:***@") == 6
    assert nodes.position(nodes.targets[1]) == "node 2 of 3"
    assert Nodes.parse(A).position(Nodes.parse(A).first) == ""
    api = nl.RMQAPI([A, B, C])
    assert "s3cr3t" not in repr(api) and api.nodes is not None and api.target.host == "h1"
    assert api.mesh_name == "mesh" and len(api.transport.nodes) == 3


@pytest.mark.parametrize(
    ("given", "error", "words"),
    [
        ([], ValueError, "empty list"),
        ("", ValueError, "amqp:// or amqps://"),
        ([A, "amqp://alice:s3cr3t-pw@h2/other"], ValueError, "one mesh (vhost)"),
        ([A, "http://alice:s3cr3t-pw@h2/mesh"], ValueError, "node 2 of 2: AMQP URL must start"),
        ([A, "amqp://alice:s3cr3t-pw@h2:port/mesh"], ValueError, "node 2 of 2: invalid AMQP URL"),
        ([A, "amqp://alice:s3cr3t-pw@h2:5672/"], ValueError, "node 2 of 2: AMQP URL has no vhost"),
        ([A, 42], TypeError, "node 2 of 2"),
        ({"hosts": [], "vhost": "m"}, ValueError, "non-empty list"),
        ({"hosts": ["h1:x"], "vhost": "m"}, ValueError, "not a number"),
        (42, TypeError, "must be a str, a dict or a list"),
    ],
)
def test_bad_input_is_one_clear_error(given: Any, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        Nodes.parse(given)
    assert words in str(info.value) and "s3cr3t" not in str(info.value)
    with pytest.raises(error):
        nl.RMQAPI(given)
    lab = Lab()
    try:
        with pytest.raises((error, LabError)) as lab_info:
            lab.connect(given)
        assert words in str(lab_info.value)
    finally:
        lab.close()


def test_failover_order() -> None:
    nodes = Nodes.parse([A, B, C])
    first, second, third = nodes.targets
    assert nodes.order() == [first, second, third]
    assert nodes.order(after=first) == [second, third, first]  # after a loss: the next first
    assert nodes.order(after=third) == [first, second, third]
    shuffled = Nodes.parse([A, B, C], "shuffle")
    firsts = collections.Counter(shuffled.order()[0].host for _ in range(300))
    assert set(firsts) == {"h1", "h2", "h3"}  # each node first now and then
    assert all(shuffled.order(after=second)[-1] == second for _ in range(20))  # lost one last
    with pytest.raises(ValueError, match="failover_strategy must be one of"):
        nl.RMQAPI([A, B], transport_settings={"failover_strategy": "random"})


def test_management_urls_per_node() -> None:
    # each plain-http API on another host is told of once: the password would cross readable
    plain = "is plain http: the password of 'alice' crosses the network readable"
    with pytest.warns(UserWarning, match=plain) as told:
        api = ManagementAPI.for_target(Nodes.parse([A, B, C]))
    assert api.base_urls == ["http://h1:15672", "http://h2:15673", "http://h3:15672"]
    assert sorted(str(w.message).split()[4] for w in told) == api.base_urls
    assert "s3cr3t" not in repr(api) and not any("s3cr3t" in str(w.message) for w in told)
    # an override applies to the nodes on the host it names only (a bare URL: its own host)
    with (
        mock.patch.dict(os.environ, {"NUROPB_MANAGEMENT_URL": "h1=http://m1:1, h1=http://m2:2"}),
        pytest.warns(UserWarning, match=plain),
    ):
        assert ManagementAPI.for_target(Nodes.parse(A)).base_urls == ["http://m1:1", "http://m2:2"]
    with (
        mock.patch.dict(os.environ, {"NUROPB_MANAGEMENT_URL": "http://h2:8080, h3:5672=http://m3"}),
        pytest.warns(UserWarning, match=plain),
    ):
        api = ManagementAPI.for_target(Nodes.parse([A, B, C]))
        assert api.base_urls == ["http://h1:15672", "http://h2:8080", "http://m3"]


async def test_a_queue_whose_node_is_down() -> None:
    text = (
        "NOT_FOUND - home node 'rabbit@c' of durable queue 'nuropb-x-sq' in vhost 'm' is down"
        " or inaccessible"
    )
    down = queue_down(text)
    assert down is not None and down.node == "rabbit@c" and down.queue == "nuropb-x-sq"
    assert "is on node rabbit@c, which is down" in str(down)
    assert queue_down("NOT_FOUND - no queue 'q' in vhost 'm'") is None
    # RabbitMQ 4.3's words name no node
    timed_out = queue_down(
        "NOT_FOUND - failed to perform operation on queue 'nuropb-x-sq' in vhost 'm' due to timeout"
    )
    assert timed_out is not None and timed_out.node is None and timed_out.queue == "nuropb-x-sq"
    assert "queue 'nuropb-x-sq' cannot be reached: its node is down" in str(timed_out)
    asked: list[str] = []

    async def queue_info(queue: str) -> None:
        asked.append(queue)
        raise down

    reasons = DownQueues(queue_info)
    found = [await reasons.reason("nuropb-x-sq") for _ in range(5)]
    assert all(isinstance(r, QueueUnavailable) for r in found) and asked == ["nuropb-x-sq"]


def test_a_queue_still_held_is_renamed_within_its_kind() -> None:
    """RabbitMQ 4.3 keeps a dead node's exclusive queues: an API reconnecting elsewhere takes
    another name, which least-privilege permissions and the tap's caller labels still fit."""
    response = Topology.response_queue("orders", "abc123")
    again = Topology.renamed(response)
    assert again.startswith("nuropb-orders-abc123.") and again.endswith("-rq")
    twice = Topology.renamed(again)
    assert twice != again and twice.count(".") == 1  # one suffix, not one per failover
    tail = Topology.renamed(tail_queue_name("tail"))
    for queue in (again, twice, tail):
        assert re.fullmatch(TAIL_QUEUE_PATTERN, queue)
    assert queue_label(again) == queue_label(twice) == "orders"
    assert queue_label(tail) == "lab tail"
