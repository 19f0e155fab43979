"""``nuropb_describe`` generated from an object, in nuropb's schema."""

from __future__ import annotations

from typing import Any

import nuropb_lab as nl
from nuropb_lab.mesh import crypto
from nuropb_lab.mesh.describe import describe_object


class Orders:
    """Orders and stock."""

    _service_name = "orders"
    _version = "2.1"

    def place(self, sku: str, qty: int = 1, note: str | None = None) -> dict[str, Any]:
        """Place an order."""
        return {}

    async def untyped(self, a, b=3):  # type: ignore[no-untyped-def]
        return a

    @nl.nuropb_context
    @nl.publish_to_mesh(description="Who am I", authorize_func=lambda token: {"sub": token})
    def whoami(self, ctx: Any, verbose: bool = False) -> str:
        return ""

    @nl.publish_to_mesh(requires_encryption=True)
    def secret(self, payload: dict[str, Any], tags: list[str]) -> None:
        pass

    @nl.publish_to_mesh(hide_method=True)
    def hidden(self) -> None:
        pass

    def _private(self) -> None:
        pass

    def _handle_event_(self, topic: str, event: Any, target: Any, context: Any) -> None:
        pass


def test_schema_matches_nuropb() -> None:
    key = crypto.new_private_key()
    info = describe_object(Orders(), "ignored", crypto.public_pem(key))
    assert info["service_name"] == "orders"
    assert info["service_version"] == "2.1"
    assert info["description"] == "Orders and stock."
    assert info["warnings"] == []
    assert info["encrypted_methods"] is True
    assert info["public_key"] == crypto.public_pem(key)
    assert sorted(info["methods"]) == ["place", "secret", "untyped", "whoami"]
    place = info["methods"]["place"]
    assert place == {
        "description": "Place an order.",
        "requires_encryption": False,
        "parameters": {
            "type": "object",
            "properties": [
                ["sku", {"type": "str", "description": "", "default": ""}],
                ["qty", {"type": "int", "description": "", "default": 1}],
                ["note", {"type": "str", "description": "", "default": None}],
            ],
            "required": ["sku"],
        },
        "returns": {"type": "dict"},  # beyond nuropb's schema (lab.check reads it)
    }


def test_context_parameter_hidden_and_description_override() -> None:
    whoami = describe_object(Orders(), "orders")["methods"]["whoami"]
    assert whoami["description"] == "Who am I"
    assert whoami["parameters"]["properties"] == [
        ["verbose", {"type": "bool", "description": "", "default": False}]
    ]
    assert whoami["parameters"]["required"] == []


def test_untyped_and_generic_parameters() -> None:
    methods = describe_object(Orders(), "orders")["methods"]
    assert methods["untyped"]["parameters"]["properties"] == [
        ["a", {"type": "", "description": "", "default": ""}],
        ["b", {"type": "", "description": "", "default": 3}],
    ]
    secret = methods["secret"]
    assert secret["requires_encryption"] is True
    assert [p[1]["type"] for p in secret["parameters"]["properties"]] == ["dict", "list"]


def test_return_types_beyond_nuropbs_schema() -> None:
    class Typed:
        def maybe(self) -> int | None:
            return None

        def many(self) -> list[str]:
            return []

        def untyped(self):  # type: ignore[no-untyped-def]
            return 1

    methods = describe_object(Typed(), "typed")["methods"]
    assert methods["maybe"]["returns"] == {"type": "int | None"}  # None kept: it may return it
    assert methods["many"]["returns"] == {"type": "list"}
    assert "returns" not in methods["untyped"]  # described exactly as nuropb would
    assert describe_object(Orders(), "orders")["methods"]["whoami"]["returns"] == {"type": "str"}


def test_encrypted_methods_without_a_key_warn() -> None:
    info = describe_object(Orders(), "orders", None)
    assert info["public_key"] is None
    assert info["warnings"] == ["Service has encrypted methods but no private key has been set."]


def test_plain_object_without_name_or_docs() -> None:
    class Bare:
        def ping(self) -> str:
            return "pong"

    info = describe_object(Bare(), "bare")
    assert info["service_name"] == "bare"
    assert info["service_version"] is None
    assert info["description"] is None
    assert info["encrypted_methods"] is False and info["public_key"] is None
    assert info["methods"]["ping"]["description"] is None
