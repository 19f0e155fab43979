"""The Lab's served objects: a notebook object as a mesh service, and what may be served."""

from __future__ import annotations

import atexit
import inspect
import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Final

from ..mesh import RMQAPI, crypto
from ..mesh.describe import public_methods
from ..mesh.known_keys import KnownKeys
from .connections import Connection, Connections
from .errors import LabError
from .runner import LoopRunner

__all__ = ["Serving", "check_servable", "exposed_methods", "service_name_of"]

log = logging.getLogger(__name__)

EXIT_WAIT_S: Final = 5.0  # a temporary service stopping at exit waits this long at most


class Serving:
    """Notebook objects served on the mesh (stopped by ``disconnect``)."""

    def __init__(
        self, connections: Connections, known_keys: KnownKeys, runner: LoopRunner | None = None
    ) -> None:
        self._connections = connections
        self._known_keys = known_keys
        self._runner = runner

    async def serve(
        self,
        obj: object,
        name: str | None = None,
        alias: str | None = None,
        settings: Mapping[str, Any] | None = None,
        allow_any: bool = False,
        temporary: bool = False,
    ) -> RMQAPI:
        """Serve ``obj``'s public methods on the mesh as service ``name`` (default: its
        ``_service_name`` or class name): exactly those its describe lists, as they are now.
        Stopped by ``disconnect`` (or ``lab.unserve(name)``). A module, class or builtin object,
        or one exposing file, process or network operations, is refused unless ``allow_any``:
        everyone on the mesh could call them (a served ``os`` would hand the mesh a shell).
        ``temporary``: its service queue is deleted when it stops (unless other instances
        consume it), so that a notebook leaves no service behind. Serving a name this Lab
        serves already replaces the object served (a cell run again); a mock's name is
        refused."""
        connection = self._connections.connection(alias)
        self._connections.may_send(connection, "serving an object")
        check_servable(obj, allow_any)
        name = name or service_name_of(obj)
        if name in connection.mocks:
            raise LabError(
                f"a mock stands in for {name!r} on {connection.alias}; stop it first"
                f" (%nuropb mock {name} --stop)"
            )
        # the earlier object goes first: a temporary one takes its queue with it
        await self.unserve(name, connection.alias)
        api = RMQAPI(
            connection.api.nodes,
            service_name=name,
            service_instance=obj,
            transport_settings={
                "known_keys": self._known_keys,
                **({"temporary": True} if temporary else {}),
                **(settings or {}),
            },
        )
        await api.connect()
        if api.private_key is not None:  # this Lab holds the service's key: pin that one
            connection.api.descriptions.trust(name, crypto.fingerprint(api.private_key))
        connection.served[name] = api
        connection.known.add(name)
        if temporary:
            _at_exit(self)
        return api

    async def unserve(self, name: str, alias: str | None = None) -> bool:
        """Stop serving ``name`` on the connection (a temporary service's queue goes with it);
        False when this Lab did not serve it. A mock is stopped through its handle."""
        connection = self._connections.connection(alias)
        if name in connection.mocks:
            raise LabError(f"{name!r} is a mock on {connection.alias}: stop it with its .stop()")
        api = connection.served.pop(name, None)
        if api is None:
            return False
        await api.disconnect()
        return True

    async def stop_all(self, connection: Connection) -> None:
        """Stop serving on the connection (it is closing)."""
        for api in list(connection.served.values()):
            await api.disconnect()
        connection.served.clear()

    def stop_temporary(self) -> None:
        """Stop the temporary services still served (blocking; at exit: a kernel shut down
        with them takes their queues with it), while the Lab's loop still runs."""
        runner = self._runner
        if runner is None or not runner.running or runner.in_loop_thread():
            return
        for connection in self._connections.all.values():
            for name, api in list(connection.served.items()):
                if not api.transport.config.temporary or name in connection.mocks:
                    continue
                try:
                    runner.run(api.disconnect(), EXIT_WAIT_S)
                except Exception as exc:  # at exit: say it, do not raise
                    log.warning("could not stop temporary service %s: %s", name, exc)
                connection.served.pop(name, None)


# the Servings with temporary services, stopped at interpreter exit
_serving_at_exit: weakref.WeakSet[Serving] = weakref.WeakSet()
_at_exit_lock = threading.Lock()
_at_exit_registered = False


def _at_exit(serving: Serving) -> None:
    global _at_exit_registered
    with _at_exit_lock:
        if not _at_exit_registered:
            atexit.register(_stop_temporary_at_exit)
            _at_exit_registered = True
        _serving_at_exit.add(serving)


def _stop_temporary_at_exit() -> None:
    with _at_exit_lock:
        servings = list(_serving_at_exit)
        _serving_at_exit.clear()
    for serving in servings:
        serving.stop_temporary()


# What a served object must not hand every peer on the mesh: file, process and network
# operations. A method is one by its name (or its function's: ``self.sweep = shutil.rmtree``),
# or by the module that defines it (every method of a pathlib.Path, a socket, a file object).
_DANGEROUS_NAMES = frozenset(
    "open system popen exec execv execve execl execvp spawnv spawnve fork forkpty unlink rmdir"
    " rmtree removedirs chmod lchmod chown lchown chroot symlink symlink_to hardlink_to link_to"
    " mkfifo mknod putenv unsetenv read_text read_bytes write_text write_bytes urlopen sendfile"
    " create_connection eval __import__ breakpoint".split()
)
_DANGEROUS_MODULES = (
    "os", "posix", "nt", "posixpath", "ntpath", "pathlib", "shutil", "subprocess", "socket",
    "_socket", "ssl", "io", "_io", "tempfile", "signal", "ctypes", "multiprocessing",
    "asyncio", "urllib", "http", "ftplib", "smtplib", "webbrowser", "importlib", "runpy",
    "pty", "fcntl", "mmap",
)  # fmt: skip
# names a refusal lists by name: what acts on files, processes and the network (some too
# common in objects of one's own to refuse by name alone)
_ACTIONS = _DANGEROUS_NAMES | frozenset(
    "write writelines truncate rename replace touch mkdir remove move copy copyfile copytree"
    " connect connect_ex bind listen accept send sendall sendto recv recvfrom terminate"
    " kill send_signal communicate".split()
)


def exposed_methods(obj: object) -> list[str]:
    """The names of the methods serving ``obj`` puts on the mesh."""
    return sorted(name for name, _, _ in public_methods(obj))


def _origin(method: Any) -> tuple[str, str]:
    """The module and the name of the function behind a method (a builtin method's module is
    its object's type's)."""
    function = getattr(method, "__func__", method)
    module = getattr(function, "__module__", None)
    if not module:
        owner = getattr(method, "__self__", None)
        module = type(owner).__module__ if owner is not None else ""
    return str(module), str(getattr(function, "__name__", ""))


def _exposure(obj: object) -> tuple[list[str], list[tuple[str, str]], bool]:
    """What serving ``obj`` would expose: the methods that act on files, processes or the
    network, by name (a label names the function exposed under another name); the others, as
    (name, module) where the module is a dangerous one, else (name, ""); and whether any is a
    file, process or network operation, by its name or by the module that defines it."""
    acting: list[str] = []
    others: list[tuple[str, str]] = []
    dangerous = False
    for name, method, _ in public_methods(obj):
        module, function = _origin(method)
        of_module = any(module == m or module.startswith(m + ".") for m in _DANGEROUS_MODULES)
        dangerous = dangerous or of_module or bool({name, function} & _DANGEROUS_NAMES)
        if name in _ACTIONS or function in _ACTIONS:
            acting.append(name if function in ("", name) else f"{name} ({module}.{function})")
        else:
            others.append((name, module if of_module else ""))
    return sorted(acting), sorted(others), dangerous


def _listed(acting: list[str], others: list[tuple[str, str]]) -> str:
    """Every acting name, then the others: by name when few, else how many of which modules."""
    if len(others) <= 6:
        return ", ".join(acting + [name for name, _ in others])
    modules = ", ".join(sorted({module for _, module in others if module}))
    more = f"{len(others)} {'more' if acting else 'methods'}{' of ' + modules if modules else ''}"
    return f"{', '.join(acting)} and {more}" if acting else more


def check_servable(obj: object, allow_any: bool = False) -> None:
    """Refuse (unless ``allow_any``) a module, class or builtin object, and an object that
    exposes file, process or network operations, naming in one line what it would expose."""
    if allow_any:
        return
    acting, others, dangerous = _exposure(obj)
    if inspect.ismodule(obj):
        kind = f"a module {obj.__name__!r}"
    elif inspect.isclass(obj):
        kind = f"a class {obj.__qualname__!r} (serve an instance of it)"
    elif inspect.isroutine(obj) or type(obj).__module__ == "builtins":
        kind = f"a builtin {type(obj).__name__} object"
    elif dangerous:
        kind = f"a {type(obj).__name__} object, which has file, process or network operations"
        others = [(name, module) for name, module in others if module]  # not the harmless
    else:
        return
    raise LabError(
        f"refusing to serve {kind}: anyone on the mesh could call"
        f" {_listed(acting, others) or 'it'};"
        " serve an object of your own, or pass allow_any=True (%nuropb serve ... --unsafe)"
    )


def service_name_of(obj: object) -> str:
    explicit = getattr(obj, "_service_name", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    name = getattr(obj, "__name__", None) or type(obj).__name__
    return str(name).lower().replace("_", "-")
