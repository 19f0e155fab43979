"""Sub-commands for where a service breaks and a stand-in for it: check (lab/check/ does the
work) and mock (lab/mock/)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from .args import parse_json_object, parse_value
from .command import Context, say, subcommand

__all__ = ["check", "mock"]


@subcommand("check", completes="service[.method]")
@argument("target", metavar="SERVICE[.METHOD]")
@argument("-n", type=int, dest="n", metavar="N", help="inputs that fit, per method (as many not)")
@argument("--seed", type=int, metavar="S", help="repeat a run: the seed its headline names")
@argument("--methods", metavar="M,...", help="only these methods of SERVICE, comma-separated")
@argument("--timeout", type=float, metavar="S", help="seconds each call waits (default 5)")
@argument("-c", "--concurrency", type=int, metavar="C", help="methods at a time (default 4)")
@argument("--max-time", type=float, metavar="S", help="seconds the check may take (default 300)")
@argument("--context", metavar="JSON", help="the calls' context, a JSON object (a token)")
@argument("--background", action="store_true", help="return at once (the view has Stop)")
@argument("-o", "--output", metavar="VAR", help="store the result (--background: the run)")
@argument("--alias", help="the connection (default: the current)")
def check(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """Check SERVICE (or one method) against its description: findings with reproducers.

    Calls it for real with inputs that fit its nuropb_describe and inputs that do not
    (Hypothesis), shrinking what breaks; says what it will call first. Ctrl-C stops it,
    keeping what was found."""
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    given = {
        "max_examples": args.n,
        "seed": args.seed,
        "methods": methods,
        "timeout": args.timeout,
        "concurrency": args.concurrency,
        "max_time": args.max_time,
        "context": parse_json_object(args.context, "--context") if args.context else None,
        "alias": args.alias,
    }
    run = ctx.lab.prepare_check(args.target, **{k: v for k, v in given.items() if v is not None})
    say(run.announcement())  # before anything is sent but its describe
    return ctx.follow(run, args.output, args.background)


@subcommand("mock", completes="service")
@argument("service", metavar="SERVICE")
@argument(
    "--from",
    dest="source",
    metavar="VAR|PATH",
    help="a tap or its df ($VAR or VAR), or a file tap.save wrote (default: the newest tap)",
)
@argument("--delay", type=float, metavar="MS", help="milliseconds before each answer")
@argument(
    "--error-rate", type=float, default=0.0, metavar="P", help="the share of answers that fail, 0-1"
)
@argument("--replace", action="store_true", help="start beside the real service's instances")
@argument("--seed", type=int, metavar="S", help="of the injected failures")
@argument("--stop", action="store_true", help="stop the mock of SERVICE")
@argument("-o", "--output", metavar="VAR", help="store the mock here")
@argument("--alias", help="the connection (default: the current)")
def mock(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> None:
    """Serve a stand-in for SERVICE that answers from a recording (a tap).

    Recorded calls get their recorded answers, others an error naming the nearest recorded
    call; --stop takes it off the mesh."""
    connection = ctx.lab.connection(args.alias)
    if args.stop:
        running = connection.mocks.get(args.service)
        if running is None:
            raise UsageError(f"no mock of {args.service!r} on {connection.alias}")
        running.stop()
        say(f"stopped the mock of {args.service}")
        return
    source: Any = None
    if args.source is not None:
        name = args.source.removeprefix("$")
        if name.isidentifier() and name in ctx.namespace:
            source = parse_value(f"${name}", ctx.namespace)
        elif Path(args.source).is_file():
            source = args.source
        else:
            raise UsageError(f"--from: no variable or file named {args.source!r}")
    made = ctx.lab.mock(
        args.service,
        source,
        delay=None if args.delay is None else args.delay / 1000,
        error_rate=args.error_rate,
        replace=args.replace,
        seed=args.seed,
        alias=args.alias,
    )
    say(f"mocking {args.service} on {connection.alias}: {made!r}")
    for note in made.notes:
        say(f"note: {note}", error=True)
    ctx.store(args.output, made)
