"""nuropb-lab: work with a nuropb service mesh from a notebook.

``%load_ext nuropb_lab`` gives the ``%nuropb`` magic; :class:`RMQAPI` is a nuropb API on
aio-pika, wire-compatible with the ``nuropb`` package, as a client and as a service.
"""

from ._version import __version__
from .mesh import *  # noqa: F403
from .mesh import __all__ as _mesh_all

__all__ = ["__version__", *_mesh_all]
