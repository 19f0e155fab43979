"""The Lab: a plain-Python session over nuropb meshes, shared by the magic and the widgets."""

from .bench import BenchProgress, BenchRun
from .bench_result import BenchResult
from .capacity import CapacityResult, CapacitySweep
from .connections import DEFAULT_URL, Connection
from .discovery import ServiceInfo
from .errors import BenchError, FirehoseRefused, LabError, OptionError, ParamError
from .history import CallRecord
from .runner import LoopRunner
from .served import check_servable, exposed_methods
from .session import Lab, get_lab
from .settings import Settings
from .tail import Tail

__all__ = [
    "DEFAULT_URL",
    "BenchError",
    "BenchProgress",
    "BenchResult",
    "BenchRun",
    "CallRecord",
    "CapacityResult",
    "CapacitySweep",
    "Connection",
    "FirehoseRefused",
    "Lab",
    "LabError",
    "LoopRunner",
    "OptionError",
    "ParamError",
    "ServiceInfo",
    "Settings",
    "Tail",
    "check_servable",
    "exposed_methods",
    "get_lab",
]
