"""The sub-commands of ``%nuropb``, in the order ``%nuropb help`` lists them.

Adding one: write its handler with ``@subcommand`` in the module of its group (admin,
discovery, calls, watch, load, check; or a new module) and put it in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from . import admin, calls, check, discovery, load, watch
from .command import Context, SubCommand, say, subcommand

__all__ = ["SUBCOMMANDS", "show_help"]


@subcommand("help", completes="subcommand")
@argument("subcommand", nargs="?", metavar="SUB", help="every option of this sub-command")
def show_help(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> None:
    """The sub-commands, or every option of one."""
    if args.subcommand is None:
        width = max(len(c.synopsis(full=False)) for c in SUBCOMMANDS.values())
        lines = [f"{c.synopsis(full=False):<{width}}  {c.summary}" for c in SUBCOMMANDS.values()]
        say("\n".join([*lines, "%nuropb help SUB shows every option of SUB."]))
        return
    found = SUBCOMMANDS.get(args.subcommand)
    if found is None:
        raise UsageError(f"no sub-command {args.subcommand!r}; one of: {', '.join(SUBCOMMANDS)}")
    say(found.help().rstrip())


SUBCOMMANDS: dict[str, SubCommand] = {
    command.name: command
    for command in (
        admin.connect,
        admin.status,
        discovery.services,
        discovery.describe,
        calls.call,
        calls.command,
        calls.publish,
        watch.tail,
        discovery.keys,
        calls.history,
        discovery.browse,
        admin.serve,
        admin.disconnect,
        admin.dlq,
        load.bench,
        load.capacity,
        load.benches,
        check.check,
        check.mock,
        watch.tap,
        watch.graph,
        calls.replay,
        admin.firehose,
        show_help,
    )
}
