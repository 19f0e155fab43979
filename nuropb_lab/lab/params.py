"""One check of call parameters against a method's ``nuropb_describe``.

The magic's ``call`` and ``command``, the call form and the bench all check here, before
anything is sent: a wrong type, a missing required parameter or an unknown one is one line
(``qty: expected int, got 'notanumber'``) instead of a TypeError from the service.

Lenient where nuropb is, since the description is all there is to go by:

- an unannotated parameter (type ``""``) or a type name not known here (``Decimal``,
  ``Literal[...]``, a class of the service's) takes any value;
- an int is fine for a float;
- ``None`` is fine for a parameter with a default, and for an Optional-ish type written out
  (``"Optional[int]"``, ``"int | None"``, ``"Union[int, None]"``), as string annotations are
  described; both describes drop ``None`` from a union, so a required ``x: int | None`` shows
  as ``int`` and takes None only with ``--no-check``;
- nuropb 0.1.8 describes ``list[T]`` (any one-argument generic) as ``T``, so a list whose items
  all fit ``T`` passes for a scalar ``T``.

A service that cannot be described is not checked (callers send as before).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..mesh.errors import NuropbException
from .errors import ParamError

__all__ = [
    "DescribedType",
    "ParamError",
    "check_params",
    "described_types",
    "method_spec",
    "param_problems",
    "parameters_of",
    "texts_where_described",
    "type_kind",
    "value_fits",
]


_ANY = frozenset({"", "any", "object", "typing.any"})
_LISTS = frozenset({"list", "tuple", "set", "frozenset", "sequence", "iterable", "collection"})
_DICTS = frozenset({"dict", "mapping", "mutablemapping"})
_NONE = frozenset({"none", "nonetype"})


def type_kind(name: str) -> str | None:
    """What a lower-case type name stands for: ``any``, ``int``, ``float``, ``bool``, ``str``,
    ``dict``, ``list`` or ``none``; None for a name not known here (anything fits it)."""
    if name in _ANY:
        return "any"
    if name in ("int", "float", "bool", "str"):
        return name
    if name in _DICTS:
        return "dict"
    if name in _LISTS:
        return "list"
    if name in _NONE:
        return "none"
    return None


def _fits_scalar(name: str, value: Any) -> bool | None:
    """Whether ``value`` (decoded JSON) fits the type called ``name``; None: not known here."""
    kind = type_kind(name)
    if kind == "any":
        return True
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    if kind == "none":
        return value is None
    return None


def _split_top(text: str, separator: str) -> list[str]:
    """``text`` split on ``separator`` outside brackets."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts]


_GENERIC = re.compile(r"^([\w.]+)\s*\[(.*)\]$", re.S)


@dataclasses.dataclass(frozen=True)
class DescribedType:
    """One alternative of a described type: its lower-case name (``int``, ``list``, ``none``,
    a name not known here ...) and its arguments as written (``dict[str, int]``: str, int)."""

    name: str
    args: tuple[str, ...] = ()


def described_types(type_name: str) -> list[DescribedType]:
    """The alternatives a described type allows (``"Optional[list[int]]"`` -> list of int,
    none); one reading of type names for the validator and the check's strategies."""
    text = type_name.strip()
    if "|" in text:
        return [t for part in _split_top(text, "|") for t in described_types(part)]
    match = _GENERIC.match(text)
    if match:
        origin = match.group(1).lower().removeprefix("typing.")
        args = _split_top(match.group(2), ",")
        if origin == "optional":
            return [*described_types(args[0]), DescribedType("none")]
        if origin == "union":
            return [t for arg in args for t in described_types(arg)]
        return [DescribedType(origin, tuple(args))]
    return [DescribedType(text.lower().removeprefix("typing.").removeprefix("builtins."))]


def value_fits(type_name: str, value: Any) -> bool:
    """Whether ``value`` may be passed for a parameter described as ``type_name``."""
    alternatives = [t.name for t in described_types(type_name)]  # items are not checked
    for name in alternatives:
        fits = _fits_scalar(name, value)
        if fits is None or fits:  # a type not known here takes anything
            return True
    if isinstance(value, list) and value:
        # nuropb 0.1.8 describes list[T] as T: a list of T's passes for a scalar T
        return any(all(_fits_scalar(n, item) for item in value) for n in alternatives)
    return False


def _shown(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def parameters_of(spec: Mapping[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], set[str]]:
    """(the [name, spec] pairs, the required names) of a method's description."""
    parameters = spec.get("parameters") or {}
    properties = parameters.get("properties") or []
    if isinstance(properties, Mapping):  # the JSON-schema shape, tolerated
        properties = list(properties.items())
    pairs = [
        (str(p[0]), dict(p[1] or {}) if isinstance(p[1], Mapping) else {})
        for p in properties
        if isinstance(p, (list, tuple)) and len(p) == 2
    ]
    return pairs, {str(r) for r in parameters.get("required") or []}


def texts_where_described(
    spec: Mapping[str, Any], params: Mapping[str, Any], texts: Mapping[str, str]
) -> dict[str, Any]:
    """``params`` with each value typed as bare text (``texts``: name -> as written, e.g.
    ``sku=123`` read as the number 123) replaced by that text where the method describes the
    parameter as a type the value does not fit and the text does: a str."""
    types = {name: str(p.get("type") or "") for name, p in parameters_of(spec)[0]}
    retyped = dict(params)
    for name, text in texts.items():
        type_name = types.get(name)
        if (
            type_name is not None
            and name in retyped
            and not value_fits(type_name, retyped[name])
            and value_fits(type_name, text)
        ):
            retyped[name] = text
    return retyped


def param_problems(spec: Mapping[str, Any], params: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``params`` for the method described by ``spec``: wrong types first,
    then unknown names, then missing required ones. Empty when they fit."""
    pairs, required = parameters_of(spec)
    known = dict(pairs)
    wrong: list[str] = []
    unknown: list[str] = []
    for name, value in params.items():
        pspec = known.get(name)
        if pspec is None:
            unknown.append(name)
            continue
        type_name = str(pspec.get("type") or "")
        if value is None and name not in required:
            continue  # a parameter with a default takes None (Optional[...] = None)
        if not value_fits(type_name, value):
            wrong.append(f"{name}: expected {type_name}, got {_shown(value)}")
    problems = wrong
    if unknown:
        takes = ", ".join(known) or "no parameters"
        noun = "parameter" if len(unknown) == 1 else "parameters"
        problems.append(f"no {noun} {', '.join(unknown)} (it takes {takes})")
    problems += [
        f"{name}: required but missing" for name in known if name in required and name not in params
    ]
    return problems


def method_spec(description: Mapping[str, Any], service: str, method: str) -> dict[str, Any]:
    """The description of ``method``; ParamError when the service has no such method."""
    methods = description.get("methods") or {}
    spec = methods.get(method)
    if spec is None:
        names = ", ".join(sorted(methods)) or "none"
        raise ParamError(f"{service} has no method {method!r} (methods: {names})")
    return dict(spec)


async def check_params(
    description: Mapping[str, Any],
    service: str,
    method: str,
    params: Mapping[str, Any],
    refresh: Callable[[], Awaitable[Mapping[str, Any] | None]] | None = None,
) -> dict[str, Any]:
    """Check ``params`` for ``service.method``; ParamError (one line) when they do not fit.

    A description may be stale (the service was redeployed): before refusing, ``refresh``
    (when given) describes the service again, and the check is made once more against that.
    Returns the method's description.
    """
    try:
        spec = method_spec(description, service, method)
        problems = param_problems(spec, params)
    except ParamError:
        if refresh is None:
            raise
        problems = ["?"]
    if problems and refresh is not None:
        try:
            fresh = await refresh()
        except NuropbException:  # no new description: judge by the one there is
            fresh = None
        if fresh is not None:
            description = fresh
        spec = method_spec(description, service, method)
        problems = param_problems(spec, params)
    if problems:
        raise ParamError("; ".join(problems))
    return spec
