"""What a recording holds of one service: its calls with their answers, and its description.

A recording is what a wire tap kept (lab/tap/): a Tap (or a tap loaded back), its ``df``, or
the file ``tap.save`` wrote. A request is paired with the first response of its correlation id. Only
what the tap saw in full is used: an encrypted call (its params were never seen), a field
kept as a preview (over the tap's ``body_limit``) and a request without its response (a tap
without the firehose sees none) are left out, and counted in ``notes``. A ``nuropb_describe``
answer in the recording is the service's description; without one it is inferred from the
calls (the JSON types seen; a parameter present in every call is required).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd

from ...mesh.describe import DESCRIBE_METHOD
from ..errors import LabError
from ..tap import load_tap

__all__ = ["RecordedCall", "Recording", "canonical", "infer_description"]

NEEDED: Final = ("kind", "service", "method", "correlation_id", "payload", "error")
_JSON_TYPES: Final = ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"))


def canonical(params: Mapping[str, Any]) -> str:
    """One text per set of params, whatever the order of their names."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


@dataclasses.dataclass(frozen=True)
class RecordedCall:
    """A call the service answered: its params and its result, or its error (class, text)."""

    method: str
    params: dict[str, Any]
    result: Any = None
    error: tuple[str, str] | None = None


def _absent(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or dict
        return False


def _frame(source: Any) -> pd.DataFrame:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise LabError(f"no recording at {str(path)!r}: give a file that tap.save wrote")
        try:
            return load_tap(path).df
        except (ValueError, KeyError) as exc:
            raise LabError(f"{str(path)!r} is not a file that tap.save wrote: {exc}") from None
    if not isinstance(source, pd.DataFrame):
        source = getattr(source, "df", None)
    if not isinstance(source, pd.DataFrame):
        raise LabError(
            "a recording is a tap, its df, or a file that tap.save wrote;"
            f" not a {type(source).__name__}"
        )
    missing = [c for c in NEEDED if c not in source.columns]
    if missing:
        raise LabError(f"that frame is not a tap's df: it has no {', '.join(missing)} column")
    return source


def _error(text: Any) -> tuple[str, str]:
    name, _, description = str(text).partition(": ")
    return name, description


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    for cls, name in _JSON_TYPES:
        if isinstance(value, cls):
            return name
    return "list" if isinstance(value, list) else "dict" if isinstance(value, dict) else ""


def _type_of(values: Iterable[Any]) -> str:
    """The one type name the values share (int and float: float); "" when they differ."""
    kinds = {_kind(v) for v in values} - {"None"}
    if kinds == {"int", "float"}:
        return "float"
    return kinds.pop() if len(kinds) == 1 else ""


def infer_description(service: str, calls: list[RecordedCall]) -> dict[str, Any]:
    """A ``nuropb_describe`` answer made from recorded calls (no version, no key)."""
    methods: dict[str, Any] = {}
    for method in dict.fromkeys(c.method for c in calls):
        mine = [c for c in calls if c.method == method]
        names = list(dict.fromkeys(name for c in mine for name in c.params))
        required = [n for n in names if all(n in c.params for c in mine)]
        properties = [
            [
                name,
                {
                    "type": _type_of(c.params[name] for c in mine if name in c.params),
                    "description": "",
                    "default": "" if name in required else None,
                },
            ]
            for name in names
        ]
        results = [c.result for c in mine if c.error is None]
        spec: dict[str, Any] = {
            "description": f"inferred from {len(mine)} recorded call(s)",
            "requires_encryption": False,
            "parameters": {"type": "object", "properties": properties, "required": required},
        }
        returned = _type_of(results)
        if results and returned:
            spec["returns"] = {"type": returned + (" | None" if None in results else "")}
        methods[method] = spec
    return {
        "service_name": service,
        "service_version": None,
        "description": f"{service}, as inferred from a recording of {len(calls)} call(s)",
        "warnings": [],
        "encrypted_methods": False,
        "public_key": None,
        "methods": methods,
    }


class Recording:
    """The calls to one service in a recording, answered, and its description (``described``:
    the recorded one, or one inferred); ``notes`` say what was left out, and why."""

    def __init__(
        self,
        service: str,
        calls: list[RecordedCall],
        recorded: dict[str, Any] | None,
        notes: list[str],
    ) -> None:
        self.service = service
        self.calls = calls
        self.recorded = recorded
        self.notes = notes

    @property
    def inferred(self) -> bool:
        return self.recorded is None

    @property
    def described(self) -> dict[str, Any]:
        return (
            self.recorded
            if self.recorded is not None
            else infer_description(self.service, self.calls)
        )

    def __repr__(self) -> str:
        how = "inferred" if self.inferred else "recorded"
        return f"<Recording of {self.service}: {len(self.calls)} calls, description {how}>"

    @classmethod
    def of(cls, source: Any, service: str) -> Recording:
        """The calls to ``service`` in ``source`` (a tap, its df, or a file tap.save wrote)."""
        df = _frame(source)
        column = df.get("truncated")
        cut_rows = column.fillna(False).astype(bool) if column is not None else False
        df = df.assign(_cut=cut_rows)
        answers: dict[Any, dict[Any, Any]] = {}
        for row in df[df["kind"] == "response"].to_dict("records"):
            # the first answer is the caller's: a second one (nuropb 0.1.8 sends two for a
            # failure, the second a "result" holding the error's text) is ignored, as callers do
            if not _absent(row["correlation_id"]):
                answers.setdefault(row["correlation_id"], row)
        requests = df[(df["kind"] == "request") & (df["service"] == service)]
        calls: list[RecordedCall] = []
        recorded: dict[str, Any] | None = None
        skipped = {"encrypted": 0, "cut": 0, "unanswered": 0}
        for row in requests.to_dict("records"):
            response = answers.get(row["correlation_id"])
            encrypted = row.get("encrypted")
            if not _absent(encrypted) and bool(encrypted):
                skipped["encrypted"] += 1
            elif row["_cut"] or not isinstance(row["payload"], dict):
                skipped["cut"] += 1
            elif response is None:
                skipped["unanswered"] += 1
            elif response["_cut"] or str(response["error"] or "").startswith("undecodable"):
                skipped["cut"] += 1
            elif row["method"] == DESCRIBE_METHOD:
                if _absent(response["error"]) and isinstance(response["payload"], dict):
                    recorded = response["payload"]
            else:
                error = None if _absent(response["error"]) else _error(response["error"])
                result = None if _absent(response["payload"]) else response["payload"]
                calls.append(RecordedCall(str(row["method"]), row["payload"], result, error))
        return cls(service, calls, _valid(recorded), _notes(skipped))


def _valid(description: dict[str, Any] | None) -> dict[str, Any] | None:
    """A recorded describe answer, if it has the shape of one."""
    if description is None or not isinstance(description.get("methods"), dict):
        return None
    return description


def _notes(skipped: dict[str, int]) -> list[str]:
    why = {
        "encrypted": "encrypted (their params were never seen)",
        "cut": "kept as a preview only (over the tap's body_limit: tap with a larger one)",
        "unanswered": "without their response (a tap without the firehose sees none)",
    }
    return [f"{n} call(s) not used: {why[k]}" for k, n in skipped.items() if n]
