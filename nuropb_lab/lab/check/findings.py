"""What a check found: ``.findings`` (one row per bug, with the line that reproduces it),
``.summary()`` per method, ``.to_pytest(path)``."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any, Final

import pandas as pd

from ..markup import frame, output, tag
from ..params import param_problems, texts_where_described
from .outcome import CHECKS
from .probe import Finding, MethodReport

__all__ = ["FINDING_COLUMNS", "CheckResult", "reproducer"]

FINDING_COLUMNS: Final = ["method", "check", "params", "error", "reproducer", "encrypted"]
_ESCAPE = re.compile(r"\\(.)")


def _json_token(value: Any) -> str:
    """A value as JSON that ``%nuropb call`` reads back as one token: compact, ASCII, and a
    quote inside a string written ``\\u0022`` (the magic's tokens end at a quote)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return _ESCAPE.sub(lambda m: r"\u0022" if m.group(1) == '"' else m.group(0), text)


def reproducer(
    service: str,
    finding: Finding,
    spec: dict[str, Any],
    timeout: float,
) -> str:
    """The ``%nuropb call`` line that sends the finding's input again, as the check sent it
    (``--no-check`` where the magic would refuse or retype the params; the cell form when a
    name cannot be written ``name=value``). A plaintext call to a method that requires
    encryption the lab refuses to send: that one is a :func:`replay` line."""
    params = finding.params
    if finding.check == "plaintext_accepted":
        return (
            f"nuropb_lab.lab.check.replay(lab.connection().api.nodes, {service!r},"
            f" {finding.method!r}, {params!r}, 'plaintext_accepted')"
        )
    texts = {k: _json_token(v) for k, v in params.items() if not isinstance(v, (str, list, dict))}
    exact = (
        not param_problems(spec, params) and texts_where_described(spec, params, texts) == params
    )
    options = "" if exact else " --no-check"
    if finding.check == "timeout":
        options += f" --timeout {timeout:g}"
    target = f"{service}.{finding.method}"
    if not all(name.isidentifier() for name in params):
        return f"%%nuropb call {target}{options}\n{json.dumps(params, ensure_ascii=False)}"
    words = [f"{name}={_json_token(value)}" for name, value in params.items()]
    return " ".join(["%nuropb call", target, *words]) + options


class CheckResult:
    """A check's outcome: what it called, what it found (``findings``), per method what it
    sent (``summary()``), and how to find it again (``reproducer``, ``seed``, ``to_pytest``)."""

    def __init__(
        self,
        *,
        service: str,
        plan: list[str],
        specs: dict[str, dict[str, Any]],
        findings: list[Finding],
        reports: list[MethodReport],
        seed: int,
        timeout: float,
        state: str,
        started: datetime.datetime,
        elapsed_s: float,
        notes: list[str] | None = None,
    ) -> None:
        self.service = service
        self.plan = plan
        self.specs = specs
        order = {name: i for i, name in enumerate(plan)}
        self.findings_found = sorted(
            findings, key=lambda f: (order.get(f.method, len(order)), CHECKS.index(f.check))
        )
        self.reports = reports
        self.seed = seed
        self.timeout = timeout
        self.state = state
        self.started = started
        self.elapsed_s = elapsed_s
        self.notes = list(notes or [])

    @property
    def findings(self) -> pd.DataFrame:
        """One row per bug found: method, check, params (a dict: the smallest input found),
        error (what the service answered, bounded), reproducer (the ``%nuropb call`` line
        that sends it again), encrypted (whether it was sent encrypted)."""
        rows = [
            [
                f.method,
                f.check,
                f.params,
                f.error,
                reproducer(self.service, f, self.specs.get(f.method, {}), self.timeout),
                f.encrypted,
            ]
            for f in self.findings_found
        ]
        table = pd.DataFrame(rows, columns=FINDING_COLUMNS)
        table["params"] = table["params"].astype(object)
        table.attrs.update(service=self.service, seed=self.seed)
        return table

    def summary(self) -> pd.DataFrame:
        """Per method: inputs sent (that fit, that did not, plaintext), findings by check,
        seconds spent, and what cut it short."""
        found = {(f.method, f.check) for f in self.findings_found}
        rows = []
        for report in self.reports:
            counts = {c: int((report.method, c) in found) for c in CHECKS}
            rows.append(
                {
                    "method": report.method,
                    "examples": report.examples,
                    "fitting": report.sent.get("fitting", 0),
                    "unfitting": report.sent.get("unfitting", 0),
                    "plaintext": report.sent.get("plaintext", 0),
                    "findings": sum(counts.values()),
                    **counts,
                    "seconds": round(report.seconds, 3),
                    "notes": "; ".join(report.notes),
                }
            )
        columns = ["method", "examples", "fitting", "unfitting", "plaintext", "findings"]
        columns += [*CHECKS, "seconds", "notes"]
        return pd.DataFrame(rows, columns=columns)

    def headline(self) -> str:
        sent = sum(r.examples for r in self.reports)
        count = len(self.findings_found)
        kinds = sorted({f.check for f in self.findings_found}, key=CHECKS.index)
        what = f" ({', '.join(kinds)})" if kinds else ""
        return (
            f"check of {self.service}: {len(self.reports)} of {len(self.plan)} methods,"
            f" {sent:,} examples, {count} finding{'s' if count != 1 else ''}{what}"
            f" in {self.elapsed_s:.1f} s, seed {self.seed} [{self.state}]"
        )

    def __repr__(self) -> str:
        return f"<CheckResult {self.headline()}>"

    def _repr_html_(self) -> str:
        notes = (tag("div", tag("i", n)) for n in self.notes)
        shown = self.findings.drop(columns=["encrypted"])
        table = frame(shown, index=False, border=0) if len(shown) else tag("div", "no findings")
        return output(tag("div", tag("b", self.headline())), *notes, table)

    def to_pytest(self, path: str | Path, url: str | None = None) -> Path:
        """A test file that sends each finding's input again and fails while its problem is
        there; it needs nuropb-lab and pytest, and the mesh's URL in ``NUROPB_AMQP_URL`` (or
        ``url``, written into the file, which must then hold no password)."""
        from .pytest_file import write_tests

        return write_tests(
            Path(path),
            url,
            service=self.service,
            seed=self.seed,
            timeout=self.timeout,
            started=self.started,
            findings=self.findings_found,
        )
