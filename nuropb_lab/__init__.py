"""nuropb-lab: work with a nuropb service mesh from a notebook.

``%load_ext nuropb_lab`` gives the ``%nuropb`` magic; :class:`RMQAPI` is a nuropb API on
aio-pika, wire-compatible with the ``nuropb`` package, as a client and as a service;
:class:`Lab` is the notebook session the magic and the widgets share.

What is here is the public surface (``__all__``); the rest (``nuropb_lab.mesh``,
``nuropb_lab.lab``...) is how it is made. The Lab and what it returns load on first use, and
pandas with them, so a service that imports this for RMQAPI stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import views
from ._version import __version__
from .mesh import (
    RMQAPI,
    DescribeConflict,
    EncryptionRefused,
    KnownKeys,
    KnownKeysError,
    ManagementUnavailable,
    MeshEvent,
    MeshNotFound,
    NuropbAuthenticationError,
    NuropbAuthorizationError,
    NuropbCallAgain,
    NuropbCallAgainReject,
    NuropbContextManager,
    NuropbDeprecatedError,
    NuropbException,
    NuropbHandlingError,
    NuropbMessageError,
    NuropbNotDeliveredError,
    NuropbSuccess,
    NuropbTimeoutError,
    NuropbTransportError,
    NuropbValidationError,
    QueueUnavailable,
    Subscription,
    configure_mesh,
    nuropb_context,
    publish_to_mesh,
)

if TYPE_CHECKING:
    from .lab import (
        BenchError,
        BenchResult,
        BenchRun,
        CallRecord,
        CapacityResult,
        CapacitySweep,
        CheckError,
        Connection,
        FirehoseRefused,
        Lab,
        LabError,
        Mock,
        OptionError,
        ParamError,
        RedactedReplay,
        ServiceInfo,
        Settings,
        Tail,
        get_lab,
    )
    from .lab.check import CheckResult, CheckRun
    from .lab.tap import FirehoseState, LoadedTap, Tap, Trace, load_tap

# loaded on first use: name -> the module that has it
_LAZY = {
    **dict.fromkeys(
        (
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
            "Mock",
            "OptionError",
            "ParamError",
            "RedactedReplay",
            "ServiceInfo",
            "Settings",
            "Tail",
            "get_lab",
        ),
        ".lab",
    ),
    **dict.fromkeys(("CheckResult", "CheckRun"), ".lab.check"),  # loads Hypothesis
    **dict.fromkeys(("FirehoseState", "LoadedTap", "Tap", "Trace", "load_tap"), ".lab.tap"),
}

__all__ = [
    "RMQAPI",
    "BenchError",
    "BenchResult",
    "BenchRun",
    "CallRecord",
    "CapacityResult",
    "CapacitySweep",
    "CheckError",
    "CheckResult",
    "CheckRun",
    "Connection",
    "DescribeConflict",
    "EncryptionRefused",
    "FirehoseRefused",
    "FirehoseState",
    "KnownKeys",
    "KnownKeysError",
    "Lab",
    "LabError",
    "LoadedTap",
    "ManagementUnavailable",
    "MeshEvent",
    "MeshNotFound",
    "Mock",
    "NuropbAuthenticationError",
    "NuropbAuthorizationError",
    "NuropbCallAgain",
    "NuropbCallAgainReject",
    "NuropbContextManager",
    "NuropbDeprecatedError",
    "NuropbException",
    "NuropbHandlingError",
    "NuropbMessageError",
    "NuropbNotDeliveredError",
    "NuropbSuccess",
    "NuropbTimeoutError",
    "NuropbTransportError",
    "NuropbValidationError",
    "OptionError",
    "ParamError",
    "QueueUnavailable",
    "RedactedReplay",
    "ServiceInfo",
    "Settings",
    "Subscription",
    "Tail",
    "Tap",
    "Trace",
    "__version__",
    "configure_mesh",
    "get_lab",
    "load_ipython_extension",
    "load_tap",
    "nuropb_context",
    "publish_to_mesh",
    "unload_ipython_extension",
]

# The widgets that show the Lab's objects, wired here, above both layers (imported on use).
views.register_view("Tail", "nuropb_lab.widgets.tail_view:TailView")
views.register_view("ProgressRun", "nuropb_lab.widgets.bench_view:BenchView")
views.register_view("Tap", "nuropb_lab.widgets.tap_view:tap_view")


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nuropb_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # found once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nuropb_lab``: register ``%nuropb`` with completion and settings."""
    from .lab import get_lab
    from .magics import NuropbMagics

    magics = NuropbMagics(shell=ipython, lab=get_lab())
    ipython.register_magics(magics)
    for key in ("%nuropb", "%%nuropb"):
        # hooks are called as methods of the shell: (shell, event)
        ipython.set_hook(
            "complete_command", lambda _shell, event: magics.complete(event), str_key=key
        )


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext nuropb_lab``: close the magic's connections."""
    from .lab import get_lab

    lab = get_lab()
    if lab.connections:
        lab.disconnect(all=True)
