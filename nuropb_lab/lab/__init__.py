"""The Lab: a plain-Python session over nuropb meshes, shared by the magic and the widgets."""

from .bench import BenchProgress, BenchRun
from .bench_result import BenchResult
from .capacity import CapacityResult
from .discovery import ServiceInfo
from .errors import BenchError, FirehoseRefused, LabError, OptionError, ParamError
from .history import CallRecord
from .runner import LoopRunner
from .session import (
    DEFAULT_URL,
    Connection,
    Lab,
    check_servable,
    exposed_methods,
    get_lab,
)
from .tail import Tail

__all__ = [
    "DEFAULT_URL",
    "BenchError",
    "BenchProgress",
    "BenchResult",
    "BenchRun",
    "CallRecord",
    "CapacityResult",
    "Connection",
    "FirehoseRefused",
    "Lab",
    "LabError",
    "LoopRunner",
    "OptionError",
    "ParamError",
    "ServiceInfo",
    "Tail",
    "check_servable",
    "exposed_methods",
    "get_lab",
]
