"""Execute notebooks headless (nbclient) and write the executed copies.

``python -m nuropb_lab.demo.execute NOTEBOOK ... [--out DIR] [--timeout S]``: exit code 1 when
any cell raised (the executed copy is written all the same, up to the failing cell). Kernels
inherit the environment, so ``$NUROPB_AMQP_URL`` chooses their mesh. Needs the ``lab`` extra.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

__all__ = ["NotebookFailed", "execute_notebook"]


class NotebookFailed(Exception):
    """A cell raised or timed out; ``notebook`` holds the outputs up to there."""

    def __init__(self, message: str, notebook: nbformat.NotebookNode) -> None:
        super().__init__(message)
        self.notebook = notebook


def execute_notebook(
    path: Path,
    out: Path | None = None,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    kernel_name: str = "python3",
) -> nbformat.NotebookNode:
    """Run every cell of ``path`` in a fresh kernel (working directory: the notebook's folder),
    at most ``timeout`` s a cell; write the executed copy to ``out`` (a file) when given.
    Raises :class:`NotebookFailed` when a cell fails."""
    notebook: nbformat.NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        timeout=int(timeout),
        startup_timeout=60,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(path.parent)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # not its TCP-transport warning
    )
    error: NotebookFailed | None = None
    try:
        client.execute(env=dict(os.environ if env is None else env))
    except (CellExecutionError, CellTimeoutError) as exc:
        error = NotebookFailed(f"{path.name}: {exc}", notebook)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, out)  # type: ignore[no-untyped-call]
    if error is not None:
        raise error
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nuropb_lab.demo.execute",
        description="Execute notebooks headless and write the executed copies.",
    )
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path(".cache/executed"), help="folder")
    parser.add_argument("--timeout", type=float, default=120, help="seconds a cell may take")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.notebooks:
        out = args.out / path.name
        started = time.monotonic()
        try:
            execute_notebook(path, out, args.timeout)
        except NotebookFailed as exc:
            failed += 1
            print(f"FAILED {path} -> {out}\n{exc}", file=sys.stderr)
            continue
        print(f"executed {path} in {time.monotonic() - started:.1f} s -> {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
