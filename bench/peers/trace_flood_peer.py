"""A fast publisher of nuropb requests and their responses for the tap benchmark, on pika (run
by the nuropb 0.1.8 venv's python, where pika is).

    python trace_flood_peer.py URL

Op ``calls`` {n, service, unanswered_every, error_every, context}: publishes ``n`` requests to
the RPC exchange with routing key ``service`` and, for all but every ``unanswered_every``-th, the
response to the default exchange with routing key = the request's reply_to, as a nuropb peer
would (every ``error_every``-th an error response), each with ``context`` (default {}).
Nothing is bound for them, so the broker
drops them after routing: with the firehose on, each is a ``publish.`` trace record (2 per
answered call), and nothing else is stored. Answers with the seconds it took.
"""

import json
import sys
import time
import uuid
from typing import Any

import pika
from _common import command_loop, run

RPC_EXCHANGE = "nuropb-rpc-exchange"


def headers(kind: str, trace_id: str) -> dict[str, Any]:
    return {
        "nuropb_protocol": "0.1.1",
        "nuropb_version": "0.1.8",
        "nuropb_type": kind,
        "trace_id": trace_id,
        "encrypted": "",
    }


async def main() -> int:
    connection = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
    channel = connection.channel()
    reply_to = f"nuropb-bench-client-{uuid.uuid4().hex}-rq"

    async def calls(command: dict[str, Any]) -> dict[str, Any]:
        n, service = int(command["n"]), str(command["service"])
        unanswered = int(command.get("unanswered_every") or 0)
        error_every = int(command.get("error_every") or 0)
        context = dict(command.get("context") or {})
        started = time.perf_counter()
        for i in range(n):
            correlation_id = uuid.uuid4().hex
            trace_id = f"flood-{i}"
            request = {
                "tag": "request",
                "service": service,
                "method": "echo",
                "params": {"i": i, "text": "hello"},
                "correlation_id": correlation_id,
                "context": context,
                "trace_id": trace_id,
            }
            channel.basic_publish(
                RPC_EXCHANGE,
                service,
                json.dumps(request),
                pika.BasicProperties(
                    content_type="application/json",
                    correlation_id=correlation_id,
                    reply_to=reply_to,
                    expiration="60000",
                    headers=headers("request", trace_id),
                ),
            )
            if unanswered and i % unanswered == unanswered - 1:
                continue
            failed = bool(error_every) and i % error_every == error_every - 1
            error = {"error": "NuropbValidationError", "description": "no"}
            response = {
                "tag": "response",
                "correlation_id": correlation_id,
                "context": context,
                "trace_id": trace_id,
                "result": None if failed else {"i": i, "text": "hello"},
                "error": error if failed else None,
                "warning": None,
                "reply_to": reply_to,
            }
            channel.basic_publish(
                "",
                reply_to,
                json.dumps(response),
                pika.BasicProperties(
                    content_type="application/json",
                    correlation_id=correlation_id,
                    headers=headers("response", trace_id),
                ),
            )
        connection.process_data_events(0)
        return {"seconds": time.perf_counter() - started, "n": n}

    try:
        await command_loop({"calls": calls})
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    run(main)
