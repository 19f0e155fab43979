"""Sub-commands that send: call, command, publish, replay; and history, what was called."""

from __future__ import annotations

import argparse
import json
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from .args import parse_json_object, parse_params, parse_value, unquote
from .command import Context, either, say, subcommand

__all__ = ["ENCRYPTION", "call", "command", "encryption", "history", "publish", "replay"]

# --encrypt | --plain, as call, command, bench and capacity take them (encryption() reads them)
ENCRYPTION = either(
    argument("--encrypt", action="store_true", help="encrypt even if the method does not ask"),
    argument("--plain", action="store_true", help="do not encrypt (refused for encrypted ones)"),
)


def encryption(args: argparse.Namespace) -> bool | None:
    """What --encrypt / --plain ask: True, False, or None (as the method requires)."""
    return True if args.encrypt else (False if args.plain else None)


def _send(
    ctx: Context, kind: str, args: argparse.Namespace, rest: list[str], cell: str | None
) -> Any:
    """A call or a command: the params from ``k=v`` and the cell body, then send."""
    params = ctx.params_for(args.target, rest, args.alias, retype=not args.no_check)
    if cell is not None and cell.strip():
        params = {**parse_json_object(cell, "the cell (the params)"), **params}
    options = {
        "timeout": args.timeout,
        "encrypt": encryption(args),
        "context": parse_json_object(args.context, "--context") if args.context else None,
        "trace_id": args.trace,
        "alias": args.alias,
        "check": not args.no_check,
    }
    if kind == "command":
        ctx.lab.command(args.target, params, **options)
        return None
    return ctx.lab.call(args.target, params, raw=args.raw, **options)


def _sending(handler: Any) -> Any:
    """The arguments call and command share."""
    for add in reversed(
        [
            argument("target", metavar="SERVICE.METHOD"),
            argument("--timeout", type=float, metavar="S", help="seconds to wait for the answer"),
            ENCRYPTION,
            argument("--context", metavar="JSON", help="the request context, a JSON object"),
            argument("--trace", metavar="ID", help="trace id"),
            argument("--no-check", action="store_true", help="send params as written, unchecked"),
            argument("--alias", help="the connection (default: the current)"),
        ]
    ):
        handler = add(handler)
    return handler


@subcommand("call", rest="[k=v]...", cell=True, completes="target")
@_sending
@argument("--raw", action="store_true", help="return the whole response")
@argument("-o", "--output", metavar="VAR", help="store the result in this variable")
def call(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """Call SERVICE.METHOD with k=v params and show the answer.

    A value is JSON when it parses, $name a notebook variable, 'text' text as written; a
    bare value goes as its text where the method takes a str. %%nuropb call takes the
    params as a JSON object in the cell."""
    result = _send(ctx, "call", args, rest, cell)
    ctx.store(args.output, result)
    return None if args.output else result


@subcommand("command", rest="[k=v]...", cell=True, completes="target")
@_sending
def command(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> None:
    """Send a command to SERVICE.METHOD (no answer); says so once the broker routed it.

    Params as for call."""
    _send(ctx, "command", args, rest, cell)
    say(f"command {args.target} sent")


@subcommand("publish", cell=True)
@argument("topic", metavar="TOPIC")
@argument("event", nargs="?", metavar="JSON", help="the event (or the cell body)")
@argument("--alias", help="the connection (default: the current)")
def publish(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> None:
    """Publish an event, a JSON value, on TOPIC.

    %%nuropb publish TOPIC takes the event from the cell."""
    text = args.event if cell is None else cell
    if not text or not text.strip():
        raise UsageError("publish needs an event: %nuropb publish TOPIC JSON")
    try:
        event = json.loads(unquote(text.strip()))
    except ValueError:
        raise UsageError(f"the event is not valid JSON: {text.strip()[:80]}") from None
    ctx.lab.publish(args.topic, event, alias=args.alias)
    say(f"published to {args.topic}")


@subcommand("history")
@argument("-n", type=int, dest="n", metavar="N", help="only the last N calls")
def history(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """Every call of this session: time, target, params, ok, error, latency_ms, ..."""
    return ctx.lab.history(args.n)


@subcommand("replay", rest="[k=v]...")
@argument(
    "request", metavar="ID|$ROW", help="a correlation id (of a tap's row or a dead letter) or $ROW"
)
@argument("--timeout", type=float, metavar="S", help="seconds to wait for the answer")
@argument("--context", metavar="JSON", help="a new request context (JSON object)")
@argument("--trace", metavar="ID", help="a new trace id")
@argument("-o", "--output", metavar="VAR", help="store the answer in this variable")
@argument("--alias", help="the connection (default: the current)")
def replay(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """Send a captured (or dead-lettered) request again, its params edited with k=v."""
    edits = parse_params(rest, ctx.namespace)
    row: Any = args.request
    if row.startswith("$"):
        row = parse_value(row, ctx.namespace)
    context = parse_json_object(args.context, "--context") if args.context else None
    answer = ctx.lab.replay(
        row, edits, context=context, trace_id=args.trace, timeout=args.timeout, alias=args.alias
    )
    ctx.store(args.output, answer)
    return None if args.output else answer
