"""Sub-commands that look at a mesh: services, describe, keys, browse."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic_arguments import argument

from .command import Context, say, subcommand

__all__ = ["browse", "describe", "keys", "services"]


@subcommand("services", rest="[SERVICE]...")
@argument("--alias", help="the connection (default: the current)")
def services(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """Every service on the mesh, each described afresh: instances, queued, methods, ...

    Without the management API only the services named (SERVICE...) or called are probed."""
    frame = ctx.lab.services(alias=args.alias, names=rest or None)
    notice = frame.attrs.get("notice")
    if notice:
        say(f"note: {notice}", error=True)
    return frame


@subcommand("describe", completes="service method")
@argument("service", metavar="SERVICE")
@argument("method", nargs="?", metavar="METHOD")
@argument("--refresh", action="store_true", help="ask the service again (not its cached one)")
@argument("--alias", help="the connection (default: the current)")
def describe(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """A service's methods and parameters, one row per parameter, with encryption."""
    return ctx.lab.describe(args.service, args.method, refresh=args.refresh, alias=args.alias)


@subcommand("keys", completes="service")
@argument("service", nargs="?", metavar="SERVICE", help="one service (default: all)")
@argument("--widget", action="store_true", help="show the encryption inspector")
@argument("--alias", help="the connection (default: the current)")
def keys(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """Encryption per service: the key seen and the key pinned, size, methods, warnings."""
    if args.widget:
        from ..widgets import KeysView

        return KeysView(ctx.lab, service=args.service, alias=args.alias)
    return ctx.lab.keys(args.service, alias=args.alias)


@subcommand("browse")
@argument("--alias", help="the connection (default: the current)")
def browse(ctx: Context, args: argparse.Namespace, rest: list[str], cell: str | None) -> Any:
    """The service browser: pick a method to get its call form."""
    from ..widgets import ServiceBrowser

    return ServiceBrowser(ctx.lab, alias=args.alias)
