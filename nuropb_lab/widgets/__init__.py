"""ipywidgets views over the Lab: service browser, call form, tail view, keys view, status, tap
view and service graph.

Callbacks never block the kernel: they schedule work on the Lab loop and set trait values
when it is done; live views redraw a few times a second at most and show bounded rows.
"""

from .bench_view import BenchView
from .browser import ServiceBrowser
from .call_form import CallForm
from .keys_view import KeysView
from .status import ConnectionStatus
from .tail_view import TailView
from .tap_view import GraphView, TapView

__all__ = [
    "BenchView",
    "CallForm",
    "ConnectionStatus",
    "GraphView",
    "KeysView",
    "ServiceBrowser",
    "TailView",
    "TapView",
]
