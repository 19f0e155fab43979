"""The repository on a stand-in for Binder (scripts/binder-standin: a Debian root with
binder/apt.txt, repo2docker's base packages, binder/requirements.txt and binder/postBuild run as
a non-root user, binder/start in a network of its own with MEM_LIMIT set). Run on request, as
root: NUROPB_BINDER_STANDIN=1 (about 3 min from nothing, 70 s from its cache)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest
from test_notebooks import NOTEBOOKS, unexpected_output

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".cache" / "binder-standin" / "out"
CHECKS = (
    "build",
    "pip check",
    "no build files in $HOME",
    "the server answered in time",
    "every notebook executed",
    "watermark from MEM_LIMIT (ctl status)",
    "watermark from MEM_LIMIT (management API)",
    "ctl lists the demo's queues",
    "JupyterLab and Notebook 7 pages, no error logged",
)


if os.environ.get("NUROPB_BINDER_STANDIN") != "1":
    pytest.skip(
        "the Binder stand-in takes minutes and root: NUROPB_BINDER_STANDIN=1 runs it"
        " (or scripts/binder-standin alone)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    done = subprocess.run(
        [str(ROOT / "scripts" / "binder-standin")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    print(done.stdout)  # one line per check, shown with -s or on failure
    assert (OUT / "results.json").exists(), f"the stand-in did not finish:\n{done.stderr[-3000:]}"
    results: dict[str, Any] = json.loads((OUT / "results.json").read_text())
    return results


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("check", CHECKS)
def test_on_binder(results: dict[str, Any], check: str) -> None:
    assert set(results["checks"]) == set(CHECKS)
    assert results["checks"][check]["ok"], results["checks"][check]["detail"]


@pytest.mark.timeout(1800)
def test_every_notebook_ran_without_error_output(results: dict[str, Any]) -> None:
    names = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
    assert sorted(results["facts"]["notebooks"]) == names
    for name in names:
        nb = nbformat.read(OUT / "executed" / f"{name}.ipynb", as_version=4)
        assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), name
        assert not unexpected_output(nb, name), (name, unexpected_output(nb, name))
