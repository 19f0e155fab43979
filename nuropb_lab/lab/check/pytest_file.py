"""``CheckResult.to_pytest(path)``: a check's findings as a test file of their own.

Each test sends its finding's input again through :func:`outcome.replay` (the judgement the
check made) and fails while the problem is there. Everything that came from the mesh (names,
params, error text) is written as a Python literal (``repr``), never as code or a comment;
no password and no context (it may hold a token) is written: the URL comes from
``NUROPB_AMQP_URL``, the context from ``NUROPB_CHECK_CONTEXT``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..._version import __version__
from ..errors import LabError

if TYPE_CHECKING:
    from .probe import Finding

__all__ = ["write_tests"]

_HEAD = '''"""Findings of a contract check made by nuropb-lab {version} on {when} (seed {seed}).

Each test sends the input that found a problem again and fails while the problem is there.
Needs nuropb-lab and pytest. The mesh: NUROPB_AMQP_URL (AMQP URL with the mesh's vhost);
a context for the calls (JSON, e.g. a token), if the check had one: NUROPB_CHECK_CONTEXT.

    NUROPB_AMQP_URL=amqp://user:password@host:5672/mesh python -m pytest {name}
"""

import json
import os

import pytest

from nuropb_lab.lab.check import replay

SERVICE = {service!r}
TIMEOUT = {timeout!r}
DEFAULT_URL = {url!r}


def mesh_url() -> str:
    url = os.environ.get("NUROPB_AMQP_URL") or DEFAULT_URL
    if not url:
        pytest.fail("set NUROPB_AMQP_URL to the AMQP URL of the mesh (its vhost) to check")
    return url


def context() -> dict:
    return json.loads(os.environ.get("NUROPB_CHECK_CONTEXT") or "{{}}")
'''

_TEST = """

def {name}() -> None:
    found = {error!r}
    problem = replay(
        mesh_url(), SERVICE, {method!r}, {params!r}, {check!r}, timeout=TIMEOUT, context=context()
    )
    assert problem is None, f"{{problem}} (first found: {{found}})"
"""


def _identifier(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", text)[:40]


def write_tests(
    path: Path,
    url: str | None,
    *,
    service: str,
    seed: int,
    timeout: float,
    started: datetime.datetime,
    findings: Sequence[Finding],
) -> Path:
    """Write a check's ``findings`` (of ``service``, from a run with ``seed`` and ``timeout``,
    ``started`` then) to ``path`` as pytest tests (see the module)."""
    if url is not None and any(urlsplit(part.strip()).password for part in url.split(",")):
        raise LabError(
            "the test file would keep the URL's password: leave url out and set"
            " NUROPB_AMQP_URL when running it"
        )
    parts = [
        _HEAD.format(
            version=__version__,
            when=started.strftime("%Y-%m-%d %H:%M UTC"),
            seed=seed,
            name=path.name,
            service=service,
            timeout=timeout,
            url=url or "",
        )
    ]
    for number, finding in enumerate(findings, 1):
        name = f"test_{number:02d}_{_identifier(finding.method)}_{finding.check}"
        parts.append(
            _TEST.format(
                name=name,
                error=finding.error,
                method=finding.method,
                params=finding.params,
                check=finding.check,
            )
        )
    path.write_text("".join(parts), encoding="utf-8")
    return path
