"""nuropb-lab: work with a nuropb service mesh from a notebook.

``%load_ext nuropb_lab`` gives the ``%nuropb`` magic; :class:`RMQAPI` is a nuropb API on
aio-pika, wire-compatible with the ``nuropb`` package, as a client and as a service;
:class:`Lab` is the notebook session the magic and the widgets share.
"""

from typing import TYPE_CHECKING, Any

from . import views
from ._version import __version__
from .mesh import *  # noqa: F403
from .mesh import __all__ as _mesh_all

if TYPE_CHECKING:
    from .lab import (
        BenchError,
        FirehoseRefused,
        Lab,
        LabError,
        OptionError,
        ParamError,
        Tail,
        get_lab,
    )
    from .lab.tap import Tap, load_tap

__all__ = [
    "BenchError",
    "FirehoseRefused",
    "Lab",
    "LabError",
    "OptionError",
    "ParamError",
    "Tail",
    "Tap",
    "__version__",
    "get_lab",
    "load_ipython_extension",
    "load_tap",
    *_mesh_all,
]

_LAB_NAMES = (
    "BenchError",
    "FirehoseRefused",
    "Lab",
    "LabError",
    "OptionError",
    "ParamError",
    "Tail",
    "get_lab",
)
_TAP_NAMES = ("Tap", "load_tap")

# The widgets that show the Lab's objects, wired here, above both layers (imported on use).
views.register_view("Tail", "nuropb_lab.widgets.tail_view:TailView")
views.register_view("BenchRun", "nuropb_lab.widgets.bench_view:BenchView")
views.register_view("Tap", "nuropb_lab.widgets.tap_view:tap_view")


def __getattr__(name: str) -> Any:
    # The Lab (and pandas) load on first use, so serving with RMQAPI stays light.
    if name in _LAB_NAMES:
        from . import lab

        return getattr(lab, name)
    if name in _TAP_NAMES:
        from .lab import tap

        return getattr(tap, name)
    raise AttributeError(f"module 'nuropb_lab' has no attribute {name!r}")


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
    from .lab import get_lab

    lab = get_lab()
    if lab.connections:
        lab.disconnect(all=True)
