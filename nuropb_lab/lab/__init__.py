"""The Lab: a plain-Python session over nuropb meshes, shared by the magic and the widgets.

The contract check's results (``CheckRun``, ``CheckResult``) are in lab/check/, which loads
Hypothesis: imported on the first check, not here."""

from .bench import BenchRun
from .bench_result import BenchResult
from .capacity import CapacityResult, CapacitySweep
from .connections import DEFAULT_URL, Connection
from .discovery import ServiceInfo
from .errors import (
    BenchError,
    CheckError,
    FirehoseRefused,
    LabError,
    OptionError,
    ParamError,
    RedactedReplay,
)
from .history import CallRecord
from .mock import Mock
from .progress import Progress, ProgressRun
from .runner import LoopRunner
from .served import check_servable, exposed_methods, service_name_of
from .session import Lab, get_lab
from .settings import Settings
from .tail import Tail

__all__ = [
    "DEFAULT_URL",
    "BenchError",
    "BenchResult",
    "BenchRun",
    "CallRecord",
    "CapacityResult",
    "CapacitySweep",
    "CheckError",
    "Connection",
    "FirehoseRefused",
    "Lab",
    "LabError",
    "LoopRunner",
    "Mock",
    "OptionError",
    "ParamError",
    "Progress",
    "ProgressRun",
    "RedactedReplay",
    "ServiceInfo",
    "Settings",
    "Tail",
    "check_servable",
    "exposed_methods",
    "get_lab",
    "service_name_of",
]
