"""Contract checks of a live service from its ``nuropb_describe`` (``lab.check``).

- strategies.py: Hypothesis strategies for params that fit a method's description and that
  do not, judged by the one validator (lab/params.py);
- outcome.py: what an answer says (the checks), and ``replay`` of one finding;
- probe.py: one method explored with Hypothesis in a worker thread, shrinking each bug
  against the live service;
- run.py: the run (describe, plan, methods in parallel, progress, stop, time limits);
- findings.py: the result (findings with reproducers, summary); pytest_file.py: as tests.
"""

from .findings import CheckResult
from .outcome import CHECKS, replay
from .run import CheckError, CheckRun, CheckSpec

__all__ = ["CHECKS", "CheckError", "CheckResult", "CheckRun", "CheckSpec", "replay"]
