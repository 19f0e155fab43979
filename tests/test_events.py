"""Event subscriptions (what tails stand on): patterns, bounds, gaps, cleanup."""

from __future__ import annotations

import pytest
from support import close_connections, wait_until

import nuropb_lab as nl
from nuropb_lab.mesh import ManagementAPI, codec
from nuropb_lab.mesh.service import event_body
from nuropb_lab.mesh.serving import message_properties


async def test_patterns_and_event_fields(mesh_url: str) -> None:
    seen: list[nl.MeshEvent] = []
    async with nl.RMQAPI(mesh_url) as api:
        subscription = await api.subscribe(["orders.*", "stock.#"], seen.append)
        await api.publish_event(
            "orders.placed", {"id": 1}, {"user": "u"}, trace_id="t-9", target=["x"]
        )
        await api.publish_event("orders.placed.late", {"id": 2}, {})  # * is one word only
        await api.publish_event("stock.low.a.b", [1, 2], {})
        await api.publish_event("other", 0, {})
        await wait_until(lambda: len(seen) == 2, what="two matching events")
        first = seen[0]
        assert (first.topic, first.event, first.context, first.trace_id, first.target) == (
            "orders.placed",
            {"id": 1},
            {"user": "u"},
            "t-9",
            ["x"],
        )
        assert first.correlation_id and first.received_at > 0
        assert seen[1].topic == "stock.low.a.b"
        assert await api.queue_info(subscription.queue) == (0, 1)
        await api.unsubscribe(subscription)
        assert await api.queue_info(subscription.queue) is None
    assert subscription.received == 2 and not subscription.active


async def test_broker_keeps_only_the_newest_when_the_consumer_is_slow(mesh_url: str) -> None:
    async with nl.RMQAPI(mesh_url) as api:
        subscription = await api.subscribe(["flood"], lambda e: None, max_length=5)
        await api.transport.events.cancel(subscription)  # stop consuming
        # confirmed publishes: each is in the queue (or dropped from its head) before the
        # next, so the count read afterwards on the events connection is final
        for i in range(20):
            await api.transport.publish(
                api.topology.events_exchange,
                "flood",
                codec.encode_json(event_body("flood", i, {}, None, f"c{i}", None)),
                message_properties("event", f"c{i}", None),
                mandatory=True,
            )
        assert await api.queue_info(subscription.queue) == (5, 0)


async def test_undecodable_events_are_counted_not_raised(mesh_url: str) -> None:
    seen: list[nl.MeshEvent] = []
    async with nl.RMQAPI(mesh_url) as api:
        subscription = await api.subscribe(["junk"], seen.append)
        await api.transport.publish(
            api.topology.events_exchange,
            "junk",
            b"not json",
            message_properties("event", "c1", None),
        )
        await api.publish_event("junk", "ok", {})
        await wait_until(lambda: seen, what="the good event")
        assert subscription.undecodable == 1 and [e.event for e in seen] == ["ok"]


async def test_subscription_survives_reconnection_and_records_the_gap(
    fresh_mesh_url: str, management: ManagementAPI
) -> None:
    seen: list[nl.MeshEvent] = []
    async with nl.RMQAPI(fresh_mesh_url) as api:
        subscription = await api.subscribe(["#"], seen.append)
        await close_connections(management, fresh_mesh_url.rsplit("/", 1)[1], expect=1)
        await wait_until(lambda: api.transport.reconnects == 1, timeout=15, what="reconnection")
        assert subscription.active and len(subscription.gaps) == 1
        lost_at, resumed_at = subscription.gaps[0]
        assert resumed_at is not None and resumed_at >= lost_at
        await api.publish_event("after.gap", 1, {})
        await wait_until(lambda: seen, what="an event after the gap")


async def test_subscribe_needs_patterns(mesh_url: str) -> None:
    async with nl.RMQAPI(mesh_url) as api:
        with pytest.raises(ValueError, match="topic patterns"):
            await api.subscribe([], print)
