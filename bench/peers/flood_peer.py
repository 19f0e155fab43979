"""A fast event publisher for the tail benchmark: nuropb events, pre-encoded, on pika
(run by the nuropb 0.1.8 venv's python, where pika is).

    python flood_peer.py URL

Op ``flood`` {topic, n}: publishes ``n`` events on ``topic`` as fast as pika's blocking
connection goes; answers with the seconds it took. See _common.py for the protocol.
"""

import json
import sys
import time
import uuid
from typing import Any

import pika
from _common import command_loop, run

HEADERS = {
    "nuropb_protocol": "0.1.1",
    "nuropb_version": "0.1.8",
    "nuropb_type": "event",
    "trace_id": None,
    "encrypted": "",
}


async def main() -> int:
    connection = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
    channel = connection.channel()

    async def flood(command: dict[str, Any]) -> dict[str, Any]:
        topic, n = command["topic"], int(command["n"])
        properties = pika.BasicProperties(content_type="application/json", headers=HEADERS)
        started = time.perf_counter()
        for i in range(n):
            body = {
                "tag": "event",
                "topic": topic,
                "event": {"i": i, "room": "lab", "celsius": 21.5},
                "context": {},
                "trace_id": None,
                "correlation_id": uuid.uuid4().hex,
                "target": None,
            }
            channel.basic_publish("nuropb-events-exchange", topic, json.dumps(body), properties)
        connection.process_data_events(0)
        return {"seconds": time.perf_counter() - started, "n": n}

    try:
        await command_loop({"flood": flood})
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    run(main)
