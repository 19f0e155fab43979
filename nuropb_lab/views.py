"""Views of Lab objects, registered from above: the Lab never imports the widget layer.

A leaf module (it imports nothing of the package). ``tail.widget()`` asks it for the view
of a Tail; the package's top level, which sits above every layer, registers each widget by
its import path, imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ViewNotRegistered", "register_view", "view_of"]

# class name of a Lab object -> "module:attribute" of its view factory
_VIEWS: dict[str, str] = {}


class ViewNotRegistered(LookupError):
    """No view is registered for this kind of object."""


def register_view(kind: str, factory_path: str) -> None:
    """Show objects of the class named ``kind`` with the factory at ``factory_path``
    ("module:name", called as ``factory(obj, **options)``)."""
    _VIEWS[kind] = factory_path


def view_of(obj: object, **options: Any) -> Any:
    """The registered view of ``obj``, made by its factory."""
    for kind in type(obj).__mro__:
        path = _VIEWS.get(kind.__name__)
        if path is not None:
            module, _, name = path.partition(":")
            return getattr(importlib.import_module(module), name)(obj, **options)
    raise ViewNotRegistered(f"no view is registered for a {type(obj).__name__}")
