"""TAB completion of ``%nuropb`` lines: sub-commands, services, SERVICE.METHOD and parameter
names, from what discovery and describe taught the Lab."""

from __future__ import annotations

from collections.abc import Sequence

from .lab import Lab, LabError
from .lab.params import parameters_of
from .magic_args import split_args

__all__ = ["completions"]

# sub-commands whose first argument is SERVICE.METHOD, then name=value params
_CALLING = ("call", "command", "bench", "capacity")


def completions(lab: Lab, text: str, subcommands: Sequence[str]) -> list[str]:
    """What may come next on the line ``text`` (up to the cursor)."""
    words = split_args(text) if text else []
    ending = text.endswith(" ")
    position = len(words) - (0 if ending else 1)
    if position <= 1:
        return list(subcommands)
    command = words[1]
    if command in (*_CALLING, "check"):
        if position == 2:  # SERVICE.METHOD (check: SERVICE or SERVICE.METHOD)
            symbol = "" if ending else words[-1]
            if "." in symbol:
                service = symbol.rpartition(".")[0]
                return [f"{service}.{m}" for m in _methods(lab, service)]
            dot = "" if command == "check" else "."
            return [f"{s}{dot}" for s in lab.service_names()]
        if command == "check":
            return []
        service, _, method = words[2].rpartition(".")
        return [f"{p}=" for p in _parameters(lab, service, method)]
    if command == "tap" or (command == "mock" and position == 2):
        return lab.service_names()
    if command in ("describe", "keys") and position == 2:
        return lab.service_names()
    if command == "describe" and position == 3:
        return _methods(lab, words[2])
    if command == "disconnect":
        return [*lab.connections, "--all"]
    return []


def _methods(lab: Lab, service: str) -> list[str]:
    methods = lab.method_names(service)
    if not methods and service in lab.service_names():
        try:  # one short describe, so the next TAB has the methods
            lab.describe(service)
        except Exception:  # a completer shows nothing rather than fail the user's TAB
            return []
        methods = lab.method_names(service)
    return methods


def _parameters(lab: Lab, service: str, method: str) -> list[str]:
    try:
        description = lab.connection().api.cached_description(service) or {}
    except LabError:
        return []
    spec = (description.get("methods") or {}).get(method) or {}
    return [name for name, _ in parameters_of(spec)[0]]
