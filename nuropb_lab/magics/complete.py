"""TAB completion of ``%nuropb`` lines: sub-commands, services, SERVICE.METHOD and parameter
names, from what discovery and describe taught the Lab. What comes after a sub-command is
its ``completes`` (command.py): ``target`` (SERVICE.METHOD, then its parameters),
``service[.method]`` (SERVICE or SERVICE.METHOD), ``services`` (service names), ``service``
/ ``service method`` (a service, then its method), ``alias`` (connections), ``subcommand``."""

from __future__ import annotations

from collections.abc import Mapping

from ..lab import Lab, LabError
from ..lab.params import parameters_of
from .args import split_args
from .command import SubCommand

__all__ = ["completions"]


def completions(lab: Lab, text: str, subcommands: Mapping[str, SubCommand]) -> list[str]:
    """What may come next on the line ``text`` (up to the cursor)."""
    words = split_args(text) if text else []
    ending = text.endswith(" ")
    position = len(words) - (0 if ending else 1)
    if position <= 1:
        return list(subcommands)
    command = subcommands.get(words[1])
    completes = command.completes if command is not None else None
    if completes in ("target", "service[.method]"):
        if position == 2:
            symbol = "" if ending else words[-1]
            if "." in symbol:
                service = symbol.rpartition(".")[0]
                return [f"{service}.{m}" for m in _methods(lab, service)]
            dot = "." if completes == "target" else ""
            return [f"{s}{dot}" for s in lab.service_names()]
        if completes != "target":
            return []
        service, _, method = words[2].rpartition(".")
        return [f"{p}=" for p in _parameters(lab, service, method)]
    if completes == "services":
        return lab.service_names()
    if completes in ("service", "service method") and position == 2:
        return lab.service_names()
    if completes == "service method" and position == 3:
        return _methods(lab, words[2])
    if completes == "alias":
        return [*lab.connections, "--all"]
    if completes == "subcommand" and position == 2:
        return list(subcommands)
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
