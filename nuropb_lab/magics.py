"""``%nuropb`` / ``%%nuropb``: argument parsing and display over the Lab, nothing else.

Every sub-command is one call on :class:`nuropb_lab.lab.Lab`. Expected failures (not
delivered, timeout, authorization, bad arguments, unknown alias) print one line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Enum, Float, Int, TraitError, Unicode, observe, validate

from .lab import Lab, LabError, check_servable, exposed_methods, get_lab
from .lab.params import ParamError, method_spec, texts_where_described
from .magic_args import (
    parse_json_object,
    parse_numbers,
    parse_params,
    parse_value,
    split_args,
    unquote,
)
from .magic_complete import completions
from .mesh import KnownKeysError, NuropbException, limits, mask_secrets
from .mesh.errors import error_name

__all__ = ["NuropbMagics"]

SUBCOMMANDS = (
    "connect",
    "status",
    "services",
    "describe",
    "call",
    "command",
    "publish",
    "tail",
    "keys",
    "history",
    "browse",
    "serve",
    "disconnect",
    "dlq",
    "bench",
    "capacity",
    "benches",
    "tap",
    "graph",
    "replay",
    "firehose",
    "help",
)
F = TypeVar("F", bound=Callable[..., Any])
# what is said in one line: the mesh's errors, the Lab's usage errors, a known-keys file that
# cannot be used, and waits given up; anything else is a bug and shows its traceback
ONE_LINE_ERRORS = (NuropbException, LabError, KnownKeysError, TimeoutError)


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


def _parser(func: Callable[..., Any]) -> Any:
    return func.parser  # type: ignore[attr-defined]


def say(text: str, error: bool = False) -> None:
    """One line to the notebook (errors to stderr)."""
    print(mask_secrets(text), file=sys.stderr if error else sys.stdout)


@magics_class
class NuropbMagics(Magics):
    """The ``%nuropb`` magic; settings: ``%config NuropbMagics.timeout = 10``."""

    timeout = Float(30.0, help="Seconds a call waits for its answer.").tag(config=True)
    describe_timeout = Float(2.0, help="Seconds discovery waits for each describe.").tag(
        config=True
    )
    tail_max_rows = Int(10_000, help="Events a tail keeps (newest).").tag(config=True)
    management_url = Unicode(
        None, allow_none=True, help="Management API URL (default: the broker's host, port 15672)."
    ).tag(config=True)
    failover_strategy = Enum(
        ["round-robin", "shuffle"],
        "round-robin",
        help="Order to try several nodes in: as given (round-robin), or shuffled.",
    ).tag(config=True)

    def __init__(self, shell: Any = None, lab: Lab | None = None, **kwargs: Any) -> None:
        self.lab = lab or get_lab()  # first: loading the shell's config applies settings
        super().__init__(shell=shell, **kwargs)
        self._apply_settings()
        self._commands: dict[str, Callable[[str, str | None], Any]] = {
            name: getattr(self, f"_{name}") for name in SUBCOMMANDS
        }

    # --- settings ---------------------------------------------------------------------------

    @validate("timeout", "describe_timeout")
    def _positive_seconds(self, proposal: Any) -> float:
        if proposal["value"] <= 0:
            raise TraitError(f"{proposal['trait'].name} must be > 0 seconds")
        return float(proposal["value"])

    @validate("tail_max_rows")
    def _positive_rows(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise TraitError("tail_max_rows must be at least 1")
        return int(proposal["value"])

    @observe("timeout", "describe_timeout", "tail_max_rows", "management_url", "failover_strategy")
    def _settings_changed(self, _change: Any) -> None:
        self._apply_settings()

    def _apply_settings(self) -> None:
        self.lab.timeout = self.timeout
        self.lab.describe_timeout = self.describe_timeout
        self.lab.tail_max_rows = self.tail_max_rows
        self.lab.management_url = self.management_url
        self.lab.failover_strategy = self.failover_strategy

    # --- dispatch -------------------------------------------------------------------------------

    @no_var_expand
    @line_cell_magic
    def nuropb(self, line: str, cell: str | None = None) -> Any:
        """Work with a nuropb mesh: ``%nuropb help`` lists the sub-commands."""
        name, _, rest = line.strip().partition(" ")
        handler = self._commands.get(name or "help")
        if handler is None:
            raise UsageError(f"unknown sub-command {name!r}; one of: {', '.join(SUBCOMMANDS)}")
        if cell is not None and name not in ("call", "command", "publish"):
            raise UsageError(f"%%nuropb {name} takes no cell body")
        try:
            return handler(rest, cell)
        except ONE_LINE_ERRORS as exc:
            say(limits.clip_text(f"{error_name(exc)}: {exc}", limits.ERROR_BYTES), error=True)
            return None

    def _args(self, func: Callable[..., Any], rest: str) -> tuple[Any, list[str]]:
        """Parse options anywhere in the line; the remaining tokens are returned."""
        args, extra = _parser(func).parse_known_intermixed_args(split_args(rest))
        bad = [t for t in extra if t.startswith("-") and "=" not in t]
        if bad:
            raise UsageError(f"unknown option {bad[0]}")
        return args, extra

    def _only_args(self, func: Callable[..., Any], rest: str) -> Any:
        """Parse a sub-command that takes no ``name=value`` parameters."""
        args, extra = self._args(func, rest)
        if extra:
            raise UsageError(f"unexpected arguments: {' '.join(extra)}")
        return args

    @property
    def _namespace(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def _store(self, name: str | None, value: Any) -> None:
        if name:
            if not name.isidentifier():
                raise UsageError(f"-o needs a variable name, got {name!r}")
            self._namespace[name] = value

    # --- sub-commands ---------------------------------------------------------------------------

    def _help(self, rest: str, cell: str | None) -> None:
        say(
            "%nuropb connect [URL] [URL ...] [--alias A] | status [--widget] |"
            " services [--refresh] | describe SERVICE [METHOD] | call SERVICE.METHOD k=v ..."
            " [--timeout S] [--encrypt|--plain] [--context JSON] [--trace ID] [--raw] [-o VAR] |"
            " command SERVICE.METHOD k=v ... | publish TOPIC JSON | tail [PATTERN ...] [--max N]"
            " [-o VAR] | keys [SERVICE] | history [-n N] | browse | serve OBJECT [--name N]"
            " [--unsafe] | disconnect [ALIAS | --all] | dlq [--limit N] [--consume] [--queue Q] |"
            " bench SERVICE.METHOD k=v ... [-n N | --duration S] [-c C] [--rate R] [--label L]"
            " [--warmup N] [--command] [--no-check] [--background] [-o VAR] |"
            " capacity SERVICE.METHOD k=v ... [--concurrency 1,2,4,... | --rate R1,R2,...]"
            " [-n N | --duration S] [--label L] [-o VAR] | benches |"
            " tap [SERVICE ...] [--events] [--no-firehose] [--max N] [--widget] [-o VAR] |"
            " graph [--window S] [--static] | replay CORRELATION_ID|$ROW [k=v ...] [-o VAR] |"
            " firehose [off]"
        )

    @magic_arguments()
    @argument(
        "url",
        nargs="*",
        help="AMQP URL with the mesh (vhost), or one per node of a cluster;"
        " default $NUROPB_AMQP_URL (comma-separated for several)",
    )
    @argument("--alias", help="name of the connection (default: the mesh name)")
    @argument("--configure", action="store_true", help="create the mesh when missing")
    def _connect(self, rest: str, cell: str | None) -> None:
        args = self._only_args(self._connect, rest)
        url = args.url[0] if len(args.url) == 1 else (args.url or None)
        connection = self.lab.connect(url, alias=args.alias, configure=args.configure)
        api = connection.api
        where = api.nodes.position(api.target)  # which of several nodes
        say(
            f"connected to {connection.url}{f' ({where})' if where else ''} as {connection.alias!r}"
        )

    @magic_arguments()
    @argument("--widget", action="store_true", help="a status line that updates on its own")
    def _status(self, rest: str, cell: str | None) -> Any:
        args = self._only_args(self._status, rest)
        if args.widget:
            from .widgets import ConnectionStatus

            return ConnectionStatus(self.lab)
        frame = self.lab.status()
        if frame.attrs.get("notice"):
            say(f"note: {frame.attrs['notice']}", error=True)
        return frame

    @magic_arguments()
    @argument("--refresh", action="store_true", help="(discovery always asks the broker afresh)")
    @argument("--alias")
    def _services(self, rest: str, cell: str | None) -> Any:
        args, extra = self._args(self._services, rest)
        frame = self.lab.services(alias=args.alias, names=extra or None)
        notice = frame.attrs.get("notice")
        if notice:
            say(f"note: {notice}", error=True)
        return frame

    @magic_arguments()
    @argument("service")
    @argument("method", nargs="?")
    @argument("--refresh", action="store_true")
    @argument("--alias")
    def _describe(self, rest: str, cell: str | None) -> Any:
        args = self._only_args(self._describe, rest)
        return self.lab.describe(args.service, args.method, refresh=args.refresh, alias=args.alias)

    @magic_arguments()
    @argument("target", help="SERVICE.METHOD")
    @argument("--timeout", type=float, help="seconds to wait for the answer")
    @argument(
        "--encrypt", action="store_true", help="encrypt even if the method does not require it"
    )
    @argument("--plain", action="store_true", help="do not encrypt (refused for encrypted methods)")
    @argument("--context", help="the request context, a JSON object")
    @argument("--trace", help="trace id")
    @argument("--raw", action="store_true", help="return the whole response")
    @argument("-o", "--output", help="store the result in this variable")
    @argument("--alias")
    @argument("--no-check", action="store_true", help="send params that do not fit the method")
    def _call(self, rest: str, cell: str | None, kind: str = "call") -> Any:
        args, extra = self._args(self._call, rest)
        if args.encrypt and args.plain:
            raise UsageError("--encrypt and --plain contradict each other")
        params = self._params_for(args.target, extra, args.alias)
        if cell is not None and cell.strip():
            params = {**parse_json_object(cell, "the cell (the params)"), **params}
        context = parse_json_object(args.context, "--context") if args.context else None
        encrypt = True if args.encrypt else (False if args.plain else None)
        if kind == "command":
            self.lab.command(
                args.target,
                params,
                timeout=args.timeout,
                encrypt=encrypt,
                context=context,
                trace_id=args.trace,
                alias=args.alias,
                check=not args.no_check,
            )
            say(f"command {args.target} sent")
            return None
        result = self.lab.call(
            args.target,
            params,
            timeout=args.timeout,
            encrypt=encrypt,
            context=context,
            trace_id=args.trace,
            raw=args.raw,
            alias=args.alias,
            check=not args.no_check,
        )
        self._store(args.output, result)
        return None if args.output else result

    def _command(self, rest: str, cell: str | None) -> Any:
        return self._call(rest, cell, kind="command")

    def _publish(self, rest: str, cell: str | None) -> None:
        options, _, body = rest.strip().partition(" ")
        topic = options
        if not topic or topic.startswith("-"):
            raise UsageError("usage: %nuropb publish TOPIC JSON")
        text = body.strip() if cell is None else cell
        if not text:
            raise UsageError("publish needs an event: %nuropb publish TOPIC JSON")
        try:
            event = json.loads(unquote(text.strip()))
        except ValueError:
            raise UsageError(f"the event is not valid JSON: {text.strip()[:80]}") from None
        self.lab.publish(topic, event)
        say(f"published to {topic}")

    @magic_arguments()
    @argument("patterns", nargs="*", help="topic patterns (* one word, # any); default #")
    @argument("--max", type=int, dest="max_rows", help="rows kept (newest)")
    @argument("--widget", action="store_true", help="show the live tail view")
    @argument("-o", "--output", help="store the tail in this variable")
    @argument("--alias")
    def _tail(self, rest: str, cell: str | None) -> Any:
        args = self._only_args(self._tail, rest)
        tail = self.lab.tail(*args.patterns, max_rows=args.max_rows, alias=args.alias)
        self._store(args.output, tail)
        if args.widget:
            return tail.widget()
        return tail

    @magic_arguments()
    @argument("service", nargs="?")
    @argument("--widget", action="store_true", help="show the encryption inspector")
    @argument("--alias")
    def _keys(self, rest: str, cell: str | None) -> Any:
        args = self._only_args(self._keys, rest)
        if args.widget:
            from .widgets import KeysView

            return KeysView(self.lab, service=args.service, alias=args.alias)
        return self.lab.keys(args.service, alias=args.alias)

    @magic_arguments()
    @argument("-n", type=int, dest="n", help="only the last N calls")
    def _history(self, rest: str, cell: str | None) -> Any:
        args = self._only_args(self._history, rest)
        return self.lab.history(args.n)

    @magic_arguments()
    @argument("--alias")
    def _browse(self, rest: str, cell: str | None) -> Any:
        args = self._only_args(self._browse, rest)
        from .widgets import ServiceBrowser

        return ServiceBrowser(self.lab, alias=args.alias)

    @magic_arguments()
    @argument("object", help="a variable of the notebook")
    @argument("--name", help="service name (default: its _service_name or class name)")
    @argument("--unsafe", action="store_true", help="serve a module, class or builtin too")
    @argument("--alias")
    def _serve(self, rest: str, cell: str | None) -> None:
        args = self._only_args(self._serve, rest)
        if args.object not in self._namespace:
            raise UsageError(f"no variable named {args.object!r} in the notebook")
        obj = self._namespace[args.object]
        check_servable(obj, args.unsafe)
        methods = exposed_methods(obj)
        alias = self.lab.connection(args.alias).alias
        say(f"exposing {len(methods)} method(s) of {args.object}: {', '.join(methods) or 'none'}")
        api = self.lab.serve(obj, name=args.name, alias=args.alias, allow_any=args.unsafe)
        say(f"serving {args.object} as {api.service_name!r} on {alias}")

    @magic_arguments()
    @argument("alias", nargs="?")
    @argument("--all", action="store_true", help="close every connection")
    def _disconnect(self, rest: str, cell: str | None) -> None:
        args = self._only_args(self._disconnect, rest)
        closed = self.lab.disconnect(args.alias, all=args.all)
        say(f"disconnected {', '.join(closed) or 'nothing'}")

    @magic_arguments()
    @argument("--limit", type=int, default=50, help="at most this many messages")
    @argument("--consume", action="store_true", help="remove the messages shown from the queue")
    @argument("--queue", help="the dead-letter queue (default: the one the DLX feeds)")
    @argument("--alias")
    def _dlq(self, rest: str, cell: str | None) -> Any:
        args = self._only_args(self._dlq, rest)
        return self.lab.dead_letters(
            args.limit, consume=args.consume, alias=args.alias, queue=args.queue
        )

    # --- load and latency (lab/bench.py) -------------------------------------------------------

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
    def _bench(self, rest: str, cell: str | None) -> Any:
        args, extra = self._args(self._bench, rest)
        run = self.lab.start_bench(
            args.target,
            self._params_for(args.target, extra, args.alias),
            n=args.n,
            duration=args.duration,
            concurrency=args.concurrency,
            rate=args.rate,
            warmup=args.warmup,
            timeout=args.timeout,
            label=args.label,
            **load_options(args),
        )
        in_kernel = getattr(self.shell, "kernel", None) is not None
        if args.background:
            self._store(args.output, run)
            return run.widget() if in_kernel else run
        run.blocking = True  # the view: Stop is the kernel's interrupt while the cell waits
        if in_kernel:
            from IPython.display import display

            display(run.widget())
        result = run.wait()  # Ctrl-C stops the run and keeps what it measured
        self._store(args.output, result)
        if args.output:
            say(result.headline())
            return None
        return result

    @magic_arguments()
    @argument("target", help="SERVICE.METHOD")
    @argument("--concurrency", help="the in-flight counts to step through (default 1,2,4,...,64)")
    @argument("--rate", help="or the rates (calls/s) to step through: the open model")
    @argument("-n", type=int, dest="n", help="calls per step, instead of --duration")
    @argument("--duration", type=float, help="seconds per step (default 2)")
    @argument("--label", help="the sweep's name (its steps are LABEL c=N in lab.benches())")
    @argument("-o", "--output", help="store the result here")
    @load_arguments
    def _capacity(self, rest: str, cell: str | None) -> Any:
        args, extra = self._args(self._capacity, rest)
        options: dict[str, Any] = {
            "concurrency": parse_numbers(args.concurrency, int, "--concurrency"),
            "rate": parse_numbers(args.rate, float, "--rate"),
            "label": args.label,
            **load_options(args),
        }
        for name in ("n", "duration", "timeout"):  # absent: the sweep's and the Lab's defaults
            if getattr(args, name) is not None:
                options[name] = getattr(args, name)
        result = self.lab.capacity(
            args.target, self._params_for(args.target, extra, args.alias), **options
        )
        self._store(args.output, result)
        if args.output:
            say(f"{result.label}: {result.explain()}")
            return None
        return result

    def _benches(self, rest: str, cell: str | None) -> Any:
        if rest.strip():
            raise UsageError("%nuropb benches takes no arguments")
        return self.lab.benches()

    # --- the wire tap (lab/tap/) -------------------------------------------------------------

    @magic_arguments()
    @argument("services", nargs="*", help="only calls to or from these (default: all)")
    @argument("--events", action="store_true", help="events too (default when no service named)")
    @argument("--no-firehose", action="store_true", help="a queue of its own: no responses")
    @argument("--max", type=int, dest="max_rows", help="messages kept (newest)")
    @argument("--widget", action="store_true", help="show the live tap view")
    @argument("-o", "--output", help="store the tap in this variable")
    @argument("--alias")
    def _tap(self, rest: str, cell: str | None) -> Any:
        args = self._only_args(self._tap, rest)
        tap = self.lab.tap(
            *args.services,
            events=True if args.events else None,
            firehose=False if args.no_firehose else None,
            max_rows=args.max_rows,
            alias=args.alias,
        )
        if tap.notice:
            say(f"note: {tap.notice}", error=True)
        self._store(args.output, tap)
        return tap.widget() if args.widget else tap

    @magic_arguments()
    @argument("--window", type=float, default=60.0, help="seconds of traffic shown")
    @argument("--static", action="store_true", help="a picture, not a live widget")
    @argument("--alias")
    def _graph(self, rest: str, cell: str | None) -> Any:
        args = self._only_args(self._graph, rest)
        alias = self.lab.connection(args.alias).alias
        taps = [t for t in self.lab.taps if t.alias == alias and not t.stopped]
        if taps:
            tap = taps[-1]
        else:
            tap = self.lab.tap(alias=args.alias)
            say(
                f"started a tap on {alias} for the graph ({tap.mode}): lab.taps[-1].stop() stops it"
            )
            if tap.notice:
                say(f"note: {tap.notice}", error=True)
        if args.static:
            return tap.graph(window=args.window)
        return tap.graph_view(window=args.window)

    @magic_arguments()
    @argument("request", help="a correlation id (of a tap's row or a dead letter) or $ROW")
    @argument("--timeout", type=float)
    @argument("--context", help="a new request context (JSON object)")
    @argument("--trace", help="a new trace id")
    @argument("-o", "--output", help="store the answer in this variable")
    @argument("--alias")
    def _replay(self, rest: str, cell: str | None) -> Any:
        args, extra = self._args(self._replay, rest)
        edits = parse_params(extra, self._namespace)
        row: Any = args.request
        if row.startswith("$"):
            row = parse_value(row, self._namespace)
        context = parse_json_object(args.context, "--context") if args.context else None
        answer = self.lab.replay(
            row,
            edits,
            context=context,
            trace_id=args.trace,
            timeout=args.timeout,
            alias=args.alias,
        )
        self._store(args.output, answer)
        return None if args.output else answer

    @magic_arguments()
    @argument("action", nargs="?", choices=("off",), help="off: switch the firehose off")
    @argument("--alias")
    def _firehose(self, rest: str, cell: str | None) -> None:
        args = self._only_args(self._firehose, rest)
        if args.action == "off":
            state = self.lab.firehose_off(alias=args.alias)
        else:
            state = self.lab.firehose(alias=args.alias)
        say(f"firehose of {state.vhost!r}: {state.describe()}")

    # --- completion -----------------------------------------------------------------------------

    def complete(self, event: Any) -> list[str]:
        """Sub-commands, services, SERVICE.METHOD and parameter names, from discovery."""
        return completions(self.lab, event.text_until_cursor, SUBCOMMANDS)

    def _params_for(self, target: str, tokens: list[str], alias: str | None) -> dict[str, Any]:
        """``name=value`` tokens as the params of ``target``: a value written bare that reads
        as JSON (``sku=123``, ``flag=true``) goes as its text where the method takes a str."""
        params = parse_params(tokens, self._namespace)
        texts = {
            name: text
            for name, _, text in (token.partition("=") for token in tokens)
            if not isinstance(params[name], (str, list, dict)) and text[:1] not in "$'"
        }
        if not texts:
            return params
        service, _, method = target.partition(".")
        try:  # the description the call is checked against, asked once for both
            description = self.lab.known_description(service, alias=alias)
            if description is None:
                return params
            spec = method_spec(description, service, method)
        except (LabError, ParamError):
            return params  # the call's own check says what is wrong
        return texts_where_described(spec, params, texts)
