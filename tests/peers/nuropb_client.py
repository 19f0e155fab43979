"""A client on the published nuropb 0.1.8, the interop peer of the lab's tests.

Run by the python of the nuropb venv (not the lab's):

    python nuropb_client.py AMQP_URL SERVICE_NAME [SCENARIO_JSON]

It connects nuropb's own ``RMQAPI(amqp_url)`` (client only), runs the scenario's steps in order
against SERVICE_NAME and prints ONE JSON object on stdout:

    {"client": {"service_name": ..., "response_queue": ...},
     "results": {step_id: {"result": ...} | {"error": class name, "message": ..., ...}}}

A scenario is a JSON list of steps, each with an ``id`` and an ``op``:

- ``{"op": "describe"}``: ``describe_service`` (which also loads the service's public key),
  plus ``has_public_key`` and ``requires_encryption`` of every described method;
- ``{"op": "request", "method", "params", "context", "trace_id", "encrypted", "expect_error"}``;
- ``{"op": "command", "method", "params", "context", "trace_id", "encrypted"}``;
- ``{"op": "event", "topic", "event", "context", "trace_id"}``.

An encrypted request or command first describes the service when nuropb has no key for it
(nuropb cannot encrypt without the key). Every wait is bounded (nuropb has no client-side
timeouts). The exit status is non-zero on any unexpected failure: a step that raises without
``expect_error``, one that succeeds with it, a timeout, or a failure to connect; the JSON is
still printed, with ``failure`` set.

Without SCENARIO_JSON a default scenario runs: describe, ``add(a=2, b=3)``, and an encrypted
``secret(text="hello")``.
"""

import asyncio
import json
import logging
import sys
import traceback
from typing import Any

from nuropb.rmq_api import RMQAPI

CONNECT_TIMEOUT = 20.0
STEP_TIMEOUT = 15.0
DISCONNECT_TIMEOUT = 5.0

DEFAULT_SCENARIO: list[dict[str, Any]] = [
    {"id": "describe", "op": "describe"},
    {"id": "add", "op": "request", "method": "add", "params": {"a": 2, "b": 3}},
    {
        "id": "secret",
        "op": "request",
        "method": "secret",
        "params": {"text": "hello"},
        "encrypted": True,
    },
]


class UnexpectedOutcome(Exception):
    pass


def error_record(exc: BaseException) -> dict[str, Any]:
    record: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    description = getattr(exc, "description", None)
    if description is not None:
        record["description"] = description
    return record


async def describe(api: RMQAPI, service: str) -> dict[str, Any]:
    info = await asyncio.wait_for(api.describe_service(service), STEP_TIMEOUT)
    if not isinstance(info, dict):
        raise UnexpectedOutcome(f"describe_service returned {info!r}")
    methods = info.get("methods") or {}
    return {
        "result": info,
        "has_public_key": await asyncio.wait_for(api.has_public_key(service), STEP_TIMEOUT),
        "requires_encryption": {
            name: await asyncio.wait_for(api.requires_encryption(service, name), STEP_TIMEOUT)
            for name in methods
        },
    }


async def ensure_key(api: RMQAPI, service: str) -> None:
    if not api._encryptor.has_public_key(service):
        await asyncio.wait_for(api.describe_service(service), STEP_TIMEOUT)


async def run_step(api: RMQAPI, service: str, step: dict[str, Any]) -> dict[str, Any]:
    op = step["op"]
    encrypted = bool(step.get("encrypted", False))
    if op == "describe":
        return await describe(api, service)
    if op == "request":
        if encrypted:
            await ensure_key(api, service)
        expect_error = bool(step.get("expect_error", False))
        try:
            result = await asyncio.wait_for(
                api.request(
                    service=service,
                    method=step["method"],
                    params=step.get("params", {}),
                    context=step.get("context", {}),
                    trace_id=step.get("trace_id"),
                    encrypted=encrypted,
                ),
                STEP_TIMEOUT,
            )
        except TimeoutError:
            raise UnexpectedOutcome(
                f"no response to {step['method']} within {STEP_TIMEOUT} s"
            ) from None
        except Exception as exc:
            if not expect_error:
                raise
            return error_record(exc)
        if expect_error:
            raise UnexpectedOutcome(f"{step['method']} succeeded with {result!r}")
        return {"result": result}
    if op == "command":
        if encrypted:
            await ensure_key(api, service)
        api.command(
            service=service,
            method=step["method"],
            params=step.get("params", {}),
            context=step.get("context", {}),
            trace_id=step.get("trace_id"),
            encrypted=encrypted,
        )
        return {"result": None}
    if op == "event":
        api.publish_event(
            topic=step["topic"],
            event=step.get("event"),
            context=step.get("context", {}),
            trace_id=step.get("trace_id"),
        )
        return {"result": None}
    raise UnexpectedOutcome(f"unknown op {op!r}")


async def main(amqp_url: str, service: str, scenario: list[dict[str, Any]]) -> int:
    api = RMQAPI(amqp_url)
    output: dict[str, Any] = {
        "client": {
            "service_name": api.service_name,
            "response_queue": api.transport.response_queue,
        },
        "results": {},
    }
    status = 0
    current = "connect"
    try:
        await asyncio.wait_for(api.connect(), CONNECT_TIMEOUT)
        if not api.connected:
            raise UnexpectedOutcome("not connected")
        for step in scenario:
            current = step["id"]
            output["results"][current] = await run_step(api, service, step)
    except Exception as exc:
        output["failure"] = {"step": current, **error_record(exc)}
        traceback.print_exc(file=sys.stderr)
        status = 1
    finally:
        try:
            # the broker has every command and event published before the consumers'
            # cancel-ok comes back, so nothing is lost by disconnecting now
            await asyncio.wait_for(api.disconnect(), DISCONNECT_TIMEOUT)
        except Exception as exc:
            print(f"nuropb client: disconnect failed: {exc!r}", file=sys.stderr)
    print(json.dumps(output), flush=True)
    return status


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        print(f"usage: {sys.argv[0]} AMQP_URL SERVICE_NAME [SCENARIO_JSON]", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    steps = json.loads(sys.argv[3]) if len(sys.argv) == 4 else DEFAULT_SCENARIO
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], steps)))
