"""Sub-commands that manage connections and what the Lab puts on a mesh: connect, status,
disconnect, serve, dlq, firehose."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from ..lab import check_servable, exposed_methods, service_name_of
from .command import Context, either, say, subcommand

__all__ = ["connect", "disconnect", "dlq", "firehose", "serve", "status"]


@subcommand("connect")
@argument(
    "url",
    nargs="*",
    metavar="URL",
    help="AMQP URL with the mesh (vhost), or one per node of a cluster;"
    " default $NUROPB_AMQP_URL (comma-separated for several)",
)
@argument("--alias", help="name of the connection (default: the mesh name)")
@argument("--configure", action="store_true", help="create the mesh when missing")
@argument(
    "--read-only",
    action="store_true",
    help="refuse whatever would send or change something on the mesh (calls, commands,"
    " events, serve, bench, check, mock, replay, the firehose switch)",
)
def connect(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> None:
    """Connect to a mesh and make it the current connection."""
    url = args.url[0] if len(args.url) == 1 else (args.url or None)
    before = ctx.lab.connections
    connection = ctx.lab.connect(
        url, alias=args.alias, configure=args.configure, read_only=args.read_only
    )
    api = connection.api
    where = api.nodes.position(api.target)  # which of several nodes
    mode = ", read-only" if connection.read_only else ""
    said = f"{connection.url}{f' ({where})' if where else ''} as {connection.alias!r}{mode}"
    if before.get(connection.alias) is connection:  # the same connect, run again
        say(f"already connected to {said}: using that connection")
        return
    say(f"connected to {said}")


@subcommand("status")
@argument("--widget", action="store_true", help="a status line that updates on its own")
def status(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """The connections: URL, node, state, mode (read-only or not), reconnects, calls in
    flight, tails, taps, firehose, and each firehose tap's age and time left."""
    if args.widget:
        from ..widgets import ConnectionStatus

        return ConnectionStatus(ctx.lab)
    frame = ctx.lab.status()
    say(f"redaction: {frame.attrs['redaction']}")
    if frame.attrs.get("notice"):
        say(f"note: {frame.attrs['notice']}", error=True)
    return frame


@subcommand("disconnect", completes="alias")
@either(
    argument("alias", nargs="?", metavar="ALIAS", help="the connection (default: the current)"),
    argument("--all", action="store_true", help="close every connection"),
)
def disconnect(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> None:
    """Close a connection, with its tails, taps, mocks and served objects."""
    closed = ctx.lab.disconnect(args.alias, all=args.all)
    say(f"disconnected {', '.join(closed) or 'nothing'}")


@subcommand("serve")
@argument("object", metavar="OBJECT", help="a variable of the notebook")
@argument("--name", help="service name (default: its _service_name or class name)")
@argument("--unsafe", action="store_true", help="serve a module, class or builtin too")
@argument("--temporary", action="store_true", help="delete its queue when it stops")
@argument("--alias", help="the connection (default: the current)")
def serve(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> None:
    """Put a notebook object on the mesh as a service (says what it exposes first)."""
    if args.object not in ctx.namespace:
        raise UsageError(f"no variable named {args.object!r} in the notebook")
    obj = ctx.namespace[args.object]
    check_servable(obj, args.unsafe)
    methods = exposed_methods(obj)
    alias = ctx.lab.connection(args.alias).alias
    say(f"exposing {len(methods)} method(s) of {args.object}: {', '.join(methods) or 'none'}")
    served = ctx.lab.connection(args.alias).served
    name = args.name or service_name_of(obj)
    again = " (in place of the object served before)" if name in served else ""
    api = ctx.lab.serve(
        obj, name=name, alias=args.alias, allow_any=args.unsafe, temporary=args.temporary
    )
    say(f"serving {args.object} as {api.service_name!r} on {alias}{again}")


@subcommand("dlq")
@argument("--limit", type=int, default=50, metavar="N", help="at most this many messages")
@argument("--consume", action="store_true", help="remove the messages shown from the queue")
@argument("--queue", help="the dead-letter queue (default: the one the DLX feeds)")
@argument("--alias", help="the connection (default: the current)")
def dlq(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """The dead-letter queue, and why each message is there (read, not consumed)."""
    frame = ctx.lab.dead_letters(
        args.limit, consume=args.consume, alias=args.alias, queue=args.queue
    )
    if frame.attrs.get("redacted"):
        say(f"{frame.attrs['redacted']} value(s) redacted")
    return frame


@subcommand("firehose")
@argument("action", nargs="?", choices=("off",), metavar="off", help="switch the firehose off")
@argument("--alias", help="the connection (default: the current)")
def firehose(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> None:
    """The mesh's firehose: on or off, and for whom; off switches it off."""
    if args.action == "off":
        state = ctx.lab.firehose_off(alias=args.alias)
    else:
        state = ctx.lab.firehose(alias=args.alias)
    say(f"firehose of {state.vhost!r}: {state.describe()}")
