"""Lab: the plain-Python session that the magic and the widgets share.

The Lab is one flat object put together from parts with explicit dependencies, one per job:
connections (connections.py), describing (describing.py), keys (keys.py), calls (calls.py),
the history (history.py), tails (tailing.py), taps (tap/taps.py), replay (tap/replay.py),
benches (benching.py), contract checks (checking.py), served objects (served.py), mocks
(mocking.py) and dead letters (dead_letters.py). Every face of the Lab is declared below,
once, with its real name, docstring and signature (see faces.py): an operation that does I/O
is one coroutine of a part, with a blocking face (``lab.call``), an async twin (``await
lab.acall``) and, where widgets need it, a face that starts it and returns at once
(``lab.start_call``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

import pandas as pd

from ..mesh.known_keys import KnownKeys, default_path
from .bench_result import LatencySplitter
from .benching import Benching
from .calls import Calls
from .checking import Checking
from .connections import Connection, Connections
from .dead_letters import DeadLetters
from .describing import Describing
from .faces import Composed, awaitable, background, blocking, delegate
from .history import CallRecord, History
from .keys import Keys
from .mocking import Mocking
from .redact import Redaction, Redactor
from .runner import LoopRunner
from .served import Serving
from .settings import Setting, Settings
from .tail import Tail
from .tailing import Tails
from .tap.replay import Replay
from .tap.tap import Tap
from .tap.taps import Taps

__all__ = ["Lab", "get_lab"]

STATUS_COLUMNS = [
    "alias",
    "current",
    "url",
    "node",
    "mesh",
    "state",
    "mode",
    "reconnects",
    "in_flight",
    "served",
    "tails",
    "last_error",
    "taps",
    "firehose",
    "firehose_taps",
]


class Lab(Composed):
    """A notebook's session on one or more nuropb meshes.

    Settings (``timeout``, ``describe_timeout``, ``tail_max_rows``, ``management_url``,
    ``failover_strategy``, ``read_only``, ``live_idle_timeout``: see settings.py) are keyword
    arguments and attributes; ``history_size`` calls are kept; ``known_keys`` is the file (or
    :class:`KnownKeys`) the keys seen are pinned in (default: $NUROPB_LAB_KNOWN_KEYS, else the
    user's config folder). ``redact``: credentials in what is shown or kept of messages become
    ``"[redacted]"`` (redact.py): True (the default keys and values), keys to add, or False
    (off).
    """

    def __init__(
        self,
        *,
        timeout: float = Settings.timeout,
        describe_timeout: float = Settings.describe_timeout,
        tail_max_rows: int = Settings.tail_max_rows,
        history_size: int = 10_000,
        management_url: str | None = Settings.management_url,
        failover_strategy: str = Settings.failover_strategy,
        read_only: bool = Settings.read_only,
        live_idle_timeout: float = Settings.live_idle_timeout,
        known_keys: str | os.PathLike[str] | KnownKeys | None = None,
        redact: bool | Iterable[str] = True,
    ) -> None:
        settings = Settings(
            timeout, describe_timeout, tail_max_rows, management_url, failover_strategy, read_only
        )
        settings.live_idle_timeout = live_idle_timeout
        if not isinstance(redact, bool):
            # checked there (a string is comma-separated keys)
            settings.redact_keys = redact if isinstance(redact, str) else tuple(redact)  # type: ignore[assignment]
        settings.redact = redact is not False
        redaction = Redaction(settings)
        self._redaction = redaction
        self.known_keys = (
            known_keys
            if isinstance(known_keys, KnownKeys)
            else KnownKeys(known_keys if known_keys is not None else default_path())
        )
        runner = LoopRunner()
        history = History(history_size)
        connections = Connections(settings, self.known_keys)
        describing = Describing(connections, settings)
        calls = Calls(connections, describing, settings, history, redaction)
        self._connections = connections
        self._history = history
        self._tails = Tails(connections, settings, runner, redaction)
        self._taps = Taps(connections, settings, runner, redaction)
        self._served = Serving(connections, self.known_keys, runner)
        self._benching = Benching(connections, settings, runner, self._taps.all)
        self._mocking = Mocking(connections, self._served, self._taps, runner)
        parts = [
            connections,
            describing,
            Keys(connections, describing, history),
            calls,
            history,
            self._tails,
            self._taps,
            Replay(connections, calls, self._taps, redaction),
            self._benching,
            Checking(connections, settings, runner),
            self._served,
            self._mocking,
            DeadLetters(connections, history, redaction),
        ]
        super().__init__(runner, settings, parts)

    def __repr__(self) -> str:
        return f"<Lab connections=[{self._connections!r}]>"

    # --- settings (settings.py) ---------------------------------------------------------------

    timeout: Setting[float] = Setting()
    describe_timeout: Setting[float] = Setting()
    tail_max_rows: Setting[int] = Setting()
    management_url: Setting[str | None] = Setting()
    failover_strategy: Setting[str] = Setting()
    read_only: Setting[bool] = Setting()
    live_idle_timeout: Setting[float] = Setting()
    redact: Setting[bool] = Setting()
    redact_keys: Setting[tuple[str, ...]] = Setting()

    @property
    def redactor(self) -> Redactor:
        """The redaction in force (redact.py): ``lab.redactor.value(x)`` redacts ``x``."""
        return self._redaction.current

    # --- connections (connections.py) ---------------------------------------------------------

    connect = blocking(Connections.connect)
    aconnect = awaitable(Connections.connect)
    connection = delegate(Connections.connection)
    use = delegate(Connections.use)

    @property
    def connections(self) -> dict[str, Connection]:
        """The connections by alias."""
        return self._connections.all

    @property
    def current(self) -> str | None:
        """The alias of the connection used when none is named."""
        return self._connections.current

    async def _disconnect(self, alias: str | None = None, all: bool = False) -> list[str]:
        """Close a connection (default: the current one) or ``all``, with their taps, tails,
        mocks and served objects. Returns the aliases closed."""
        closing = self._connections.closing(alias, all)
        for connection in closing:
            await self._taps.stop_all(connection)  # switches off a firehose a tap had on
            await self._tails.stop_all(connection)
            await self._mocking.stop_all(connection)
            await self._served.stop_all(connection)
            await self._connections.close(connection)
        return [c.alias for c in closing]

    disconnect = blocking(_disconnect)
    adisconnect = awaitable(_disconnect)

    async def _status(self) -> pd.DataFrame:
        """Connections: alias, URL (the node connected to, password masked), node (host:port,
        and which of several; served services on another node), mesh, state, mode (read-only
        or read-write), reconnects, calls in flight, served services (mocks marked so), tails,
        the last connection error, taps, the mesh's firehose (on, off, or left on by a lab
        that is gone: then ``attrs["notice"]`` says so), and each running tap of this Lab on
        the firehose with its age and time left; ``attrs["redaction"]``: the redaction in
        force."""
        rows = []
        firehoses = {}
        current = self._connections.current
        for alias, c in self._connections.all.items():
            firehoses[alias] = await self._taps.firehose_text(c)
            transport = c.api.transport
            rows.append(
                [
                    alias,
                    alias == current,
                    c.url,
                    c.node,
                    c.mesh,
                    transport.state,
                    c.mode,
                    transport.reconnects,
                    c.api.in_flight,
                    ", ".join(f"{n} (mock)" if n in c.mocks else n for n in c.served),
                    len([t for t in c.tails if not t.stopped]),
                    transport.last_error,
                    len(c.taps),
                    firehoses[alias],
                    _firehose_taps(c),
                ]
            )
        frame = pd.DataFrame(rows, columns=STATUS_COLUMNS)
        frame.attrs["redaction"] = self._redaction.describe()
        orphaned = [f"{a}: firehose {f}" for a, f in firehoses.items() if "ORPHANED" in f]
        if orphaned:
            frame.attrs["notice"] = "; ".join(orphaned)
        return frame

    status = blocking(_status)
    astatus = awaitable(_status)

    def close(self) -> None:
        """Disconnect everything and stop the Lab's loop."""
        if self._connections.all:
            self.disconnect(all=True)
        self.runner.stop()

    async def aclose(self) -> None:
        """The async twin of :meth:`close`."""
        if self._connections.all:
            await self.adisconnect(all=True)
        await asyncio.to_thread(self.runner.stop)

    # --- discovery and descriptions (describing.py), keys (keys.py) ---------------------------

    services = blocking(Describing.services)
    aservices = awaitable(Describing.services)
    cached_services = delegate(Describing.cached_services)
    service_names = delegate(Describing.service_names)
    method_names = delegate(Describing.method_names)
    describe = blocking(Describing.describe)
    adescribe = awaitable(Describing.describe)
    description = blocking(Describing.description)
    adescription = awaitable(Describing.description)
    known_description = blocking(Describing.known_description)
    aknown_description = awaitable(Describing.known_description)
    keys = blocking(Keys.keys)
    akeys = awaitable(Keys.keys)
    start_keys = background(Keys.keys)
    trust = blocking(Keys.trust)
    atrust = awaitable(Keys.trust)

    # --- calls, commands, events (calls.py) and their history (history.py) --------------------

    call = blocking(Calls.call)
    acall = awaitable(Calls.call)
    start_call = background(Calls.call)
    command = blocking(Calls.command)
    acommand = awaitable(Calls.command)
    publish = blocking(Calls.publish)
    apublish = awaitable(Calls.publish)
    history = delegate(History.frame)

    @property
    def call_records(self) -> list[CallRecord]:
        """The calls made in this session, as records (newest last)."""
        return self._history.records()

    # --- tails (tailing.py), taps and the firehose (tap/taps.py), replay (tap/replay.py) ------

    tail = blocking(Tails.tail)
    atail = awaitable(Tails.tail)
    tap = blocking(Taps.tap)
    atap = awaitable(Taps.tap)
    start_tap = background(Taps.tap)
    firehose = blocking(Taps.firehose)
    afirehose = awaitable(Taps.firehose)
    firehose_off = blocking(Taps.firehose_off)
    afirehose_off = awaitable(Taps.firehose_off)
    replay = blocking(Replay.replay)
    areplay = awaitable(Replay.replay)

    @property
    def tails(self) -> list[Tail]:
        """The tails of every connection that are not stopped."""
        return self._tails.all()

    @property
    def taps(self) -> list[Tap]:
        """The taps of every connection that are not stopped."""
        return self._taps.all()

    # --- load (benching.py) -------------------------------------------------------------------

    bench = delegate(Benching.bench)
    abench = awaitable(Benching.abench)
    start_bench = delegate(Benching.start_bench)
    capacity = delegate(Benching.capacity)
    acapacity = awaitable(Benching.acapacity)
    start_capacity = delegate(Benching.start_capacity)
    benches = delegate(Benching.benches)

    @property
    def bench_splitters(self) -> list[LatencySplitter]:
        """Latency splitters added by hand, besides the running taps (bench_result.py)."""
        return self._benching.splitters

    # --- contract checks (checking.py) --------------------------------------------------------

    check = delegate(Checking.check)
    acheck = awaitable(Checking.acheck)
    start_check = delegate(Checking.start_check)
    prepare_check = blocking(Checking.prepare_check)
    aprepare_check = awaitable(Checking.prepare_check)

    # --- served objects (served.py), mocks (mocking.py), dead letters (dead_letters.py) -------

    serve = blocking(Serving.serve)
    aserve = awaitable(Serving.serve)
    unserve = blocking(Serving.unserve)
    aunserve = awaitable(Serving.unserve)
    mock = blocking(Mocking.mock)
    amock = awaitable(Mocking.mock)
    dead_letters = blocking(DeadLetters.dead_letters)
    adead_letters = awaitable(DeadLetters.dead_letters)


def _firehose_taps(connection: Connection) -> str:
    """The status of a connection's running taps on the firehose: their age and time left."""
    return "; ".join(
        f"tap of {' '.join(t.services) or 'all'}: {t.bounds_text() or 'no limit'}"
        for t in connection.taps
        if t.mode == "firehose"
    )


_default_lab: Lab | None = None


def get_lab() -> Lab:
    """The Lab the ``%nuropb`` magic uses in this process (made on first use)."""
    global _default_lab
    if _default_lab is None:
        _default_lab = Lab()
    return _default_lab
