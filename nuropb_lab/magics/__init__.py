"""``%nuropb`` / ``%%nuropb``: argument parsing and display over the Lab, nothing else.

Every sub-command is one call on :class:`nuropb_lab.lab.Lab`, in a module per group
(admin.py, discovery.py, calls.py, watch.py, load.py, check.py) and listed in table.py; command.py
makes a sub-command, its parser and help; args.py reads a line's values, complete.py its TAB
completion. Expected failures print one line: the mesh's nuropb errors, the Lab's usage
errors (``LabError``), a known-keys file that cannot be used, a wait given up.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import (
    Bool,
    Enum,
    Float,
    Int,
    List,
    TraitError,
    TraitType,
    Unicode,
    observe,
    validate,
)

from ..lab import Lab, LabError, get_lab
from ..lab.settings import Settings, setting_fields
from ..mesh import KnownKeysError, NuropbException, limits
from ..mesh.errors import error_name
from .command import Context, say
from .complete import completions
from .table import SUBCOMMANDS

__all__ = ["NuropbMagics"]

# what is said in one line: the mesh's errors, the Lab's usage errors, a known-keys file that
# cannot be used, and waits given up; anything else is a bug and shows its traceback
ONE_LINE_ERRORS = (NuropbException, LabError, KnownKeysError, TimeoutError)
SETTINGS = tuple(f.name for f in setting_fields())


def _trait(name: str) -> TraitType[Any, Any]:
    """The traitlet of a Lab setting: its default and help are the setting's (settings.py)."""
    field = next(f for f in setting_fields() if f.name == name)
    default: Any = field.default
    help = field.metadata["help"]
    trait: TraitType[Any, Any]
    if "choices" in field.metadata:
        trait = Enum(field.metadata["choices"], default, help=help)
    elif isinstance(default, bool):
        trait = Bool(default, help=help)
    elif isinstance(default, tuple):
        trait = List(Unicode(), list(default), help=help)
    elif isinstance(default, float):
        trait = Float(default, help=help)
    elif isinstance(default, int):
        trait = Int(default, help=help)
    else:
        trait = Unicode(default, allow_none=True, help=help)
    return trait.tag(config=True)


@magics_class
class NuropbMagics(Magics):
    """The ``%nuropb`` magic; settings: ``%config NuropbMagics.timeout = 10``."""

    timeout = _trait("timeout")
    describe_timeout = _trait("describe_timeout")
    tail_max_rows = _trait("tail_max_rows")
    management_url = _trait("management_url")
    failover_strategy = _trait("failover_strategy")
    read_only = _trait("read_only")
    live_idle_timeout = _trait("live_idle_timeout")
    redact = _trait("redact")
    redact_keys = _trait("redact_keys")

    def __init__(self, shell: Any = None, lab: Lab | None = None, **kwargs: Any) -> None:
        self.lab = lab or get_lab()  # first: loading the shell's config applies settings
        super().__init__(shell=shell, **kwargs)
        for name in SETTINGS:
            setattr(self.lab, name, getattr(self, name))

    @validate(*SETTINGS)
    def _checked(self, proposal: Any) -> Any:
        try:
            return Settings.check(proposal["trait"].name, proposal["value"])
        except LabError as exc:
            raise TraitError(str(exc)) from None

    @observe(*SETTINGS)
    def _changed(self, change: Any) -> None:
        setattr(self.lab, change["name"], change["new"])

    @no_var_expand
    @line_cell_magic
    def nuropb(self, line: str, cell: str | None = None) -> Any:
        """Work with a nuropb mesh: ``%nuropb help`` lists the sub-commands."""
        name, _, rest = line.strip().partition(" ")
        command = SUBCOMMANDS.get(name or "help")
        if command is None:
            raise UsageError(f"unknown sub-command {name!r}; one of: {', '.join(SUBCOMMANDS)}")
        try:
            return command.run(Context(self.lab, self.shell), rest, cell)
        except ONE_LINE_ERRORS as exc:
            line = self.lab.redactor.text(f"{error_name(exc)}: {exc}")[0]  # may echo a payload
            say(limits.clip_text(line, limits.ERROR_BYTES), error=True)
            return None

    def complete(self, event: Any) -> list[str]:
        """Sub-commands, services, SERVICE.METHOD and parameter names, from discovery."""
        return completions(self.lab, event.text_until_cursor, SUBCOMMANDS)
