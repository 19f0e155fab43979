"""The benchmark: nuropb_lab's RMQAPI against the published nuropb 0.1.8, on one broker.

``python -m bench`` makes a fresh mesh (vhost), starts every peer in a process of its own
(services and clients; nuropb's under the nuropb 0.1.8 venv's python), and measures, with the
pairs alternated round by round so drift of the machine falls on every pair alike:

1. RPC round trips/s and latency (p50, p99) of a small echo, sequential (one in flight) and
   concurrent, for lab->lab, nuropb->nuropb, lab->nuropb, nuropb->lab and a bare aio-pika
   echo, all services at the same prefetch (part_rpc.py);
2. commands and events published per second (and delivered to the service per second)
   (part_rpc.py);
3. encrypted against plain round trips (part_rpc.py);
4. event tail ingest: events/s into a lab tail, RSS growth, the time to build ``.df``
   (part_tail.py);
5. discovery: the time for ``services()`` on a mesh of 20 services (part_discovery.py);
6. load: ``lab.bench`` against nuropb's own client and the lab's (part_load.py);
7. tap: the wire tap (``lab.tap`` on the firehose): ingest, memory, its cost to the mesh
   (part_tap.py).

It prints a table and writes JSON. The vhost is deleted afterwards.

This module is the entry: it reads the command line, runs the parts asked for in the order
above and prints their sections of the table (each from the part's module; load's comes
before discovery's). The settings, the mesh and its peers are in mesh.py; the medians,
ratios and RSS the parts share are in figures.py.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from nuropb_lab.mesh import ManagementAPI, ManagementUnavailable, parse_amqp_url
from nuropb_lab.mesh.known_keys import ENV as KNOWN_KEYS_ENV

from . import part_discovery, part_rpc, part_tail, part_tap
from .mesh import PAIRS, ROOT, Mesh, Settings, fresh_mesh, nuropb_python
from .part_load import bench_load, load_table

DEFAULT_BASE_URL = "amqp://guest:guest@127.0.0.1:5672/"


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("NUROPB_TEST_AMQP_URL", DEFAULT_BASE_URL),
        help="broker URL without a vhost (default: $NUROPB_TEST_AMQP_URL or %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternation rounds (default 4)")
    parser.add_argument("--seq", type=int, default=2000, help="sequential round trips per run")
    parser.add_argument("--conc", type=int, default=10000, help="concurrent round trips per run")
    parser.add_argument("--concurrency", type=int, default=100, help="requests in flight")
    parser.add_argument("--prefetch", type=int, default=50, help="service prefetch, both sides")
    parser.add_argument("--publish", type=int, default=10000, help="commands/events per run")
    parser.add_argument("--enc-seq", type=int, default=300, help="encrypted sequential calls")
    parser.add_argument("--enc-conc", type=int, default=1000, help="encrypted concurrent calls")
    parser.add_argument("--tail-n", type=int, default=50_000, help="events per tail ingest run")
    parser.add_argument("--tail-total", type=int, default=200_000, help="events through the tail")
    parser.add_argument("--tail-rows", type=int, default=10_000, help="the tail's buffer")
    parser.add_argument("--discovery-n", type=int, default=20, help="services to discover")
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="run the lab and bare aio-pika peers on uvloop (nuropb's always run on asyncio)",
    )
    parser.add_argument(
        "--parts",
        default="rpc,publish,encryption,tail,discovery,load,tap",
        help="comma-separated parts to run (default: all)",
    )
    parser.add_argument(
        "--pairs",
        default=",".join(p[0] for p in PAIRS),
        help="comma-separated RPC pairs (default: all; nuropb->nuropb is always kept)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts: a smoke run of a few seconds"
    )
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results.json", help="where to write JSON"
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="run the lab peers under cProfile, writing .prof files here",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seq, args.conc, args.publish = 1, 30, 100, 100
        args.enc_seq, args.enc_conc = 5, 20
        args.tail_n, args.tail_total, args.tail_rows, args.discovery_n = 500, 1500, 200, 3
    return Settings(
        base_url=args.url.rstrip("/"),
        rounds=max(1, args.rounds),
        seq_n=args.seq,
        conc_n=args.conc,
        concurrency=args.concurrency,
        prefetch=args.prefetch,
        publish_n=args.publish,
        encrypted_seq_n=args.enc_seq,
        encrypted_conc_n=args.enc_conc,
        uvloop=args.uvloop,
        json_path=args.json,
        profile_dir=args.profile_dir,
        parts=frozenset(p.strip() for p in args.parts.split(",") if p.strip()),
        tail_n=args.tail_n,
        tail_total=args.tail_total,
        tail_rows=args.tail_rows,
        discovery_n=args.discovery_n,
        pairs=tuple(p for p in PAIRS if p[0] in {*args.pairs.split(","), "nuropb->nuropb"}),
    )


# --- environment ------------------------------------------------------------------------


def version_of(package: str, python: Path | None = None) -> str | None:
    if python is None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or None


async def broker_version(base_url: str) -> str | None:
    """The RabbitMQ version of the broker benched, from its management API."""
    management = ManagementAPI.for_target(parse_amqp_url(f"{base_url}/x"))
    try:
        return str((await management.get("overview"))["rabbitmq_version"])
    except (ManagementUnavailable, KeyError, TypeError):
        return None


# --- output ------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    lines = [
        *part_rpc.table(results),
        *part_tail.table(results),
        *load_table(results),
        *part_discovery.table(results),
        *part_tap.table(results),
    ]
    return "\n".join(lines)


async def run(settings: Settings) -> dict[str, Any]:
    started = time.time()
    results: dict[str, Any] = {
        "settings": {
            k: (str(v) if isinstance(v, Path) else sorted(v) if isinstance(v, frozenset) else v)
            for k, v in dataclasses.asdict(settings).items()
            if k != "base_url"
        },
        "environment": {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_at_start": os.getloadavg(),
            "nuropb_lab": version_of("nuropb-lab"),
            "aio_pika": version_of("aio-pika"),
            "aiormq": version_of("aiormq"),
            "uvloop": version_of("uvloop") if settings.uvloop else None,
            "nuropb": version_of("nuropb", nuropb_python()),
            "pika": version_of("pika", nuropb_python()),
            "rabbitmq": await broker_version(settings.base_url),
        },
    }
    kinds = {"lab", "nuropb"}
    if "rpc" in settings.parts and any(p[1] == "bare" for p in settings.pairs):
        kinds.add("bare")
    with tempfile.TemporaryDirectory(prefix="nuropb-bench-") as log_dir:
        # the bench's Labs pin the keys of its throwaway mesh in a file of the run's own
        os.environ[KNOWN_KEYS_ENV] = str(Path(log_dir) / "known_keys.json")
        async with fresh_mesh(settings.base_url) as url:
            mesh = Mesh(settings, url, Path(log_dir))
            try:
                await mesh.start(kinds)
                if "rpc" in settings.parts:
                    results["rpc"] = await part_rpc.bench_rpc(mesh)
                if "publish" in settings.parts:
                    results["publish"] = await part_rpc.bench_publish(mesh)
                if "encryption" in settings.parts:
                    results["encryption"] = await part_rpc.bench_encryption(mesh)
                if "tail" in settings.parts:
                    results["tail"] = await part_tail.bench_tail(mesh)
                if "discovery" in settings.parts:
                    results["discovery"] = await part_discovery.bench_discovery(mesh)
                if "load" in settings.parts:
                    results["load"] = await bench_load(mesh, results)
                if "tap" in settings.parts:
                    results["tap"] = await part_tap.bench_tap(mesh)
            finally:
                await mesh.stop()
    results["environment"]["seconds"] = round(time.time() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    results = asyncio.run(run(settings))
    print(f"RabbitMQ {results['environment']['rabbitmq']} at {settings.base_url.split('@')[-1]}")
    print(table(results))
    settings.json_path.parent.mkdir(parents=True, exist_ok=True)
    settings.json_path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nJSON: {settings.json_path}")
    return 0
