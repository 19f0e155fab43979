"""The package's public surface: what ``import nuropb_lab`` offers, and what it costs."""

from __future__ import annotations

import json
import subprocess
import sys

import nuropb_lab as nl
from nuropb_lab import lab, mesh
from nuropb_lab.lab import tap

HEAVY = ("pandas", "IPython", "ipywidgets", "matplotlib", "nuropb_lab.lab", "nuropb_lab.magics")


def test_import_stays_light_and_dir_lists_the_surface() -> None:
    code = (
        "import json, sys, nuropb_lab;"
        f"print(json.dumps([[m for m in {HEAVY!r} if m in sys.modules], dir(nuropb_lab)]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    loaded, listed = json.loads(done.stdout)
    assert loaded == []  # a service importing RMQAPI loads no notebook machinery
    assert listed == sorted(nl.__all__)
    assert {"Lab", "Tail", "Tap", "BenchResult", "CapacityResult", "ParamError"} <= set(listed)


def test_every_public_name_is_there_and_internals_are_not() -> None:
    for name in nl.__all__:
        assert getattr(nl, name) is not None, name
    # the results users hold and the error family, as the Lab's modules define them
    assert nl.BenchResult is lab.BenchResult and nl.CapacityResult is lab.CapacityResult
    assert nl.Tap is tap.Tap and nl.LoadedTap is tap.LoadedTap and nl.Lab is lab.Lab
    assert nl.ParamError is lab.ParamError and nl.EncryptionRefused is mesh.EncryptionRefused
    assert nl.Mock is lab.Mock and issubclass(nl.CheckError, nl.LabError)
    from nuropb_lab.lab import check

    assert nl.CheckResult is check.CheckResult and nl.CheckRun is check.CheckRun
    for name in ("AmqpTarget", "Nodes", "Topology", "LoopRunner", "ManagementAPI", "mask_secrets"):
        assert name not in nl.__all__ and not hasattr(nl, name), name


def test_hypothesis_loads_with_the_first_check_not_with_the_lab() -> None:
    code = (
        "import sys, nuropb_lab; nuropb_lab.Lab().close(); print('hypothesis' in sys.modules);"
        " nuropb_lab.CheckResult; print('hypothesis' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "True"], done.stderr
