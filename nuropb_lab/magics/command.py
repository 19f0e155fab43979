"""A sub-command of ``%nuropb``: a handler with IPython's ``@argument`` decorators, its parser
(built by ``magic_arguments``), its help and synopsis generated from that parser.

A handler takes ``(ctx, args, rest, cell)``: the :class:`Context`, the parsed options, the
tokens left after them (``name=value`` params or names, for a sub-command that takes them)
and the ``%%nuropb`` cell body (None for a line). table.py lists the sub-commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import ArgDecorator, argument, magic_arguments

from ..lab import Lab, LabError, ParamError, ProgressRun
from ..lab.params import method_spec, texts_where_described
from ..mesh import mask_secrets
from .args import parse_params, split_args

__all__ = ["Context", "Handler", "SubCommand", "either", "say", "subcommand"]

Handler = Callable[["Context", argparse.Namespace, list[str], "str | None"], Any]


def say(text: str, error: bool = False) -> None:
    """One line to the notebook (errors to stderr), any password in it masked."""
    print(mask_secrets(text), file=sys.stderr if error else sys.stdout)


@dataclasses.dataclass
class Context:
    """What a sub-command has at hand: the Lab, and the notebook it runs in."""

    lab: Lab
    shell: Any

    @property
    def namespace(self) -> dict[str, Any]:
        """The notebook's variables (``$name``, ``-o VAR``, ``serve OBJECT``)."""
        return self.shell.user_ns if self.shell is not None else {}

    @property
    def in_kernel(self) -> bool:
        """Whether widgets can be shown (a kernel, not a terminal or a test's shell)."""
        return getattr(self.shell, "kernel", None) is not None

    def store(self, name: str | None, value: Any) -> None:
        """``-o VAR``: keep ``value`` in the notebook as ``VAR``."""
        if name:
            if not name.isidentifier():
                raise UsageError(f"-o needs a variable name, got {name!r}")
            self.namespace[name] = value

    def params_for(
        self, target: str, tokens: list[str], alias: str | None, retype: bool = True
    ) -> dict[str, Any]:
        """``name=value`` tokens as the params of ``target``: a value written bare that reads
        as JSON (``sku=123``, ``flag=true``) goes as its text where the method takes a str,
        unless ``retype`` is off (``--no-check``: the values as written)."""
        params = parse_params(tokens, self.namespace)
        if not retype:
            return params
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

    def follow(self, run: ProgressRun[Any], output: str | None, background: bool) -> Any:
        """A run (a bench, a check) with its progress view: returned at once with
        ``background`` (``-o`` stores the run), else waited for (Ctrl-C stops it, keeping what
        it found) and its result returned, or stored with ``-o`` and its headline said."""
        if background:
            self.store(output, run.start())
            return run.widget() if self.in_kernel else run
        run.blocking = True  # the view: Stop is the kernel's interrupt while the cell waits
        if self.in_kernel:
            from IPython.display import display

            display(run.widget())
        result = run.wait()
        self.store(output, result)
        if output:
            say(result.headline())
            return None
        return result


class either(ArgDecorator):
    """Arguments of which one at most is given (argparse's mutually exclusive group): shown
    as ``[A | B]``. A group with a positional cannot be parsed intermixed with options, so
    its sub-command is parsed in order (options after the positionals they follow)."""

    def __init__(self, *arguments: argument) -> None:
        self.arguments = arguments

    def __call__(self, func: Any) -> Any:
        func = super().__call__(func)
        if any(not a.args[0].startswith("-") for a in self.arguments):
            func.in_order = True
        return func

    def add_to_parser(self, parser: argparse.ArgumentParser, group: Any) -> None:
        exclusive = parser.add_mutually_exclusive_group()
        for arg in self.arguments:
            exclusive.add_argument(*arg.args, **arg.kwds)


@dataclasses.dataclass(frozen=True)
class SubCommand:
    """One sub-command: ``%nuropb NAME ...``."""

    name: str
    handler: Handler
    parser: argparse.ArgumentParser
    summary: str  # one line: what it does
    rest: str | None = None  # what the tokens after its options are, if it takes any
    cell: bool = False  # %%nuropb NAME takes a cell body
    completes: str | None = None  # what TAB offers after it (complete.py)
    in_order: bool = False

    def parse(self, line: str) -> tuple[argparse.Namespace, list[str]]:
        """The options of ``line`` (anywhere in it) and the tokens left."""
        tokens = split_args(line)
        if self.in_order:
            args, rest = self.parser.parse_known_args(tokens)
        else:
            args, rest = self.parser.parse_known_intermixed_args(tokens)
        unknown = [t for t in rest if t.startswith("-") and "=" not in t]
        if unknown:
            raise UsageError(f"unknown option {unknown[0]} (%nuropb help {self.name})")
        if rest and self.rest is None:
            raise UsageError(f"unexpected arguments: {' '.join(rest)}")
        return args, rest

    def run(self, ctx: Context, line: str, cell: str | None) -> Any:
        if cell is not None and not self.cell:
            raise UsageError(f"%%nuropb {self.name} takes no cell body")
        args, rest = self.parse(line)
        return self.handler(ctx, args, rest, cell)

    def synopsis(self, full: bool = True) -> str:
        """``%nuropb NAME``, its positionals, what it takes after them, then every option
        (``full``) or ``[options]``."""
        groups = {id(a): group for group in _groups(self.parser) for a in group}
        positionals: list[str] = []
        options: list[str] = []
        for action in self.parser._actions:  # argparse keeps no public list of them
            group = groups.get(id(action))
            if group is not None:
                if action is group[0]:
                    shown = f"[{' | '.join(_shown(a) for a in group)}]"
                    alone = all(a.option_strings for a in group)
                    (options if alone else positionals).append(shown)
            elif action.option_strings:
                options.append(f"[{_shown(action)}]")
            else:
                positionals.append(_shown(action, alone=True))
        if self.rest is not None:
            positionals.append(self.rest)
        if not full:
            options = ["[options]"] if options else []
        return " ".join([f"%nuropb {self.name}", *positionals, *options])

    def help(self) -> str:
        """Every argument and option, with what each does."""
        return self.parser.format_help()


def _groups(parser: argparse.ArgumentParser) -> list[Sequence[argparse.Action]]:
    return [g._group_actions for g in parser._mutually_exclusive_groups]


def _shown(action: argparse.Action, alone: bool = False) -> str:
    """An argument as a synopsis shows it: ``URL``, ``[URL]``, ``[URL]...``, ``-o VAR``."""
    metavar = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
    if not action.option_strings:
        if action.nargs == "?":
            return f"[{metavar}]" if alone else str(metavar)
        if action.nargs == "*":
            return f"[{metavar}]..."
        return str(metavar)
    flag = action.option_strings[0]
    return flag if action.nargs == 0 else f"{flag} {metavar}"


def subcommand(
    name: str,
    *,
    rest: str | None = None,
    cell: bool = False,
    completes: str | None = None,
) -> Callable[[Handler], SubCommand]:
    """Make a :class:`SubCommand` of a handler decorated with ``@argument`` (and
    :class:`either`); its docstring's first line is its summary, all of it the help's
    description. ``rest`` says what the tokens after its options are (``[k=v ...]``)."""

    def make(handler: Handler) -> SubCommand:
        summary = (handler.__doc__ or "").strip().partition("\n\n")[0].replace("\n", " ")
        description = handler.__doc__
        magic_arguments(f"nuropb {name}")(handler)  # builds handler.parser
        parser: argparse.ArgumentParser = handler.parser  # type: ignore[attr-defined]
        made = SubCommand(
            name,
            handler,
            parser,
            summary,
            rest,
            cell,
            completes,
            getattr(handler, "in_order", False),
        )
        parser.formatter_class = argparse.HelpFormatter  # IPython's writes reST
        parser.usage = made.synopsis().replace("%", "%%")  # argparse formats it with %
        parser.description = description
        return made

    return make
