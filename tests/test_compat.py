"""Code written for nuropb 0.1.8 runs unchanged with ``nuropb_lab.RMQAPI``.

``peers/nuropb_code.py`` runs in a virtualenv holding ``nuropb==0.1.8`` and the lab side by
side (the ``compat_python`` fixture; scripts/test makes it), on a mesh nuropb's own
``configure_mesh`` set up. It serves an object written for nuropb (nuropb's decorators, its
``NuropbSuccess`` and ``NuropbCallAgain``) and calls it, catching nuropb's own classes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import nuropb_made_mesh

from nuropb_lab.mesh import ManagementAPI

PEERS = Path(__file__).parent / "peers"


@pytest.fixture(scope="module")
def outcome(
    compat_python: Path, nuropb_python: Path, management: ManagementAPI
) -> Iterator[dict[str, Any]]:
    for url in nuropb_made_mesh(nuropb_python, management, "compat", "configure_mesh"):
        done = subprocess.run(
            [str(compat_python), str(PEERS / "nuropb_code.py"), url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        result: dict[str, Any] = json.loads(done.stdout)
        result["url"] = url
        yield result


def test_nuropbs_exception_classes_catch_the_labs(outcome: dict[str, Any]) -> None:
    # a missing service: nuropb raises a NuropbMessageError, and so does the lab, while
    # being the NuropbNotDeliveredError it is
    assert outcome["missing"]["raised"] == "NuropbNotDeliveredError"
    assert {"NuropbMessageError", "NuropbNotDeliveredError"} <= set(outcome["missing"]["caught_by"])
    assert outcome["unknown_method"]["raised"] == "NuropbHandlingError"
    assert "NuropbMessageError" in outcome["unknown_method"]["caught_by"]
    assert outcome["invalid"]["caught_by"] == [
        "NuropbException",
        "NuropbMessageError",
        "NuropbValidationError",
    ]
    assert outcome["timeout"]["caught_by"] == ["NuropbException", "NuropbTimeoutError"]
    # a deliberate difference: connect() raises (nuropb logs and returns disconnected)
    assert outcome["bad_url"]["raised"] == "MeshNotFound"
    assert "NuropbTransportError" in outcome["bad_url"]["caught_by"]
    assert outcome["whoami"] == {"result": "ann"}
    assert outcome["whoami_bad"]["raised"] == "NuropbAuthorizationError"
    assert "NuropbAuthorizationError" in outcome["whoami_bad"]["caught_by"]


def test_a_served_object_raises_nuropbs_success_and_call_again(outcome: dict[str, Any]) -> None:
    assert outcome["stock"] == {"result": 3}
    # NuropbSuccess: answered with its result (to the lab's client and to nuropb's own),
    # and its events published
    assert outcome["reserve"] == {"result": {"sku": "B", "reserved": True}}
    assert outcome["nuropb_reserve"] == {"result": {"sku": "C", "reserved": True}}
    # NuropbCallAgain: requeued once, answered on the second delivery; never a third
    assert outcome["flaky"] == {"result": 2} and outcome["attempts"] == {"k": 2}
    assert outcome["always_again"]["raised"] == "NuropbCallAgainReject"
    # nuropb's @nuropb_context with ctx.add_event
    assert outcome["ship"] == {"result": "shipped o1"}
    assert sorted(outcome["events"], key=json.dumps) == [
        {"topic": "compat.reserved", "event": {"sku": "B"}},
        {"topic": "compat.reserved", "event": {"sku": "C"}},
        {"topic": "compat.shipped", "event": {"order": "o1"}},
    ]
    ship = outcome["describe"]["methods"]["ship"]
    assert ship["description"] == "Ship an order, telling the mesh"
    assert [p[0] for p in ship["parameters"]["properties"]] == ["order"]


def test_the_transport_offers_what_nuropb_code_reads(outcome: dict[str, Any]) -> None:
    configuration = outcome["rmq_configuration"]
    assert set(configuration) == {
        "rpc_exchange",
        "events_exchange",
        "dl_exchange",
        "dl_queue",
        "service_queue",
        "response_queue",
        "rpc_bindings",
        "event_bindings",
        "default_ttl",
        "client_only",
    }
    assert configuration["service_queue"] == "nuropb-compat-inventory-sq"
    assert configuration["rpc_bindings"] == ["compat-inventory"]
    assert configuration["event_bindings"] == ["compat.#"]
    assert configuration["client_only"] is False and configuration["default_ttl"] == 3_600_000
    assert configuration["response_queue"].startswith("nuropb-compat-inventory-")
    assert outcome["client_configuration"]["client_only"] is True
    assert outcome["transport"] == {
        "amqp_url_is_given": True,
        "service_name": "compat-inventory",
        "instance_id_is_api_s": True,
        "connected": True,
        "is_leader": True,
        "response_queue": configuration["response_queue"],
        "rpc_exchange": "nuropb-rpc-exchange",
        "events_exchange": "nuropb-events-exchange",
    }
    assert outcome["api"] == {
        "service_name": "compat-inventory",
        "client_only": [False, True],
        "connected": True,
        "is_leader": True,
    }
