"""The dead-letter viewer: what was rejected or expired, and why, read without consuming."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aio_pika
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from support import LabSetup, nuropb_made_mesh, wait_for

import nuropb_lab as nl
from nuropb_lab.lab import Lab
from nuropb_lab.mesh import ManagementAPI


class Picky:
    def accept(self, item: str) -> str:
        if item != "good":
            raise nl.NuropbValidationError(f"{item} is not good")
        return "ok"


def dlq_size(lab: Lab) -> int:
    info = lab.runner.run(lab.connection().api.queue_info("nuropb-dl-queue"), 10)
    assert info is not None
    return info[0]


def wait_size(lab: Lab, size: int) -> None:
    deadline = time.monotonic() + 15
    while dlq_size(lab) != size:
        assert time.monotonic() < deadline, f"the DLQ never held {size} messages"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def lab_setup() -> LabSetup:
    return LabSetup(settings={"timeout": 5}, serve={"picky": Picky()})


def test_rejected_and_expired_messages_with_their_reasons(lab: Lab, mesh_url: str) -> None:
    with pytest.raises(nl.NuropbValidationError):
        lab.call("picky.accept", item="bad", trace_id="trace-dlq")
    failed = lab.history(1).iloc[0]

    async def junk_and_idle() -> None:
        connection = await aio_pika.connect(mesh_url)
        async with connection:
            channel = await connection.channel()
            await channel.default_exchange.publish(
                aio_pika.Message(b"\x00junk"), routing_key="nuropb-picky-sq"
            )
            idle = await channel.declare_queue(
                "nuropb-idle-sq",
                durable=True,
                arguments={"x-dead-letter-exchange": "nuropb-dl-exchange"},
            )
            await idle.bind("nuropb-rpc-exchange", routing_key="idle")

    lab.runner.run(junk_and_idle(), 10)
    with pytest.raises(nl.NuropbTimeoutError):  # nobody consumes: it expires into the DLQ
        lab.runner.run(lab.connection().api.request("idle", "anything", {}, {}, ttl=200), 10)
    wait_size(lab, 3)
    frame = lab.dead_letters()
    assert len(frame) == 3 and dlq_size(lab) == 3  # shown, not consumed
    rows = {row["reason"] + ":" + str(row["service"]): row for row in frame.to_dict("records")}
    rejected = [r for r in frame.to_dict("records") if r["reason"] == "rejected"]
    assert len(rejected) == 2
    accept = next(r for r in rejected if r["method"] == "accept")
    junk = next(r for r in rejected if r is not accept)
    assert (
        accept["correlation_id"] == failed["correlation_id"] and accept["trace_id"] == "trace-dlq"
    )
    assert accept["error"] == "NuropbValidationError: bad is not good"
    assert accept["nuropb_type"] == "request" and accept["queue"] == "nuropb-picky-sq"
    assert "junk" in junk["body"] and pd.isna(junk["method"]) and pd.isna(junk["correlation_id"])
    expired: dict[str, Any] = rows["expired:idle"]
    assert expired["method"] == "anything" and expired["queue"] == "nuropb-idle-sq"
    assert expired["dead_at"] is not None


def test_limit_and_consume(lab: Lab) -> None:
    size = dlq_size(lab)
    assert size >= 1
    assert len(lab.dead_letters(limit=1)) == 1 and dlq_size(lab) == size
    taken = lab.dead_letters(consume=True)
    assert len(taken) == size and dlq_size(lab) == 0
    assert lab.dead_letters().empty
    with pytest.raises(ValueError, match="limit must be at least 1"):
        lab.dead_letters(limit=0)


def test_the_magic_shows_the_dlq(lab: Lab, mesh_url: str) -> None:
    with pytest.raises(nl.NuropbValidationError):
        lab.call("picky.accept", item="worse")
    wait_size(lab, 1)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nuropb_lab")
    shell.run_line_magic("nuropb", f"connect {mesh_url} --alias dlq-test")
    try:
        frame = shell.run_line_magic("nuropb", "dlq --limit 5 --alias dlq-test")
    finally:
        shell.run_line_magic("nuropb", "disconnect dlq-test")
    assert list(frame["method"]) == ["accept"] and dlq_size(lab) == 1


def test_a_mesh_whose_dead_letters_go_to_a_services_own_queue(
    nuropb_python: Path, management: ManagementAPI
) -> None:
    # set up as nuropb's transport does it for itself: the DLQ is nuropb-{service}-dl
    for url in nuropb_made_mesh(
        nuropb_python, management, "dlq", "configure_nuropb_rmq", "nuropb-picky-dl"
    ):
        lab = Lab(timeout=5)
        try:
            lab.connect(url)
            lab.serve(Picky(), name="picky")
            with pytest.raises(nl.NuropbValidationError):
                lab.call("picky.accept", item="bad")
            api = lab.connection().api

            def dead_letters(lab: Lab = lab, api: nl.RMQAPI = api) -> Any:
                return lab.runner.run(api.queue_info("nuropb-picky-dl"), 10)

            wait_for(lambda: dead_letters() == (1, 0), what="the dead letter")
            frame = lab.dead_letters()
            assert frame.attrs["queue"] == "nuropb-picky-dl"
            assert list(frame["method"]) == ["accept"] and list(frame["reason"]) == ["rejected"]
            # no queue of the lab's own was added for dead letters
            assert lab.runner.run(api.queue_info("nuropb-dl-queue"), 10) is None
            with pytest.raises(nl.NuropbHandlingError, match="no dead-letter queue 'nope'"):
                lab.dead_letters(queue="nope")
        finally:
            lab.close()
