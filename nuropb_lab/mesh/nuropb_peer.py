"""nuropb's own classes, when the ``nuropb`` package is installed beside the lab.

nuropb is not a dependency. Where it is installed (a user migrating, or mixing both), the
lab's error classes and its request context also subclass nuropb's same-named classes, so
that code written for nuropb (``except nuropb.interface.NuropbMessageError``, nuropb's
``@nuropb_context``, which checks its argument's class) runs unchanged with the lab.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging

__all__ = ["also", "peer_class"]

log = logging.getLogger(__name__)


@functools.cache
def _installed() -> bool:
    try:
        return importlib.util.find_spec("nuropb") is not None
    except (ImportError, ValueError):
        return False


def peer_class(module: str, name: str) -> type | None:
    """``nuropb.{module}.{name}`` when nuropb is installed and it is a class, else None."""
    if not _installed():
        return None
    try:
        cls = getattr(importlib.import_module(f"nuropb.{module}"), name, None)
    except Exception as exc:  # a broken nuropb install: the lab works without it
        log.debug("nuropb.%s not usable: %s", module, exc)
        return None
    return cls if isinstance(cls, type) else None


def also(module: str, name: str) -> tuple[type, ...]:
    """nuropb's class, as extra bases of the lab's own (none without nuropb)."""
    cls = peer_class(module, name)
    return (cls,) if cls is not None else ()
