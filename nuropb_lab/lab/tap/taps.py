"""The Lab's wire taps, the firehose switch, and the taps a replay looks through."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Collection

from ...mesh import ManagementUnavailable, NuropbException
from ...mesh.errors import NuropbTransportError
from ...mesh.limits import PAYLOAD_BYTES, TAP_BYTES
from ..connections import Connection, Connections
from ..errors import FirehoseRefused, LabError
from ..handles import replace_earlier
from ..redact import Redaction
from ..runner import LoopRunner
from ..settings import Settings
from .bounds import DEFAULT_MAX_DURATION, TapBounds
from .capture import Capture, TapSubscription
from .firehose import FirehoseState, acquire, check_administrator, look, release
from .firehose import switch_off as _switch_off
from .tap import Tap

__all__ = ["Taps"]

log = logging.getLogger(__name__)

FOLLOW_INTERVAL = 5.0  # s: how often a queue-mode tap of every service looks for new ones
NO_FIREHOSE = (
    "no firehose ({why}); tapping through a queue of its own instead: requests, commands and"
    " events, but no responses, so no latency"
)


class Taps:
    """Wire taps per connection (through the firehose, or a queue of their own), and the
    mesh's firehose switch."""

    def __init__(
        self,
        connections: Connections,
        settings: Settings,
        runner: LoopRunner,
        redaction: Redaction,
    ) -> None:
        self._connections = connections
        self._settings = settings
        self._runner = runner
        self._redaction = redaction
        # every tap made, stopped ones too while they are referenced (replay finds rows there)
        self._made: weakref.WeakSet[Tap] = weakref.WeakSet()

    async def tap(
        self,
        *services: str,
        events: bool | None = None,
        firehose: bool | None = None,
        max_rows: int | None = None,
        max_calls: int | None = None,
        max_pending: int | None = None,
        pending_ttl: float = 120.0,
        body_limit: int = PAYLOAD_BYTES,
        backlog: int | None = None,
        alias: str | None = None,
        max_bytes: int = TAP_BYTES,
        max_duration: float | None = DEFAULT_MAX_DURATION,
        max_records: int | None = None,
    ) -> Tap:
        """Tap the mesh's traffic: every request, response, command and event (the firehose), or
        without it (``firehose=False``, or a user who is not an administrator) the requests,
        commands and events copied to a queue of its own.

        ``services``: only calls to or from these (default: all). ``events``: events too (default:
        when no service is named). ``max_rows`` messages and ``max_calls`` calls are kept (newest);
        a request waits for its response at most ``pending_ttl`` s, at most ``max_pending`` of them.
        The rows keep at most ``max_bytes`` in all, each field within its limit (limits.py): params,
        results and events over ``body_limit`` bytes are kept as a preview. ``backlog``: messages
        the broker holds for the tap while it is behind (default: twice ``max_rows``, at least
        10,000). A tap of this connection started with the same arguments is stopped once this
        one runs (``.replaced`` counts them): a cell run again replaces its tap.

        A tap on the firehose stops by itself after ``max_duration`` seconds (default 300;
        None: only when asked for), and any tap after ``max_records`` records taken in, if
        given: as ``stop()`` does, so the firehose goes off if it was the last tap on it, and
        the rows stay readable. On a read-only connection a tap rides a firehose that is on
        already and never switches it: with the firehose off it taps through a queue of its
        own (``firehose=True`` is then refused)."""
        connection = self._connections.connection(alias)
        bounds = TapBounds.make(max_duration, max_records)
        api = connection.api
        names = list(dict.fromkeys(services))
        rows = max_rows or self._settings.tail_max_rows
        capture = Capture(
            max_rows=rows,
            max_calls=max_calls or rows,
            max_pending=max_pending or max(rows, 1000),
            pending_ttl=pending_ttl,
            body_limit=body_limit,
            services=frozenset(names) if names else None,
            events=(not names) if events is None else events,
            max_bytes=max_bytes,
            redact=self._redaction.current,
        )
        length = backlog or max(2 * rows, 10_000)
        why: str | None = None
        subscription: TapSubscription | None = None
        refused: LabError | None = None  # a read-only connection's, said as it is
        if firehose is not False:
            try:
                await check_administrator(connection.management)
                if connection.read_only and not (await self.firehose(connection.alias)).on:
                    try:
                        self._connections.may_send(connection, "switching the firehose on")
                    except LabError as exc:
                        refused = exc
                        raise
                subscription = TapSubscription.make(
                    capture, True, api.topology.rpc_exchange, [], capture.events, length
                )
                await api.transport.subscribe(subscription)
            except (LabError, NuropbTransportError) as exc:
                if firehose and exc is refused:
                    raise
                if firehose:
                    raise LabError(f"the firehose cannot be tapped: {exc}") from None
                binding = not isinstance(exc, (LabError, ManagementUnavailable))
                why = f"its binding failed: {exc}" if binding else str(exc)
                subscription = None
        notice: str | None = None
        bound = names
        if subscription is None:
            bound, missing, unlisted = await self._bindable(connection, names)
            subscription = TapSubscription.make(
                capture, False, api.topology.rpc_exchange, bound, capture.events, length
            )
            await api.transport.subscribe(subscription)
            notice = NO_FIREHOSE.format(why=why or "not asked for")
            if unlisted is not None:  # said once, where the firehose's refusal said it already
                reason = "" if unlisted in notice else f" ({unlisted})"
                notice += (
                    f"; without the management API{reason} only the services named or called so"
                    f" far: {', '.join(bound) or 'none'}"
                )
            if missing:
                notice += f"; not tapped (no service queue): {', '.join(missing)}"
            if not names:
                later = "that come later" if unlisted is None else "this Lab names or calls later"
                notice += f"; services {later} are tapped within {FOLLOW_INTERVAL:.0f} s"
        else:
            try:
                notice, switched_on = await acquire(
                    connection.management,
                    connection.api.target.vhost,
                    subscription.queue,
                    read_only=connection.read_only,
                )
            except (ManagementUnavailable, FirehoseRefused) as exc:
                await api.unsubscribe(subscription)
                raise LabError(f"could not switch the firehose on: {exc}") from None
            promise = bounds.promise(
                " and switches the firehose off, unless another tap still uses it"
                if switched_on
                else ""
            )
            notice = f"{notice}; {promise}" if notice else promise
        made = Tap(
            capture,
            subscription,
            alias=connection.alias,
            vhost=api.target.vhost,
            services=names,
            notice=notice,
            runner=self._runner,
            management=connection.management,
            events_exchange=api.topology.events_exchange,
            release=lambda t: self._release(connection, t),
        )
        made.settings = self._settings
        made.arguments = (
            tuple(names), events, firehose, max_rows, max_calls, max_pending, pending_ttl,
            body_limit, backlog, max_bytes, max_duration, max_records,
        )  # fmt: skip
        await replace_earlier(made, connection.taps)
        connection.taps.append(made)
        self._made.add(made)
        if made.mode == "queue" and not names:
            made.follower = asyncio.get_running_loop().create_task(self._follow(connection, made))
        if made.mode == "queue":  # costs the mesh no more than its queue: no time limit
            bounds.max_duration = None
        if made.mode == "firehose" or bounds.max_records is not None:
            made.bounds = bounds  # a firehose tap's age is shown, bounded or not
        if bounds.max_duration is not None or bounds.max_records is not None:
            made.ender = asyncio.get_running_loop().create_task(self._end_when_due(made, bounds))
        if notice:
            log.info("tap on %s: %s", connection.alias, notice)
        return made

    def made(self) -> list[Tap]:
        """The taps made that are still around (live or stopped)."""
        return list(self._made)

    def all(self) -> list[Tap]:
        """The taps of every connection that are not stopped."""
        return [t for c in self._connections.all.values() for t in c.taps]

    @staticmethod
    async def _bindable(
        connection: Connection, names: list[str], bound_already: Collection[str] = ()
    ) -> tuple[list[str], list[str], str | None]:
        """The services a tap without the firehose binds (routing keys on the RPC exchange): only
        those with a queue, since a binding of ours would make a request to a missing service
        routable (no basic.return, so its caller would wait until its ttl instead of failing at
        once). Returns (bound, missing, why the management API could not list them, if not);
        ``bound_already`` are not asked about again."""
        api = connection.api
        if names:
            bound: list[str] = []
            missing: list[str] = []
            for name in names:
                found = await api.queue_info(f"nuropb-{name}-sq")
                (bound if found is not None else missing).append(name)
            return bound, missing, None
        try:
            bindings = await connection.management.exchange_bindings(
                api.target.vhost, api.topology.rpc_exchange
            )
        except ManagementUnavailable as exc:
            known = sorted((connection.known | set(connection.services)) - set(bound_already))
            bound = [n for n in known if await api.queue_info(f"nuropb-{n}-sq") is not None]
            return bound, [], str(exc)
        keys = sorted({b["routing_key"] for b in bindings if b.get("destination_type") == "queue"})
        return [k for k in keys if k], [], None

    async def _follow(self, connection: Connection, made: Tap) -> None:
        """A tap of every service through a queue of its own binds the services that appear
        after it started (the firehose sees them anyway), until it stops."""
        subscription = made.subscription
        while not made.stopped:
            await asyncio.sleep(FOLLOW_INTERVAL)
            events = connection.api.transport.events
            if events is None or not events.is_open:
                continue  # the reconnection binds what the subscription lists
            try:
                bound, _, _ = await self._bindable(connection, [], subscription.services)
                for name in bound:
                    if name not in subscription.services and not made.stopped:
                        await events.bind(subscription, subscription.rpc_exchange, name)
                        # listed once bound: a reconnection binds it again, a failure tries again
                        subscription.services.append(name)
            except (NuropbException, TimeoutError, OSError) as exc:  # tried again next time
                log.info("tap on %s: could not bind new services: %s", connection.alias, exc)

    @staticmethod
    async def _end_when_due(made: Tap, bounds: TapBounds) -> None:
        """Stop ``made`` once its time is up or it has taken in ``max_records`` records."""
        reached = asyncio.Event()
        limit = bounds.max_records

        def count(_tap: Tap) -> None:  # after each batch, in the loop thread
            if limit is not None and made.capture.received >= limit:
                reached.set()

        made.add_listener(count)
        left = bounds.left()
        try:
            await asyncio.wait_for(reached.wait(), left)
            bounds.ended = f"{made.capture.received:,} records taken in (max_records={limit:,})"
        except TimeoutError:
            bounds.ended = f"its {bounds.max_duration:g} s were up (max_duration)"
        finally:
            made.remove_listener(count)
        log.info("tap on %s ended by itself: %s", made.alias, bounds.ended)
        await made.astop()

    async def _release(self, connection: Connection, made: Tap) -> None:
        if made in connection.taps:
            connection.taps.remove(made)
        if made.follower is not None:
            made.follower.cancel()
        if made.ender is not None and made.ender is not asyncio.current_task():
            made.ender.cancel()
        subscription = made.subscription
        try:
            await connection.api.unsubscribe(subscription)
        except NuropbException as exc:
            log.info("could not delete the tap's queue: %s", exc)
        if subscription.firehose and not connection.read_only:  # a read-only tap holds none
            try:
                await release(connection.management, made.vhost, subscription.queue)
            except ManagementUnavailable as exc:
                log.warning("could not switch the firehose of %s off: %s", made.vhost, exc)

    async def stop_all(self, connection: Connection) -> None:
        """Stop the connection's taps (it is closing); a firehose a tap had on goes off."""
        for made in list(connection.taps):
            await made.astop()

    async def firehose(self, alias: str | None = None) -> FirehoseState:
        """The firehose of the mesh: on or off, who switched it on, the taps on it, and whether
        it was left on by a lab that is gone (``.orphaned``)."""
        connection = self._connections.connection(alias)
        return await look(connection.management, connection.api.target.vhost)

    async def firehose_off(self, alias: str | None = None) -> FirehoseState:
        """Switch the mesh's firehose off: for one left on by a lab that died (or any, when no
        tap of this Lab uses it). Returns what the broker says after."""
        connection = self._connections.connection(alias)
        self._connections.may_send(connection, "switching the firehose off")
        if any(t.subscription.firehose for t in connection.taps):
            raise LabError("a tap of this Lab uses the firehose: stop it instead (tap.stop())")
        vhost = connection.api.target.vhost
        try:
            await _switch_off(connection.management, vhost)
        except ManagementUnavailable as exc:
            raise LabError(f"could not switch the firehose off: {exc}") from None
        return await look(connection.management, vhost)

    @staticmethod
    async def firehose_text(connection: Connection) -> str:
        """The firehose column of ``lab.status()``."""
        try:
            state = await look(connection.management, connection.api.target.vhost)
        except ManagementUnavailable:
            return "unknown"
        return state.describe()
