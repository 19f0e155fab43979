"""The Lab's served objects: a notebook object as a mesh service, and what may be served."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ..mesh import RMQAPI, crypto
from ..mesh.describe import public_methods
from .base import LabBase, LabError, awaitable, blocking

__all__ = ["ServeMixin", "check_servable", "exposed_methods", "service_name_of"]


class ServeMixin(LabBase):
    """Notebook objects served on the mesh (stopped by ``disconnect``)."""

    async def _serve(
        self,
        obj: object,
        name: str | None = None,
        alias: str | None = None,
        settings: Mapping[str, Any] | None = None,
        allow_any: bool = False,
    ) -> RMQAPI:
        """Serve ``obj``'s public methods on the mesh as service ``name`` (default: its
        ``_service_name`` or class name). Stopped by ``disconnect``. A module, class or
        builtin object is refused unless ``allow_any``: everyone on the mesh could call
        every public callable of it (a served ``os`` would hand the mesh a shell)."""
        connection = self.connection(alias)
        check_servable(obj, allow_any)
        name = name or service_name_of(obj)
        if name in connection.served:
            raise LabError(
                f"{name!r} is already served on {connection.alias}; disconnect to stop it"
            )
        api = RMQAPI(
            connection.api.nodes,
            service_name=name,
            service_instance=obj,
            transport_settings={"known_keys": self.known_keys, **(settings or {})},
        )
        await api.connect()
        if api.private_key is not None:  # this Lab holds the service's key: pin that one
            connection.api.descriptions.trust(name, crypto.fingerprint(api.private_key))
        connection.served[name] = api
        connection.known.add(name)
        return api

    serve = blocking(_serve)
    aserve = awaitable(_serve)


_DANGEROUS = frozenset(
    "system popen exec execv execve spawnv kill remove unlink rmdir rmtree rename chmod"
    " chown open write putenv eval compile setattr delattr clear pop".split()
)


def exposed_methods(obj: object) -> list[str]:
    """The names of the methods serving ``obj`` puts on the mesh."""
    return sorted(name for name, _, _ in public_methods(obj))


def check_servable(obj: object, allow_any: bool = False) -> None:
    """Refuse a module, class or builtin object (unless ``allow_any``), naming what it
    would expose."""
    if allow_any:
        return
    if inspect.ismodule(obj):
        kind = f"module {obj.__name__!r}"
    elif inspect.isclass(obj):
        kind = f"class {obj.__qualname__!r} (serve an instance of it)"
    elif inspect.isroutine(obj) or type(obj).__module__ == "builtins":
        kind = f"builtin {type(obj).__name__} object"
    else:
        return
    # the names that show the danger first (a served os.system is a shell for the mesh)
    methods = sorted(exposed_methods(obj), key=lambda m: (m not in _DANGEROUS, m))
    shown = ", ".join(methods[:8]) + (f", ... ({len(methods)} in all)" if len(methods) > 8 else "")
    raise LabError(
        f"refusing to serve a {kind}: anyone on the mesh could call {shown or 'it'};"
        " serve an object of your own, or pass allow_any=True (%nuropb serve ... --unsafe)"
    )


def service_name_of(obj: object) -> str:
    explicit = getattr(obj, "_service_name", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    name = getattr(obj, "__name__", None) or type(obj).__name__
    return str(name).lower().replace("_", "-")
