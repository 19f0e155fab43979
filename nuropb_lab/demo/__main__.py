"""``python -m nuropb_lab.demo``: serve the demo mesh (or ``wait`` until one answers)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from ..lab.connections import DEFAULT_URL
from ..mesh import parse_amqp_url
from .broker import BrokerError, BrokerInfo, ensure_broker, stop_broker
from .run import DemoMesh, run_demo, wait_for_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nuropb-lab-demo", description="The nuropb-lab demo mesh."
    )
    parser.add_argument("action", nargs="?", choices=("run", "wait"), default="run")
    parser.add_argument(
        "--url", default=os.environ.get("NUROPB_AMQP_URL") or DEFAULT_URL, help="mesh URL"
    )
    parser.add_argument("--for", dest="seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--rate", type=float, default=8.0, help="sensor readings per second")
    parser.add_argument(
        "--traffic", type=float, default=3.0, help="web shop visits per second (default 3)"
    )
    parser.add_argument(
        "--no-traffic", dest="traffic", action="store_const", const=0.0, help="no web shop"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="wait: give up after this")
    parser.add_argument("--no-broker", action="store_true", help="do not check or start a broker")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # the transport reports a lost connection itself, in one line
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
    masked = parse_amqp_url(args.url).masked
    if args.action == "wait":
        try:
            took = asyncio.run(wait_for_demo(args.url, args.timeout))
        except TimeoutError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"demo mesh answers on {masked} (after {took:.1f} s)")
        return 0
    broker: BrokerInfo | None = None
    if not args.no_broker:
        try:
            broker = ensure_broker(args.url)
        except BrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(demo: DemoMesh) -> None:
            names = ", ".join(demo.apis)
            print(f"demo mesh ready on {masked}: {names} (Ctrl-C stops)", flush=True)

        await run_demo(args.url, args.seconds, args.rate, stop, ready, traffic=args.traffic)

    try:
        asyncio.run(serve())
    finally:
        if broker is not None and broker.started:  # only a broker this run started
            print("stopping the broker this run started ...", file=sys.stderr, flush=True)
            stop_broker(broker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
