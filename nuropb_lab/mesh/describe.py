"""``nuropb_describe``: what a served object offers, in nuropb's schema."""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any

from .decorators import MethodMarks

__all__ = ["DESCRIBE_METHOD", "describe_object", "public_methods"]

DESCRIBE_METHOD = "nuropb_describe"


def public_methods(instance: object) -> Iterator[tuple[str, Any, MethodMarks]]:
    """The (name, bound callable, marks) of every method the object publishes."""
    for name in dir(instance):
        if name.startswith("_") or name == DESCRIBE_METHOD:
            continue
        try:
            attr = getattr(instance, name)
        except Exception:  # a property that fails is not a method
            continue
        if not inspect.isroutine(attr):
            continue
        marks = MethodMarks(attr)
        if not marks.hidden:
            yield name, attr, marks


def _signature(method: Any) -> inspect.Signature:
    try:
        return inspect.signature(method, eval_str=True)
    except Exception:  # unresolvable string annotations: keep them as written
        return inspect.signature(method)


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _type_name(args[0]) if len(args) == 1 else " | ".join(_type_name(a) for a in args)
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(annotation, "__name__", str(annotation))


def _returned_type(annotation: Any) -> str:
    """A return annotation's name, ``None`` kept in a union (``int | None``): a result of None
    must fit it. (Parameters are described as nuropb does, which drops it.)"""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(
            "None" if a is type(None) else _type_name(a) for a in typing.get_args(annotation)
        )
    return _type_name(annotation)


def _json_default(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def describe_method(method: Any, marks: MethodMarks) -> dict[str, Any]:
    """A method's entry in ``methods``: nuropb's keys, and ``returns`` (beyond nuropb's schema,
    which ignores it) when the method's result is annotated: what ``lab.check`` holds results
    to."""
    properties: list[list[Any]] = []
    required: list[str] = []
    signature = _signature(method)
    for param in signature.parameters.values():
        if param.name in ("self", "cls") or (
            marks.takes_context and param.name == marks.context_param
        ):
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is param.empty:
            required.append(param.name)
            default: Any = ""
        else:
            default = _json_default(param.default)
        properties.append(
            [
                param.name,
                {"type": _type_name(param.annotation), "description": "", "default": default},
            ]
        )
    spec = {
        "description": marks.description or inspect.getdoc(method),
        "requires_encryption": marks.requires_encryption,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }
    if signature.return_annotation is not inspect.Signature.empty:
        spec["returns"] = {"type": _returned_type(signature.return_annotation)}
    return spec


def describe_object(
    instance: object,
    service_name: str,
    public_key_pem: str | None = None,
    published: Mapping[str, tuple[Any, MethodMarks]] | None = None,
) -> dict[str, Any]:
    """The describe dict of a served object (``public_key_pem`` when it has encrypted methods);
    ``published``: its methods as they were served (default: as they are now)."""
    if published is None:
        published = {name: (m, marks) for name, m, marks in public_methods(instance)}
    methods = {name: describe_method(m, marks) for name, (m, marks) in published.items()}
    encrypted = any(spec["requires_encryption"] for spec in methods.values())
    warnings: list[str] = []
    if encrypted and public_key_pem is None:
        warnings.append("Service has encrypted methods but no private key has been set.")
    doc = getattr(instance, "__doc__", None)
    version = getattr(instance, "_version", None)
    return {
        "service_name": getattr(instance, "_service_name", None) or service_name,
        "service_version": None if version is None else str(version),
        "description": inspect.cleandoc(doc) if isinstance(doc, str) else None,
        "warnings": warnings,
        "encrypted_methods": encrypted,
        "public_key": public_key_pem if encrypted else None,
        "methods": methods,
    }
