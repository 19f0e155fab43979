"""Hypothesis strategies from a method's ``nuropb_describe``: params that fit it, and params
that do not (a value of a wrong type, a required parameter left out, an unknown one added).

What fits is the one validator's word (lab/params.py): params made to fit are kept only when
``param_problems`` finds nothing, params made not to fit only when it finds something, so a
finding never rests on a reading of the description of its own.

By annotation: ``int`` (within +-2**53, which JSON peers of any language read exactly),
``float`` (finite: JSON has no NaN), ``str``, ``bool``, ``None``; lists, tuples and dicts with
their item types when the description writes them (``list[int]``; nuropb 0.1.8 describes
``list[int]`` as ``int``, and the validator lets a list of them pass for it); ``Optional``
and unions; a parameter with a default is sometimes left out and sometimes given its default.
Unannotated parameters and types not known here (``Decimal``, a class) take any JSON value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from hypothesis import strategies as st

from ..params import DescribedType, described_types, param_problems, parameters_of, type_kind

__all__ = ["fitting", "json_values", "type_strategy", "unfitting"]

JSON_INT: Final = 2**53
MAX_ITEMS: Final = 5  # of a generated list or dict
MAX_TEXT: Final = 40  # characters of a generated string
MAX_DEPTH: Final = 3  # nesting of item types followed (list[list[list[int]]])
UNKNOWN_NAMES: Final = r"[a-z][a-z0-9_]{0,11}"  # names of parameters a method does not take

Params = dict[str, Any]


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, small: scalars, and lists and objects of them."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-JSON_INT, JSON_INT)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=MAX_TEXT)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=MAX_ITEMS)
            | st.dictionaries(st.text(max_size=MAX_TEXT), inner, max_size=MAX_ITEMS)
        ),
        max_leaves=10,
    )


def type_strategy(type_name: str, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of a described type (``""``: any JSON value)."""
    return st.one_of([_of(t, depth) for t in described_types(type_name)])


def _of(described: DescribedType, depth: int) -> st.SearchStrategy[Any]:
    kind = type_kind(described.name)
    args = described.args if depth < MAX_DEPTH else ()
    if kind == "int":
        return st.integers(-JSON_INT, JSON_INT)
    if kind == "float":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "bool":
        return st.booleans()
    if kind == "str":
        return st.text(max_size=MAX_TEXT)
    if kind == "none":
        return st.none()
    if kind == "list":
        if described.name == "tuple" and args and args[-1] != "...":  # tuple[int, str]
            items = [type_strategy(a, depth + 1) for a in args]
            return st.tuples(*items).map(list)
        item = type_strategy(args[0], depth + 1) if args else json_values()
        return st.lists(item, max_size=MAX_ITEMS)
    if kind == "dict":  # JSON keys are text, whatever the annotation says of them
        value = type_strategy(args[1], depth + 1) if len(args) == 2 else json_values()
        return st.dictionaries(st.text(max_size=MAX_TEXT), value, max_size=MAX_ITEMS)
    return json_values()  # "", Any, or a type not known here: the validator takes anything


def _value(pspec: Mapping[str, Any], required: bool) -> st.SearchStrategy[Any]:
    values = type_strategy(str(pspec.get("type") or ""))
    if not required and "default" in pspec:
        values = values | st.just(pspec["default"])  # kept only when it fits (see fitting)
    return values


def fitting(spec: Mapping[str, Any]) -> st.SearchStrategy[Params]:
    """Params that fit the method described by ``spec``."""
    pairs, required = parameters_of(spec)
    always = {name: _value(p, True) for name, p in pairs if name in required}
    sometimes = {name: _value(p, False) for name, p in pairs if name not in required}
    return st.fixed_dictionaries(always, optional=sometimes).filter(
        lambda params: not param_problems(spec, params)
    )


def _typed(type_name: str) -> bool:
    """Whether some value does not fit the type (not for Any, "" or a type not known here)."""
    return all(type_kind(t.name) not in (None, "any") for t in described_types(type_name))


def unfitting(spec: Mapping[str, Any]) -> st.SearchStrategy[Params]:
    """Params that do not fit: fitting ones with one value of a wrong type, a required
    parameter left out, or a parameter the method does not take."""
    pairs, required = parameters_of(spec)
    known = {name for name, _ in pairs}
    base = fitting(spec)

    def with_value(params: Params, name: str, value: Any) -> Params:
        return {**params, name: value}

    def without(params: Params, name: str) -> Params:
        return {k: v for k, v in params.items() if k != name}

    ways = []
    typed = sorted(name for name, p in pairs if _typed(str(p.get("type") or "")))
    if typed:
        wrong = st.sampled_from(typed).flatmap(lambda n: st.tuples(st.just(n), json_values()))
        ways.append(st.builds(lambda p, nv: with_value(p, *nv), base, wrong))
    if required:
        ways.append(st.builds(without, base, st.sampled_from(sorted(required))))
    unknown = st.from_regex(UNKNOWN_NAMES, fullmatch=True).filter(lambda n: n not in known)
    ways.append(st.builds(with_value, base, unknown, json_values()))
    return st.one_of(ways).filter(lambda params: bool(param_problems(spec, params)))
