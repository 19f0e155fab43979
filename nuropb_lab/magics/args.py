"""Reading a ``%nuropb`` line: tokens, ``name=value`` params, JSON objects, number lists.

Values are JSON when they parse (``3``, ``true``, ``["a"]``), ``$name`` for a variable of the
notebook, ``'text'`` for text as written, else the text itself; which of these a method wants
is its description's business (command.py, lab/params.py).
"""

from __future__ import annotations

import ast
import json
from typing import Any

from IPython.core.error import UsageError

__all__ = [
    "parse_json_object",
    "parse_numbers",
    "parse_params",
    "parse_value",
    "split_args",
    "unquote",
]


def split_args(line: str) -> list[str]:
    """Split on spaces outside quotes and brackets, so ``tags=["a", "b"]`` is one token."""
    tokens: list[str] = []
    current: list[str] = []
    depth = 0
    quote: str | None = None
    for ch in line:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth = max(depth - 1, 0)
        elif ch.isspace() and depth == 0:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(ch)
    if quote:
        raise UsageError(f"unclosed {quote} quote in: {line.strip()}")
    if current:
        tokens.append("".join(current))
    return tokens


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    return text


def parse_value(text: str, namespace: dict[str, Any] | None = None) -> Any:
    """A ``k=v`` value: JSON when it parses (``3``, ``true``, ``["a"]``), ``$name`` for a
    variable of the notebook, else the string itself."""
    if text.startswith("$") and text[1:].isidentifier() and namespace is not None:
        if text[1:] not in namespace:
            raise UsageError(f"no variable named {text[1:]!r} in the notebook")
        return namespace[text[1:]]
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        if text[:1] in ("[", "{", '"'):  # meant as JSON, so a typo must not pass as a string
            raise UsageError(f"value is not valid JSON: {text[:80]}") from None
        return text


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    text = unquote(text.strip())
    try:
        value = json.loads(text)
    except ValueError:
        try:  # a Python literal is forgiven: {'a': 1}
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise UsageError(f"{what} is not valid JSON: {text[:80]}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def parse_numbers(text: str | None, kind: type[int] | type[float], option: str) -> list[Any] | None:
    """``1,2,4`` as a list of numbers; None when the option was not given."""
    if text is None:
        return None
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        noun = "whole numbers" if kind is int else "numbers"
        raise UsageError(f"{option} takes {noun} separated by commas, got {text!r}") from None


def parse_params(tokens: list[str], namespace: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or not key.isidentifier():
            raise UsageError(f"parameters are written name=value, got {token!r}")
        params[key] = parse_value(value, namespace)
    return params
