"""The one parameter validator (lab/params.py), against describe specs, without a broker."""

from __future__ import annotations

from typing import Any

import pytest

from nuropb_lab.lab.params import (
    ParamError,
    check_params,
    param_problems,
    texts_where_described,
    value_fits,
)
from nuropb_lab.mesh.describe import describe_object


class Orders:
    def place(
        self,
        sku: str,
        qty: int = 1,
        express: bool = False,
        weight: float = 1.5,
        tags: list[str] | None = None,
        meta: dict[str, Any] | None = None,
        anything=None,
    ) -> None:
        return None

    def maybe(self, count: "Optional[int]", label: "int | None") -> None:  # noqa: F821, UP037
        return None


DESCRIPTION = describe_object(Orders(), "orders")
PLACE = DESCRIPTION["methods"]["place"]


def test_the_issues_example_and_its_siblings() -> None:
    assert param_problems(PLACE, {"sku": "A", "qty": "notanumber"}) == [
        "qty: expected int, got 'notanumber'"
    ]
    assert param_problems(PLACE, {"qty": 2}) == ["sku: required but missing"]
    assert param_problems(PLACE, {"sku": "A", "colour": "red", "size": 2}) == [
        "no parameters colour, size (it takes sku, qty, express, weight, tags, meta, anything)"
    ]
    # every problem in one line: types first, then unknown names, then missing ones
    assert param_problems(PLACE, {"express": "yes", "zz": 1}) == [
        "express: expected bool, got 'yes'",
        "no parameter zz (it takes sku, qty, express, weight, tags, meta, anything)",
        "sku: required but missing",
    ]


def test_values_that_fit() -> None:
    good: dict[str, Any] = {
        "sku": "A",
        "qty": 3,
        "express": True,
        "weight": 2,  # an int is fine for a float
        "tags": ["a", "b"],
        "meta": {"k": [1]},
        "anything": object(),  # unannotated: anything
    }
    assert param_problems(PLACE, good) == []
    # a parameter with a default takes None
    assert param_problems(PLACE, {"sku": "A", "tags": None, "qty": None}) == []
    for name, value in [("qty", 1.5), ("qty", True), ("weight", "1.0"), ("tags", "a")]:
        assert param_problems(PLACE, {"sku": "A", name: value}), (name, value)
    assert param_problems(PLACE, {"sku": None}) == ["sku: expected str, got None"]


def test_type_names_as_written() -> None:
    maybe = DESCRIPTION["methods"]["maybe"]
    kinds = {name: spec["type"] for name, spec in maybe["parameters"]["properties"]}
    assert kinds == {"count": "Optional[int]", "label": "int | None"}  # kept as written
    assert param_problems(maybe, {"count": None, "label": None}) == []
    assert param_problems(maybe, {"count": 1, "label": "x"}) == [
        "label: expected int | None, got 'x'"
    ]
    assert value_fits("Union[int, str]", "x") and value_fits("typing.Optional[dict]", None)
    assert not value_fits("Union[int, str]", 1.5)
    assert value_fits("Decimal", "1.5") and value_fits("Literal['a']", 3)  # not known: lenient
    assert value_fits("list[int]", [1]) and not value_fits("list[int]", {"a": 1})
    # nuropb 0.1.8 describes list[str] as "str": a list of str passes for str
    assert value_fits("str", ["a", "b"]) and not value_fits("str", [1])


async def test_check_params_refreshes_a_stale_description_before_refusing() -> None:
    stale = {"methods": {"old": PLACE}}
    asked = []

    async def refresh() -> dict[str, Any]:
        asked.append(1)
        return DESCRIPTION

    spec = await check_params(stale, "orders", "place", {"sku": "A"}, refresh=refresh)
    assert spec == PLACE and asked == [1]
    with pytest.raises(
        ParamError, match=r"^orders has no method 'nope' \(methods: maybe, place\)$"
    ):
        await check_params(DESCRIPTION, "orders", "nope", {}, refresh=refresh)
    with pytest.raises(ParamError, match=r"^qty: expected int, got 'x'$"):
        await check_params(DESCRIPTION, "orders", "place", {"sku": "A", "qty": "x"})


def test_bare_texts_go_as_text_only_where_the_type_is_str() -> None:
    params = {"sku": 123, "qty": 2, "express": True, "anything": 5, "weight": None}
    texts = {"sku": "123", "qty": "2", "express": "true", "anything": "5", "weight": "null"}
    assert texts_where_described(PLACE, params, texts) == {
        "sku": "123",  # str: the text as written
        "qty": 2,  # fits int
        "express": True,  # fits bool
        "anything": 5,  # unannotated: kept
        "weight": None,  # text does not fit float: kept, for the check to report
    }
    assert texts_where_described(PLACE, {"zz": 1}, {"zz": "1"}) == {"zz": 1}  # unknown: kept
