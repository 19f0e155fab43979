"""A least-privilege notebook user on a mesh that nuropb 0.1.8's own helpers set up.

nuropb's docs advise that clients hold no configure permission beyond their own queues. Such
a user (``configure '^nuropb-.*-rq$'``, write and read ``.*``, no management tag) calls,
commands, publishes, describes, sees keys and history through the Lab; a tail, which needs a
queue of its own, is refused in one line that says what to grant, and works once granted
``^nuropb-.*-(rq|tq)$``. Services run as an administrator, as operators run them; the user
changes nothing of the mesh.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from support import BASE_URL, mesh_objects, nuropb_made_mesh, peer_process, wait_for

import nuropb_lab as nl
from nuropb_lab.lab import Lab
from nuropb_lab.magics import NuropbMagics
from nuropb_lab.mesh import ManagementAPI
from nuropb_lab.mesh.events import TAIL_QUEUE_PATTERN

RQ_ONLY = "^nuropb-.*-rq$"


class Orders:
    """Orders, served by the operator."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.events: list[tuple[str, Any]] = []

    def place(self, sku: str, qty: int = 1) -> dict[str, Any]:
        return {"sku": sku, "qty": qty}

    @nl.publish_to_mesh(requires_encryption=True)
    def secret(self, text: str) -> str:
        return text[::-1]

    def note(self, text: str) -> None:
        self.commands.append(text)

    def _handle_event_(self, topic: str, event: Any, target: Any, context: Any) -> None:
        self.events.append((topic, event))


@pytest.fixture(scope="module")
def mesh(nuropb_python: Path, management: ManagementAPI) -> Iterator[str]:
    yield from nuropb_made_mesh(nuropb_python, management, "leastpriv", "configure_mesh")


@pytest.fixture(scope="module")
def operator(mesh: str, nuropb_python: Path) -> Iterator[tuple[Orders, str]]:
    """The lab service ``orders`` and a nuropb 0.1.8 service, run as the administrator."""
    orders = Orders()
    admin = Lab(timeout=10)
    admin.connect(mesh)
    admin.serve(orders, name="orders", settings={"event_bindings": ["lp.#"]})
    ref = f"ref-{uuid.uuid4().hex[:6]}"
    try:
        with peer_process(nuropb_python, "nuropb_service.py", mesh, ref):
            yield orders, ref
    finally:
        admin.close()


@pytest.fixture(scope="module")
def user(mesh: str, management: ManagementAPI) -> Iterator[tuple[str, str]]:
    """(url, name) of a user with configure permission on its response queues only."""
    name, password = f"lp-{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}"
    vhost = mesh.rsplit("/", 1)[-1]
    management.call_blocking("PUT", f"users/{name}", {"password": password, "tags": ""})
    grant(management, vhost, name, RQ_ONLY)
    host = BASE_URL.split("@", 1)[1]
    try:
        yield f"amqp://{name}:{password}@{host}/{vhost}", name
    finally:
        management.call_blocking("DELETE", f"users/{name}")


def grant(management: ManagementAPI, vhost: str, name: str, configure: str) -> None:
    management.call_blocking(
        "PUT", f"permissions/{vhost}/{name}", {"configure": configure, "write": ".*", "read": ".*"}
    )


def test_the_user_calls_commands_publishes_and_describes(
    mesh: str, operator: tuple[Orders, str], user: tuple[str, str], management: ManagementAPI
) -> None:
    orders, ref = operator
    vhost = mesh.rsplit("/", 1)[-1]
    before = asyncio.run(mesh_objects(management, vhost))
    lab = Lab(timeout=10)
    try:
        lab.connect(user[0])
        # without the management tag discovery falls back, once, and says so
        services = lab.services(names=["orders", ref])
        assert "401" in services.attrs["notice"]
        assert set(services["service"]) == {"orders", ref}
        assert services.set_index("service").loc["orders", "instances"] == 1
        assert lab.call("orders.place", sku="A1", qty=2) == {"sku": "A1", "qty": 2}
        assert lab.call("orders.secret", text="abc") == "cba"  # encrypted on its own
        assert lab.call(f"{ref}.add", a=2, b=3) == 5
        lab.command("orders.note", text="n1")
        lab.command(f"{ref}.remember", key="k", value="v")
        lab.publish("lp.hello", {"n": 1})
        lab.publish(f"lab.{ref}.hello", {"n": 2})
        wait_for(lambda: orders.commands == ["n1"], what="the command")
        wait_for(lambda: orders.events == [("lp.hello", {"n": 1})], what="the event")
        assert lab.call(f"{ref}.recall", key="k") == "v"
        wait_for(lambda: lab.call(f"{ref}.seen_events"), what="the nuropb service's event")
        described = lab.describe("orders")
        assert set(described["method"]) == {"place", "secret", "note"}
        keys = lab.keys("orders").set_index("service")
        assert keys.loc["orders", "fingerprint"] and keys.loc["orders", "encrypted_methods"]
        history = lab.history()
        assert history["ok"].all() and (history["kind"] == "command").sum() == 2
        assert {"orders.place", "orders.secret", f"{ref}.add"} <= set(
            history["service"] + "." + history["method"]
        )
    finally:
        lab.close()
    # nothing of the mesh changed: same exchanges, queues, flags and bindings
    assert asyncio.run(mesh_objects(management, vhost)) == before


def test_a_tail_is_refused_in_one_line_then_works_once_granted(
    mesh: str, operator: tuple[Orders, str], user: tuple[str, str], management: ManagementAPI
) -> None:
    url, name = user
    vhost = mesh.rsplit("/", 1)[-1]
    lab = Lab(timeout=10)
    try:
        lab.connect(url)
        with pytest.raises(nl.NuropbTransportError) as refused:
            lab.tail("lp.#")
        message = str(refused.value)
        assert f"user {name!r} may not create queue 'nuropb-lab-tail-" in message
        assert f"grant it configure permission on '{TAIL_QUEUE_PATTERN}'" in message
        assert lab.tails == [] and lab.call("orders.place", sku="B") == {"sku": "B", "qty": 1}
        # the magic prints that one line, no traceback
        magics = NuropbMagics(shell=InteractiveShell.instance(), lab=lab)
        with capture_output() as captured:
            assert magics.nuropb("tail lp.#") is None
        lines = captured.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("NuropbTransportError: user ")
        assert TAIL_QUEUE_PATTERN in lines[0] and captured.stdout == ""
        # granted the one pattern the README gives, the same user tails
        grant(management, vhost, name, TAIL_QUEUE_PATTERN)
        tail = lab.tail("lp.#")
        lab.publish("lp.after", {"n": 3})
        wait_for(lambda: len(tail) == 1, what="the tailed event")
        assert tail.df["topic"].tolist() == ["lp.after"]
        tail.stop()
    finally:
        grant(management, vhost, name, RQ_ONLY)
        lab.close()
