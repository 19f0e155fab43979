"""The Lab: a plain-Python session over nuropb meshes, shared by the magic and the widgets."""

from .bench import BenchError, BenchRun
from .bench_result import BenchResult
from .capacity import CapacityResult
from .discovery import ServiceInfo
from .history import CallRecord
from .params import ParamError
from .progress import Progress, ProgressRun
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
    "BenchError",
    "BenchResult",
    "BenchRun",
    "CallRecord",
    "CapacityResult",
    "Connection",
    "Lab",
    "LabError",
    "LoopRunner",
    "ParamError",
    "Progress",
    "ProgressRun",
    "ServiceInfo",
    "Tail",
    "check_servable",
    "exposed_methods",
    "get_lab",
]
