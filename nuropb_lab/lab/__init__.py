"""The Lab: a plain-Python session over nuropb meshes, shared by the magic and the widgets."""

from .discovery import ServiceInfo
from .history import CallRecord
from .runner import LoopRunner
from .session import (
    DEFAULT_URL,
    Connection,
    Lab,
    LabError,
    check_servable,
    exposed_methods,
    get_lab,
)
from .tail import Tail

__all__ = [
    "DEFAULT_URL",
    "CallRecord",
    "Connection",
    "Lab",
    "LabError",
    "LoopRunner",
    "ServiceInfo",
    "Tail",
    "check_servable",
    "exposed_methods",
    "get_lab",
]
