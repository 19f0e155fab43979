"""The firehose switch: RabbitMQ's per-vhost tracing, on only while a lab taps it.

Switched through the management API (``PUT /api/vhosts/{vhost}`` with ``tracing``, which needs
an administrator), and only when it was off. Two facts on the broker say who it is for:

- **the owner**: before switching it on, a lab writes the global parameter
  ``nuropb-lab-tracing:{vhost}`` (who, when); it is deleted when the lab switches tracing off.
  Tracing on without it was switched on by someone else, and is never switched off by a lab;
- **the taps alive**: each tap's queue (``nuropb-lab-tap-{id}-tq``) is exclusive, so the broker
  deletes it, and its binding to ``amq.rabbitmq.trace``, the moment its connection ends, also
  when the kernel is killed. The bindings are read straight from the broker's tables (not from
  its statistics, which lag by seconds, as a connection list would).

So when a tap stops (or disconnect, close, interpreter exit), tracing goes off if a lab switched
it on and no tap queue is bound any more, whichever lab's taps those were. Tracing on, switched
on by a lab, with no tap queue bound is *orphaned*: left on by a lab that died. ``status`` and
``tap`` say so, a new tap takes it over, and ``firehose_off`` switches it off.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime
import logging
import os
import re
import socket
import threading
from typing import Any
from urllib.parse import quote

from ...mesh import ManagementAPI, ManagementUnavailable
from ..errors import FirehoseRefused
from .bounds import FIREHOSE_COST
from .capture import TRACE_EXCHANGE

__all__ = [
    "FirehoseRefused",
    "FirehoseState",
    "acquire",
    "look",
    "marker_name",
    "release",
    "switch_off",
]

log = logging.getLogger(__name__)

MARKER_PREFIX = "nuropb-lab-tracing:"
TAP_QUEUE = re.compile(r"^nuropb-lab-tap-[0-9a-f]{12}-tq$")


def marker_name(vhost: str) -> str:
    return f"{MARKER_PREFIX}{vhost}"


@dataclasses.dataclass
class FirehoseState:
    """What the broker says of a vhost's firehose."""

    vhost: str
    on: bool | None  # None: not visible to this user
    owner: dict[str, Any] | None  # the marker of the lab that switched it on
    taps: list[str]  # lab tap queues bound to the trace exchange
    others: list[str]  # any other queues bound to it

    @property
    def orphaned(self) -> bool:
        """On, switched on by a lab, and no lab tap left: the lab died with it on."""
        return bool(self.on) and self.owner is not None and not self.taps

    def describe(self) -> str:
        if self.on is None:
            return "unknown"
        if not self.on:
            return "off"
        if self.orphaned:
            assert self.owner is not None
            return (
                f"on, ORPHANED: left on by a lab that is gone ({_who(self.owner)}); "
                "lab.firehose_off() or `%nuropb firehose off` switches it off"
            )
        if self.owner is not None:
            return f"on for {len(self.taps)} lab tap(s) (switched on by {_who(self.owner)})"
        listeners = len(self.taps) + len(self.others)
        return f"on (not switched on by a lab; {listeners} queue(s) bound)"


def _who(owner: dict[str, Any]) -> str:
    return f"pid {owner.get('pid')} on {owner.get('host')}, since {owner.get('since')}"


async def look(management: ManagementAPI, vhost: str) -> FirehoseState:
    """The vhost's tracing flag, its owner marker and the queues bound to its trace exchange."""
    on = await management.tracing(vhost)
    owner: dict[str, Any] | None = None
    try:
        value = await management.global_parameter(marker_name(vhost))
        owner = value if isinstance(value, dict) else None
    except ManagementUnavailable:  # not an administrator: cannot be read
        owner = None
    bound = await management.exchange_bindings(vhost, TRACE_EXCHANGE) if on else []
    queues = sorted({b["destination"] for b in bound if b.get("destination_type") == "queue"})
    taps = [q for q in queues if TAP_QUEUE.match(q)]
    return FirehoseState(vhost, on, owner, taps, [q for q in queues if q not in taps])


# --- who holds it, in this process (for exit) -------------------------------------------------


@dataclasses.dataclass
class _Hold:
    management: ManagementAPI
    vhost: str
    queues: set[str]
    switched_on: bool = False


_holds: dict[tuple[str, str], _Hold] = {}
_holds_lock = threading.Lock()


def _key(management: ManagementAPI, vhost: str) -> tuple[str, str]:
    return management.base_url, vhost


async def check_administrator(management: ManagementAPI) -> None:
    """Raise FirehoseRefused unless this user may switch tracing (an administrator)."""
    try:
        me = await management.whoami()
    except ManagementUnavailable as exc:
        raise FirehoseRefused(f"the management API cannot be used: {exc}") from None
    tags = me.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",")]
    if "administrator" not in tags:
        shown = ", ".join(tags) or "none"
        raise FirehoseRefused(
            f"user {management.username!r} is not an administrator of the management API"
            f" (tags: {shown}), and switching the firehose on needs one"
        )


async def acquire(
    management: ManagementAPI, vhost: str, queue: str, read_only: bool = False
) -> tuple[str | None, bool]:
    """Make sure tracing is on for the tap whose queue (``queue``, bound already) is on the
    trace exchange; returns a notice for the user, if there is something to say, and whether
    this tap switched it on. A
    ``read_only`` tap only rides a firehose that is on (FirehoseRefused when it is off), and
    never switches it off: it holds nothing."""
    state = await look(management, vhost)
    notice = None
    switched_on = False
    if read_only:
        if not state.on:
            raise FirehoseRefused(f"the firehose of {vhost!r} went off before this tap was bound")
        if state.orphaned:
            assert state.owner is not None
            return (
                f"the firehose of {vhost!r} was left on by a lab that is gone"
                f" ({_who(state.owner)}); this read-only tap leaves it on when it stops"
            ), False
        return None, False
    if not state.on:
        owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        await management.set_global_parameter(marker_name(vhost), owner)
        await management.set_tracing(vhost, True)
        switched_on = True
        notice = f"switched the firehose of {vhost!r} on: {FIREHOSE_COST}"
        log.info("switched the firehose on for %s", vhost)
    elif state.owner is None:
        notice = (
            f"tracing was on already on {vhost!r} (not switched on by a lab): it stays on"
            " when this tap stops"
        )
    elif not [q for q in state.taps if q != queue]:
        notice = (
            f"the firehose of {vhost!r} was left on by a lab that is gone"
            f" ({_who(state.owner)}); this tap takes it over and switches it off when it stops"
        )
    with _holds_lock:
        hold = _holds.setdefault(
            _key(management, vhost), _Hold(management, vhost, set(), switched_on)
        )
        hold.queues.add(queue)
        hold.switched_on = hold.switched_on or switched_on
    _register_exit()
    return notice, switched_on


async def release(management: ManagementAPI, vhost: str, queue: str) -> bool:
    """The tap of ``queue`` stopped (its queue deleted): switch tracing off if a lab switched
    it on and no lab tap is left on it. True when it was switched off."""
    with _holds_lock:
        hold = _holds.get(_key(management, vhost))
        if hold is not None:
            hold.queues.discard(queue)
            if not hold.queues:
                del _holds[_key(management, vhost)]
    state = await look(management, vhost)
    if state.on is None and not await management.vhost_exists(vhost):
        await _forget(management, vhost)  # the mesh itself is gone: its marker goes too
        return False
    ours = hold.switched_on if hold is not None else False
    left = [q for q in state.taps if q != queue and (hold is None or q not in hold.queues)]
    if not state.on or left or not (state.owner is not None or ours):
        return False
    if hold is not None and hold.queues:
        return False  # another tap of this process still uses it
    await switch_off(management, vhost)
    return True


async def switch_off(management: ManagementAPI, vhost: str) -> None:
    """Tracing off and the owner marker gone."""
    await management.set_tracing(vhost, False)
    await _forget(management, vhost)
    log.info("switched the firehose off for %s", vhost)


async def _forget(management: ManagementAPI, vhost: str) -> None:
    try:
        await management.delete_global_parameter(marker_name(vhost))
    except ManagementUnavailable as exc:
        log.info("could not delete the firehose marker of %s: %s", vhost, exc)


# --- at interpreter exit ---------------------------------------------------------------------

_exit_registered = False


def _register_exit() -> None:
    global _exit_registered
    with _holds_lock:
        if not _exit_registered:
            atexit.register(switch_off_at_exit)
            _exit_registered = True


def switch_off_at_exit() -> None:
    """Switch tracing off for every vhost this process still taps, unless taps of other
    processes are on it. Plain blocking HTTP, no event loop: the Lab's loop thread may be
    gone already. Our own tap queues are still there (their connection closes after this)."""
    with _holds_lock:
        holds = list(_holds.values())
        _holds.clear()
    for hold in holds:
        api, vhost = hold.management, hold.vhost
        name = quote(vhost, safe="")
        try:
            bound = api.call_blocking(
                "GET", f"exchanges/{name}/{quote(TRACE_EXCHANGE)}/bindings/source"
            )
            others = [
                b["destination"]
                for b in bound or []
                if TAP_QUEUE.match(b.get("destination", "")) and b["destination"] not in hold.queues
            ]
            owner = api.call_blocking(
                "GET", f"global-parameters/{quote(marker_name(vhost), safe='')}"
            )
            if others or not (owner or hold.switched_on):
                continue
            info = api.call_blocking("GET", f"vhosts/{name}")
            if info is not None and info.get("tracing"):
                api.set_tracing_blocking(vhost, False)
            elif info is not None:
                continue  # off already, by someone else: their marker is theirs to delete
            # switched off, or the mesh is gone: the marker goes
            api.call_blocking("DELETE", f"global-parameters/{quote(marker_name(vhost), safe='')}")
        except Exception as exc:  # at exit: say it, do not raise
            log.warning("could not switch the firehose of %s off at exit: %s", vhost, exc)
