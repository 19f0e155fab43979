"""Sub-commands for load and latency: bench, capacity, benches (lab/bench.py does the work)."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic_arguments import argument

from .args import parse_json_object, parse_numbers
from .calls import ENCRYPTION, encryption
from .command import Context, say, subcommand

__all__ = ["bench", "benches", "capacity"]


def _loading(handler: Any) -> Any:
    """The arguments a bench and a capacity sweep share (:func:`_options` reads them)."""
    for add in reversed(
        [
            argument("--timeout", type=float, metavar="S", help="seconds each call waits at most"),
            argument("--command", action="store_true", help="send commands (confirmed)"),
            ENCRYPTION,
            argument("--context", metavar="JSON", help="the request context, a JSON object"),
            argument("--no-check", action="store_true", help="send params as written, unchecked"),
            argument("--alias", help="the connection (default: the current)"),
        ]
    ):
        handler = add(handler)
    return handler


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """What :func:`_loading` read, as ``lab.bench`` / ``lab.capacity`` options."""
    return {
        "encrypt": encryption(args),
        "kind": "command" if args.command else "call",
        "context": parse_json_object(args.context, "--context") if args.context else None,
        "check": not args.no_check,
        "alias": args.alias,
    }


@subcommand("bench", rest="[k=v]...", completes="target")
@argument("target", metavar="SERVICE.METHOD")
@argument("-n", type=int, dest="n", metavar="N", help="calls to make (default 1,000)")
@argument("--duration", type=float, metavar="S", help="seconds to run, instead of -n")
@argument("-c", "--concurrency", type=int, metavar="C", help="in flight (default 10)")
@argument("--rate", type=float, metavar="R", help="calls/s at fixed intended times (open model)")
@argument("--warmup", type=int, default=0, metavar="N", help="calls made first, not measured")
@argument("--label", metavar="L", help="the run's name in lab.benches()")
@argument("--background", action="store_true", help="return at once (the view has Stop)")
@argument("-o", "--output", metavar="VAR", help="store the result (--background: the run)")
@_loading
def bench(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """Put SERVICE.METHOD under load with k=v params: rate, errors by class, p50..p99.9.

    Closed model (-c calls in flight) or open (--rate: latency counted from the intended
    send); Ctrl-C stops a run and keeps what it measured."""
    run = ctx.lab.start_bench(
        args.target,
        ctx.params_for(args.target, rest, args.alias, retype=not args.no_check),
        n=args.n,
        duration=args.duration,
        concurrency=args.concurrency,
        rate=args.rate,
        warmup=args.warmup,
        timeout=args.timeout,
        label=args.label,
        **_options(args),
    )
    return ctx.follow(run, args.output, args.background)


@subcommand("capacity", rest="[k=v]...", completes="target")
@argument("target", metavar="SERVICE.METHOD")
@argument("--concurrency", metavar="C1,C2,...", help="in-flight counts (default 1,2,4,...,64)")
@argument("--rate", metavar="R1,R2,...", help="or rates (calls/s): the open model")
@argument("-n", type=int, dest="n", metavar="N", help="calls per step, instead of --duration")
@argument("--duration", type=float, metavar="S", help="seconds per step (default 2)")
@argument("--label", metavar="L", help="the sweep's name (steps are LABEL c=N in lab.benches())")
@argument("-o", "--output", metavar="VAR", help="store the result here")
@_loading
def capacity(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """A bench at each load: the throughput-latency curve of SERVICE.METHOD and its knee."""
    options: dict[str, Any] = {
        "concurrency": parse_numbers(args.concurrency, int, "--concurrency"),
        "rate": parse_numbers(args.rate, float, "--rate"),
        "label": args.label,
        **_options(args),
    }
    for name in ("n", "duration", "timeout"):  # absent: the sweep's and the Lab's defaults
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    params = ctx.params_for(args.target, rest, args.alias, retype=not args.no_check)
    result = ctx.lab.capacity(args.target, params, **options)
    ctx.store(args.output, result)
    if args.output:
        say(f"{result.label}: {result.explain()}")
        return None
    return result


@subcommand("benches")
def benches(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """Every bench run of this session, side by side."""
    return ctx.lab.benches()
