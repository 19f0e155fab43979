"""``%nuropb check`` and ``%nuropb mock``: where a service breaks (lab/check/), and a stand-in
for it (lab/mock/). Each sub-command is one function of the magic and its line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from .magic_args import parse_json_object, parse_value

if TYPE_CHECKING:
    from .magics import NuropbMagics

__all__ = ["check", "mock"]


@magic_arguments()
@argument("target", help="SERVICE or SERVICE.METHOD")
@argument("-n", type=int, dest="n", help="inputs that fit, per method (as many that do not)")
@argument("--seed", type=int, help="repeat a run: the seed its headline names")
@argument("--methods", help="only these methods of SERVICE, comma-separated")
@argument("--timeout", type=float, help="seconds each call waits (default 5)")
@argument("-c", "--concurrency", type=int, help="methods checked at a time (default 4)")
@argument("--max-time", type=float, help="seconds the whole check may take (default 300)")
@argument("--context", help="the calls' context, a JSON object (a token)")
@argument("--background", action="store_true", help="return at once (the view has Stop)")
@argument("-o", "--output", help="store the result (with --background: the run) here")
@argument("--alias")
def check(magics: NuropbMagics, rest: str, cell: str | None) -> Any:
    args = magics._only_args(check, rest)
    given = {
        "max_examples": args.n,
        "seed": args.seed,
        "methods": [m.strip() for m in args.methods.split(",") if m.strip()]
        if args.methods
        else None,
        "timeout": args.timeout,
        "concurrency": args.concurrency,
        "max_time": args.max_time,
        "context": parse_json_object(args.context, "--context") if args.context else None,
        "alias": args.alias,
    }
    run = magics.lab.prepare_check(args.target, **{k: v for k, v in given.items() if v is not None})
    magics.say(run.announcement())  # before anything is sent but its describe
    return magics._follow(run, args.output, args.background)


@magic_arguments()
@argument("service")
@argument("--from", dest="source", help="a tap or its df ($VAR or VAR), or a file tap.save wrote")
@argument("--delay", type=float, help="milliseconds before each answer")
@argument("--error-rate", type=float, default=0.0, help="the share of answers that fail (0-1)")
@argument("--replace", action="store_true", help="start beside the real service's instances")
@argument("--seed", type=int, help="of the injected failures")
@argument("--stop", action="store_true", help="stop the mock of SERVICE")
@argument("-o", "--output", help="store the mock here")
@argument("--alias")
def mock(magics: NuropbMagics, rest: str, cell: str | None) -> Any:
    args = magics._only_args(mock, rest)
    connection = magics.lab.connection(args.alias)
    if args.stop:
        running = connection.mocks.get(args.service)
        if running is None:
            raise UsageError(f"no mock of {args.service!r} on {connection.alias}")
        running.stop()
        magics.say(f"stopped the mock of {args.service}")
        return None
    source: Any = None
    if args.source is not None:
        name = args.source.removeprefix("$")
        if name.isidentifier() and name in magics._namespace:
            source = parse_value(f"${name}", magics._namespace)
        elif Path(args.source).is_file():
            source = args.source
        else:
            raise UsageError(f"--from: no variable or file named {args.source!r}")
    made = magics.lab.mock(
        args.service,
        source,
        delay=None if args.delay is None else args.delay / 1000,
        error_rate=args.error_rate,
        replace=args.replace,
        seed=args.seed,
        alias=args.alias,
    )
    magics.say(f"mocking {args.service} on {connection.alias}: {made!r}")
    for note in made.notes:
        magics.say(f"note: {note}", error=True)
    magics._store(args.output, made)
    return None
