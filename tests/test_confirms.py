"""Publisher confirms counted by the transport (transport.Confirms), without a broker."""

from __future__ import annotations

import asyncio

import pytest

from nuropb_lab.mesh import NuropbNotDeliveredError, NuropbTransportError
from nuropb_lab.mesh.outbox import Confirms


async def test_multiple_acks_settle_up_to_their_tag_in_order() -> None:
    confirms = Confirms()
    futures = [confirms.expect(f"m{i}") for i in range(1, 8)]  # tags 1..7
    confirms.settle(2, multiple=False, ack=True)
    assert [f.done() for f in futures] == [False, True, False, False, False, False, False]
    confirms.settle(4, multiple=True, ack=True)  # 1, 3, 4 (2 is settled already)
    assert [f.done() for f in futures] == [True, True, True, True, False, False, False]
    confirms.settle(6, multiple=True, ack=False)  # a nack of 5 and 6
    for future in futures[4:6]:
        with pytest.raises(NuropbTransportError, match=r"basic\.nack"):
            future.result()
    confirms.settle(6, multiple=True, ack=True)  # nothing left at or below 6: a no-op
    assert not futures[6].done()
    confirms.settle(7, multiple=False, ack=True)
    assert futures[6].result() is None


async def test_a_returned_message_fails_and_its_ack_changes_nothing() -> None:
    confirms = Confirms()
    first, second = confirms.expect("a"), confirms.expect("b")
    confirms.returned("b", "ghost", "nuropb-rpc-exchange")
    confirms.settle(2, multiple=True, ack=True)
    assert first.result() is None
    with pytest.raises(NuropbNotDeliveredError, match="312 NO_ROUTE"):
        second.result()


async def test_fail_ends_every_wait_and_a_burst_settles_in_one_pass() -> None:
    confirms = Confirms()
    burst = [confirms.expect(f"m{i}") for i in range(20_000)]
    confirms.settle(10_000, multiple=True, ack=True)
    assert sum(f.done() for f in burst) == 10_000
    confirms.fail("lost")
    await asyncio.sleep(0)
    assert all(f.done() for f in burst)
    with pytest.raises(NuropbTransportError, match="lost"):
        burst[-1].result()
    # every failed wait's error read, as a caller would (else asyncio logs each when collected)
    assert all(isinstance(f.exception(), NuropbTransportError) for f in burst[10_000:])
