"""What an answer to a check's input says: a problem (one of :data:`CHECKS`) or none.

One judgement for the live run (run.py) and for the test files it writes (pytest_file.py),
which replay a finding with :func:`replay` and fail while the problem is there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final, Literal

from ...mesh.api import RMQAPI
from ...mesh.errors import NuropbException, NuropbTimeoutError, error_name
from ...mesh.limits import ERROR_BYTES, PAYLOAD_BYTES, clip_text, clip_value
from ...mesh.nodes import Nodes
from ..params import param_problems, value_fits

__all__ = ["CHECKS", "REFUSALS", "Answer", "Problem", "Sent", "judge", "replay"]

#: the checks, as the findings' ``check`` column names them
CHECKS: Final = (
    "server_error",
    "timeout",
    "accepted_invalid",
    "result_mismatch",
    "plaintext_accepted",
)
#: error classes that refuse an input rather than fail on it
REFUSALS: Final = frozenset(
    {"NuropbValidationError", "NuropbAuthenticationError", "NuropbAuthorizationError"}
)
#: how nuropb 0.1.8 wraps an exception raised by a sync method (its class is in the text)
_NUROPB_RUNTIME = re.compile(r"^Runtime exception calling [^:]*:(\w+):")

#: what was sent: params that fit the description, params that do not, or fitting params in
#: plaintext to a method that requires encryption
Sent = Literal["fitting", "unfitting", "plaintext"]


@dataclasses.dataclass(frozen=True)
class Answer:
    """How a call ended: its result, or the error it raised (remote or local)."""

    result: Any = None
    error: BaseException | None = None
    latency_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class Problem:
    """What is wrong with an answer: the check, a key telling distinct bugs of one method
    apart (the check and the error's class), and one bounded line saying what happened."""

    check: str
    key: str
    text: str


def _error_line(exc: BaseException) -> str:
    return clip_text(f"{error_name(exc)}: {exc}", ERROR_BYTES)


def _shown(result: Any) -> str:
    shown, _ = clip_value(result, PAYLOAD_BYTES // 8)
    return clip_text(repr(shown), PAYLOAD_BYTES // 8)


def _error_kind(exc: BaseException) -> str:
    """The class an error names: nuropb 0.1.8 reports a sync method's exception as a
    NuropbException whose text names the class, so ``ZeroDivisionError`` and ``IndexError``
    there are told apart."""
    name = error_name(exc)
    inner = _NUROPB_RUNTIME.match(str(exc)) if name == "NuropbException" else None
    return inner.group(1) if inner else name


def judge(
    sent: Sent,
    answer: Answer,
    spec: Mapping[str, Any],
    params: Mapping[str, Any],
) -> Problem | None:
    """The problem with ``answer`` to ``params`` sent as ``sent`` to the method described
    by ``spec``, or None. Errors of this side other than a timeout are raised (the run cannot
    judge without an answer: the service is gone, the connection is down)."""
    error = answer.error
    if isinstance(error, NuropbTimeoutError) and not getattr(error, "remote", False):
        return Problem("timeout", "timeout", _error_line(error))
    if error is not None:
        if not getattr(error, "remote", False):
            raise error
        if sent == "fitting" and error_name(error) not in REFUSALS:
            kind = _error_kind(error)
            return Problem("server_error", f"server_error:{kind}", _error_line(error))
        return None  # refused (or, for params that do not fit or plaintext, failed): fine
    if sent == "unfitting":
        wrong = "; ".join(param_problems(spec, params))
        text = f"accepted params that do not fit ({wrong}) and answered {_shown(answer.result)}"
        return Problem("accepted_invalid", "accepted_invalid", clip_text(text, ERROR_BYTES))
    if sent == "plaintext":
        text = f"answered a plaintext call with {_shown(answer.result)}"
        return Problem("plaintext_accepted", "plaintext_accepted", clip_text(text, ERROR_BYTES))
    described = spec.get("returns")  # beyond nuropb's schema: lab services say it
    returns = described.get("type") if isinstance(described, Mapping) else None
    if isinstance(returns, str) and returns and not value_fits(returns, answer.result):
        text = f"returned {_shown(answer.result)}, described as returning {returns}"
        return Problem("result_mismatch", "result_mismatch", clip_text(text, ERROR_BYTES))
    return None


async def ask(
    api: RMQAPI,
    service: str,
    method: str,
    params: dict[str, Any],
    *,
    encrypted: bool,
    timeout: float,
    context: dict[str, Any] | None = None,
) -> Answer:
    """One call through the API's own path (encrypted with the key it holds for the
    service), ended by its ttl; the answer, whatever it is."""
    started = time.perf_counter()
    try:
        result = await api.request(
            service,
            method,
            params,
            dict(context or {}),
            ttl=int(timeout * 1000),
            trace_id=f"check-{uuid.uuid4().hex[:12]}",
            encrypted=encrypted,
        )
    except NuropbException as exc:
        return Answer(error=exc, latency_s=time.perf_counter() - started)
    return Answer(result=result, latency_s=time.perf_counter() - started)


def replay(
    url: str | Nodes,
    service: str,
    method: str,
    params: dict[str, Any],
    check: str,
    *,
    timeout: float = 10.0,
    context: dict[str, Any] | None = None,
) -> str | None:
    """Send a finding's input to ``service.method`` on the mesh at ``url`` (or a connection's
    ``api.nodes``) again, as the check sent it, from a client of its own; the problem's line
    while ``check`` still finds it, else None. What the test files of
    ``CheckResult.to_pytest`` call; in a thread of its own, so a notebook may call it too."""
    coro = _replay(url, service, method, params, check, timeout, context)
    with concurrent.futures.ThreadPoolExecutor(1, "nuropb-lab-replay") as pool:
        return pool.submit(asyncio.run, coro).result()


async def _replay(
    url: str | Nodes,
    service: str,
    method: str,
    params: dict[str, Any],
    check: str,
    timeout: float,
    context: dict[str, Any] | None,
) -> str | None:
    if check not in CHECKS:
        raise ValueError(f"check is one of {', '.join(CHECKS)}, not {check!r}")
    async with RMQAPI(url, transport_settings={"reconnect": False}) as api:
        description = await api.describe_service(service, ttl=int(timeout * 1000))
        spec = (description.get("methods") or {}).get(method) or {}
        needs = bool(spec.get("requires_encryption"))
        sent: Sent = (
            "plaintext"
            if check == "plaintext_accepted"
            else "unfitting"
            if check == "accepted_invalid"
            else "fitting"
        )
        encrypted = needs and sent != "plaintext"
        answer = await ask(
            api, service, method, params, encrypted=encrypted, timeout=timeout, context=context
        )
        problem = judge(sent, answer, spec, params)
    return problem.text if problem is not None and problem.check == check else None
