"""``%nuropb bench``, ``capacity`` and ``benches``: load and latency (lab/bench.py,
lab/capacity.py). Each sub-command is one function of the magic and its line."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from .magic_args import parse_json_object, parse_numbers

if TYPE_CHECKING:
    from .magics import NuropbMagics

__all__ = ["bench", "benches", "capacity"]

F = TypeVar("F", bound=Callable[..., Any])

# the options a bench and a capacity sweep share (load_options reads them)
_LOAD_ARGUMENTS = (
    argument("--timeout", type=float, help="seconds each call waits at most"),
    argument("--command", action="store_true", help="send commands (confirmed), not requests"),
    argument("--encrypt", action="store_true", help="encrypt even if the method does not ask"),
    argument("--plain", action="store_true", help="do not encrypt (refused for encrypted ones)"),
    argument("--context", help="the request context, a JSON object"),
    argument("--no-check", action="store_true", help="send params that do not fit the method"),
    argument("--alias"),
)


def load_arguments(func: F) -> F:
    for add in reversed(_LOAD_ARGUMENTS):
        func = add(func)
    return func


def load_options(args: Any) -> dict[str, Any]:
    """What :data:`_LOAD_ARGUMENTS` read, as ``lab.bench`` / ``lab.capacity`` options."""
    if args.encrypt and args.plain:
        raise UsageError("--encrypt and --plain contradict each other")
    return {
        "encrypt": True if args.encrypt else (False if args.plain else None),
        "kind": "command" if args.command else "call",
        "context": parse_json_object(args.context, "--context") if args.context else None,
        "check": not args.no_check,
        "alias": args.alias,
    }


@magic_arguments()
@argument("target", help="SERVICE.METHOD")
@argument("-n", type=int, dest="n", help="calls to make (default 1,000)")
@argument("--duration", type=float, help="seconds to run, instead of -n")
@argument("-c", "--concurrency", type=int, help="in flight (default 10; the cap with --rate)")
@argument("--rate", type=float, help="calls/s at fixed intended times (the open model)")
@argument("--warmup", type=int, default=0, help="calls made first, not measured")
@argument("--label", help="the run's name in lab.benches()")
@argument("--background", action="store_true", help="return at once (the view has Stop)")
@argument("-o", "--output", help="store the result (with --background: the run) here")
@load_arguments
def bench(magics: NuropbMagics, rest: str, cell: str | None) -> Any:
    args, extra = magics._args(bench, rest)
    run = magics.lab.start_bench(
        args.target,
        magics._params_for(args.target, extra, args.alias, retype=not args.no_check),
        n=args.n,
        duration=args.duration,
        concurrency=args.concurrency,
        rate=args.rate,
        warmup=args.warmup,
        timeout=args.timeout,
        label=args.label,
        **load_options(args),
    )
    return magics._follow(run, args.output, args.background)


@magic_arguments()
@argument("target", help="SERVICE.METHOD")
@argument("--concurrency", help="the in-flight counts to step through (default 1,2,4,...,64)")
@argument("--rate", help="or the rates (calls/s) to step through: the open model")
@argument("-n", type=int, dest="n", help="calls per step, instead of --duration")
@argument("--duration", type=float, help="seconds per step (default 2)")
@argument("--label", help="the sweep's name (its steps are LABEL c=N in lab.benches())")
@argument("-o", "--output", help="store the result here")
@load_arguments
def capacity(magics: NuropbMagics, rest: str, cell: str | None) -> Any:
    args, extra = magics._args(capacity, rest)
    options: dict[str, Any] = {
        "concurrency": parse_numbers(args.concurrency, int, "--concurrency"),
        "rate": parse_numbers(args.rate, float, "--rate"),
        "label": args.label,
        **load_options(args),
    }
    for name in ("n", "duration", "timeout"):  # absent: the sweep's and the Lab's defaults
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    params = magics._params_for(args.target, extra, args.alias, retype=not args.no_check)
    result = magics.lab.capacity(args.target, params, **options)
    magics._store(args.output, result)
    if args.output:
        magics.say(f"{result.label}: {result.explain()}")
        return None
    return result


def benches(magics: NuropbMagics, rest: str, cell: str | None) -> Any:
    if rest.strip():
        raise UsageError("%nuropb benches takes no arguments")
    return magics.lab.benches()
