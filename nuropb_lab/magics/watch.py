"""Sub-commands that watch a mesh: tail (events), tap (the wire), graph (the service graph)."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic_arguments import argument

from ..lab.tap.bounds import DEFAULT_MAX_DURATION
from .command import Context, say, subcommand

__all__ = ["graph", "tail", "tap"]


def seconds(text: str) -> float | None:
    """``--max-duration``: seconds, or ``none`` for no limit (checked by the tap)."""
    return None if text.strip().lower() == "none" else float(text)


@subcommand("tail")
@argument("patterns", nargs="*", metavar="PATTERN", help="topics (* one word, # any); default #")
@argument("--max", type=int, dest="max_rows", metavar="N", help="rows kept (newest)")
@argument("--widget", action="store_true", help="show the live tail view")
@argument("-o", "--output", metavar="VAR", help="store the tail in this variable")
@argument("--alias", help="the connection (default: the current)")
def tail(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """A live tail of events: .df, .rates(), .pause(), .stop()."""
    made = ctx.lab.tail(*args.patterns, max_rows=args.max_rows, alias=args.alias)
    if made.replaced:
        say(f"stopped the tail of {' '.join(made.patterns)} on {made.alias} started before")
    ctx.store(args.output, made)
    return made.widget() if args.widget else made


@subcommand("tap", completes="services")
@argument("services", nargs="*", metavar="SERVICE", help="only calls to or from these")
@argument("--events", action="store_true", help="events too (default when no service named)")
@argument("--no-firehose", action="store_true", help="a queue of its own: no responses")
@argument("--max", type=int, dest="max_rows", metavar="N", help="messages kept (newest)")
@argument(
    "--max-duration",
    type=seconds,
    default=DEFAULT_MAX_DURATION,
    metavar="S",
    help=f"on the firehose: stop after S seconds (default {DEFAULT_MAX_DURATION:.0f};"
    " none: no limit)",
)
@argument("--max-records", type=int, metavar="N", help="stop after N records taken in")
@argument("--widget", action="store_true", help="show the live tap view")
@argument("-o", "--output", metavar="VAR", help="store the tap in this variable")
@argument("--alias", help="the connection (default: the current)")
def tap(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """The wire tap: every request, response, command and event.

    .df, .calls, .stats(), .graph(), .trace(id); through the firehose (responses and
    latencies too) when the user may switch it on, else a queue of its own."""
    made = ctx.lab.tap(
        *args.services,
        events=True if args.events else None,
        firehose=False if args.no_firehose else None,
        max_rows=args.max_rows,
        alias=args.alias,
        max_duration=args.max_duration,
        max_records=args.max_records,
    )
    if made.notice:  # a tap without the firehose is a lesser one: said as a warning
        say(f"note: {made.notice}", error=made.mode == "queue")
    if made.replaced:
        what = " ".join(made.services) or "the mesh"
        say(f"stopped the tap of {what} on {made.alias} started before")
    ctx.store(args.output, made)
    return made.widget() if args.widget else made


@subcommand("graph")
@argument("--window", type=float, default=60.0, metavar="S", help="seconds of traffic shown")
@argument("--static", action="store_true", help="a picture, not a live widget")
@argument("--alias", help="the connection (default: the current)")
def graph(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """The live service graph: calls and events between services (starts a tap if none)."""
    lab = ctx.lab
    alias = lab.connection(args.alias).alias
    taps = [t for t in lab.taps if t.alias == alias and not t.stopped]
    if taps:
        made = taps[-1]
    else:
        made = lab.tap(alias=args.alias)
        say(f"started a tap on {alias} for the graph ({made.mode}): lab.taps[-1].stop() stops it")
        if made.notice:
            say(f"note: {made.notice}", error=True)
    if args.static:
        return made.graph(window=args.window)
    return made.graph_view(window=args.window)
