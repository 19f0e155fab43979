"""The benchmark: nuropb_lab's RMQAPI against the published nuropb 0.1.8, on one broker.

``python -m bench`` makes a fresh mesh (vhost), starts every peer in a process of its own
(services and clients; nuropb's under the nuropb 0.1.8 venv's python), and measures, with the
pairs alternated round by round so drift of the machine falls on every pair alike:

1. RPC round trips/s and latency (p50, p99) of a small echo, sequential (one in flight) and
   concurrent, for lab->lab, nuropb->nuropb, lab->nuropb, nuropb->lab and a bare aio-pika
   echo, all services at the same prefetch;
2. commands and events published per second (and delivered to the service per second);
3. encrypted against plain round trips;
4. event tail ingest: events/s into a lab tail, RSS growth, the time to build ``.df``;
5. discovery: the time for ``services()`` on a mesh of 20 services;
6. load: ``lab.bench`` against nuropb's own client and the lab's (part_load.py).

It prints a table and writes JSON. The vhost is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from nuropb_lab.lab import Lab
from nuropb_lab.mesh import ManagementAPI, configure_mesh, parse_amqp_url

from . import part_tap
from .part_load import bench_load, load_table
from .peer import Peer, PeerError, settled

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parent / "peers"
NUROPB_VENV = ROOT / ".cache" / "nuropb-0.1.8"
NUROPB_PYTHON = NUROPB_VENV / "bin" / "python"
DEFAULT_BASE_URL = "amqp://guest:guest@127.0.0.1:5672/"

LAB_SERVICE = "bench-lab"
NUROPB_SERVICE = "bench-nuropb"
BARE_QUEUE = "bench-bare-echo"

# (label, client kind, service kind)
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("lab->lab", "lab", "lab"),
    ("nuropb->nuropb", "nuropb", "nuropb"),
    ("lab->nuropb", "lab", "nuropb"),
    ("nuropb->lab", "nuropb", "lab"),
    ("bare aio-pika", "bare", "bare"),
)
SERVICE_NAMES = {"lab": LAB_SERVICE, "nuropb": NUROPB_SERVICE, "bare": BARE_QUEUE}


@dataclasses.dataclass
class Settings:
    base_url: str
    rounds: int
    seq_n: int
    conc_n: int
    concurrency: int
    prefetch: int
    publish_n: int
    encrypted_seq_n: int
    encrypted_conc_n: int
    uvloop: bool
    json_path: Path
    profile_dir: Path | None
    parts: frozenset[str]
    tail_n: int = 50_000
    tail_total: int = 200_000
    tail_rows: int = 10_000
    discovery_n: int = 20
    pairs: tuple[tuple[str, str, str], ...] = PAIRS


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


def nuropb_python() -> Path:
    """The nuropb 0.1.8 venv's python, made by scripts/setup.sh when missing."""
    check = [str(NUROPB_PYTHON), "-c", "import nuropb.rmq_api"]
    if not NUROPB_PYTHON.exists() or subprocess.run(check, capture_output=True).returncode:
        script = "source scripts/setup.sh && setup_nuropb_venv"
        subprocess.run(["bash", "-c", script], cwd=ROOT, check=True)
    return NUROPB_PYTHON


def version_of(package: str, python: Path | None = None) -> str | None:
    if python is None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or None


_BROKER_PID: list[int | None] = []


def _broker_pid(port: int) -> int | None:
    """The pid of the process listening on the broker's port, when it runs on this machine."""
    try:
        import psutil
    except ImportError:
        return None
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return conn.pid
    return None


def broker_cpu(port: int) -> float | None:
    """CPU seconds of the broker process so far (None when it cannot be seen)."""
    if not _BROKER_PID:
        _BROKER_PID.append(_broker_pid(port))
    pid = _BROKER_PID[0]
    if pid is None:
        return None
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


# --- the mesh and its peers ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_mesh(base_url: str) -> AsyncIterator[str]:
    vhost = f"bench-{uuid.uuid4().hex[:8]}"
    url = f"{base_url}/{vhost}"
    await configure_mesh(url)
    try:
        yield url
    finally:
        management = ManagementAPI.for_target(parse_amqp_url(url))
        with contextlib.suppress(Exception):
            await management.delete_vhost(vhost)


class Mesh:
    """The peers of one run: a service and a client of each kind."""

    def __init__(self, settings: Settings, url: str, log_dir: Path) -> None:
        self.settings = settings
        self.url = url
        self.log_dir = log_dir
        self.services: dict[str, Peer] = {}
        self.clients: dict[str, Peer] = {}

    def _argv(self, kind: str, role: str) -> tuple[list[str], dict[str, str]]:
        s = self.settings
        env: dict[str, str] = {}
        if kind == "nuropb":
            python, script = str(nuropb_python()), "nuropb_peer.py"
        else:
            python, script = sys.executable, f"{kind}_peer.py"
            if s.profile_dir is not None and kind == "lab":
                env["BENCH_PROFILE"] = str((s.profile_dir / f"lab-{role}.prof").resolve())
        if role == "serve":
            args = ["serve", self.url, SERVICE_NAMES[kind], str(s.prefetch)]
        else:
            args = ["client", self.url, str(s.prefetch)]
        if kind != "nuropb" and s.uvloop:
            args.append("--uvloop")
        return [python, str(PEERS / script), *args], env

    async def start(self, kinds: set[str]) -> None:
        if self.settings.profile_dir is not None:
            self.settings.profile_dir.mkdir(parents=True, exist_ok=True)
        peers = []
        for kind in sorted(kinds):
            argv, env = self._argv(kind, "serve")
            self.services[kind] = Peer(f"{kind}-service", argv, self.log_dir, env)
            argv, env = self._argv(kind, "client")
            self.clients[kind] = Peer(f"{kind}-client", argv, self.log_dir, env)
            peers += [self.services[kind], self.clients[kind]]
        # services first: a client may call at once
        await asyncio.gather(*(self.services[k].start() for k in sorted(kinds)))
        await asyncio.gather(*(self.clients[k].start() for k in sorted(kinds)))

    async def stop(self) -> None:
        await asyncio.gather(
            *(p.stop() for p in [*self.clients.values(), *self.services.values()]),
            return_exceptions=True,
        )

    async def measured(self, client: str, service: str, command: dict[str, Any]) -> dict[str, Any]:
        """Run ``command`` on a client; add the service's and the broker's CPU per operation."""
        service_peer = self.services[service]
        s_cpu0 = (await service_peer.ask({"op": "cpu"}))["cpu_s"]
        port = parse_amqp_url(self.url).port
        b_cpu0 = broker_cpu(port)
        result = await self.clients[client].ask(command)
        b_cpu1 = broker_cpu(port)
        s_cpu1 = (await service_peer.ask({"op": "cpu"}))["cpu_s"]
        n = max(1, int(result["n"]))
        result["client_cpu_us"] = result["client_cpu_s"] / n * 1e6
        result["service_cpu_us"] = (s_cpu1 - s_cpu0) / n * 1e6
        if b_cpu0 is not None and b_cpu1 is not None:
            result["broker_cpu_us"] = (b_cpu1 - b_cpu0) / n * 1e6
        return result


# --- the parts ----------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarize(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, float]:
    return {key: median([r[key] for r in runs if key in r]) for key in keys}


def ratios(per_round: dict[int, dict[str, float]], top: str, bottom: str) -> float:
    values = [
        r[top] / r[bottom] for r in per_round.values() if r.get(bottom) and r.get(top) is not None
    ]
    return median(values)


async def bench_rpc(mesh: Mesh) -> dict[str, Any]:
    s = mesh.settings
    modes = {"sequential": (s.seq_n, 1), "concurrent": (s.conc_n, s.concurrency)}
    # warm up every pair (connections, JIT-less caches, queues)
    pairs = s.pairs
    for _, client, service in pairs:
        await mesh.clients[client].ask(
            {"op": "rpc", "service": SERVICE_NAMES[service], "n": 200, "concurrency": 20}
        )
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {m: {p[0]: [] for p in pairs} for m in modes}
    per_round: dict[str, dict[int, dict[str, float]]] = {m: {} for m in modes}
    for round_no in range(s.rounds):
        order = pairs if round_no % 2 == 0 else tuple(reversed(pairs))
        for mode, (n, concurrency) in modes.items():
            for label, client, service in order:
                result = await mesh.measured(
                    client,
                    service,
                    {
                        "op": "rpc",
                        "service": SERVICE_NAMES[service],
                        "n": n,
                        "concurrency": concurrency,
                    },
                )
                if result["errors"]:
                    raise PeerError(f"{label} {mode}: {result['errors']} errors, e.g. {result}")
                result["round"] = round_no
                runs[mode][label].append(result)
                per_round[mode].setdefault(round_no, {})[label] = result["rps"]
                print(
                    f"  round {round_no + 1}/{s.rounds} {mode:10} {label:15}"
                    f" {result['rps']:9.0f} rt/s",
                    file=sys.stderr,
                )
    keys = ("rps", "p50_ms", "p99_ms", "client_cpu_us", "service_cpu_us", "broker_cpu_us")
    out: dict[str, Any] = {"prefetch": s.prefetch, "concurrency": s.concurrency}
    for mode in modes:
        out[mode] = {
            "n": modes[mode][0],
            "pairs": {label: summarize(rs, keys) for label, rs in runs[mode].items()},
            "ratios": {
                f"{label}/nuropb->nuropb": ratios(per_round[mode], label, "nuropb->nuropb")
                for label, _, _ in pairs
                if label != "nuropb->nuropb"
            },
            "runs": runs[mode],
        }
    return out


async def bench_publish(mesh: Mesh) -> dict[str, Any]:
    s = mesh.settings
    out: dict[str, Any] = {"n": s.publish_n}
    for kind in ("commands", "events"):
        runs: dict[str, list[dict[str, Any]]] = {"lab": [], "nuropb": []}
        for round_no in range(s.rounds):
            order = ("lab", "nuropb") if round_no % 2 == 0 else ("nuropb", "lab")
            for side in order:
                result = await mesh.measured(
                    side,
                    side,
                    {
                        "op": "publish",
                        "kind": kind,
                        "service": SERVICE_NAMES[side],
                        "n": s.publish_n,
                    },
                )
                if not result["complete"]:
                    raise PeerError(f"{side} {kind}: the service did not get them all: {result}")
                runs[side].append(result)
                print(
                    f"  round {round_no + 1}/{s.rounds} {kind:8} {side:7}"
                    f" published {result['publish_rps']:9.0f}/s"
                    f" delivered {result['delivered_rps']:9.0f}/s",
                    file=sys.stderr,
                )
        keys = ("publish_rps", "delivered_rps", "client_cpu_us", "service_cpu_us")
        summary = {side: summarize(rs, keys) for side, rs in runs.items()}
        out[kind] = {
            **summary,
            "ratio_publish": _ratio(runs, "publish_rps"),
            "ratio_delivered": _ratio(runs, "delivered_rps"),
            "runs": runs,
        }
    return out


def _ratio(runs: dict[str, list[dict[str, Any]]], key: str) -> float:
    pairs = zip(runs["lab"], runs["nuropb"], strict=True)
    return median([a[key] / b[key] for a, b in pairs if b[key]])


async def bench_encryption(mesh: Mesh) -> dict[str, Any]:
    s = mesh.settings
    modes = {
        "sequential": (s.encrypted_seq_n, 1),
        "concurrent": (s.encrypted_conc_n, s.concurrency),
    }
    sides = ("lab", "nuropb")
    out: dict[str, Any] = {}
    for mode, (n, concurrency) in modes.items():
        runs: dict[str, list[dict[str, Any]]] = {
            f"{side} {kind}": [] for side in sides for kind in ("plain", "encrypted")
        }
        for round_no in range(s.rounds):
            order = sides if round_no % 2 == 0 else tuple(reversed(sides))
            for side in order:
                for encrypted in (False, True):
                    result = await mesh.measured(
                        side,
                        side,
                        {
                            "op": "rpc",
                            "service": SERVICE_NAMES[side],
                            "n": n,
                            "concurrency": concurrency,
                            "encrypted": encrypted,
                        },
                    )
                    if result["errors"]:
                        raise PeerError(f"{side} encrypted={encrypted}: {result}")
                    runs[f"{side} {'encrypted' if encrypted else 'plain'}"].append(result)
        keys = ("rps", "p50_ms", "p99_ms", "client_cpu_us", "service_cpu_us")
        summary = {label: summarize(rs, keys) for label, rs in runs.items()}
        out[mode] = {
            "n": n,
            "pairs": summary,
            "ratios": {
                f"{side} encrypted/plain": median(
                    [
                        e["rps"] / p["rps"]
                        for e, p in zip(
                            runs[f"{side} encrypted"], runs[f"{side} plain"], strict=True
                        )
                    ]
                )
                for side in sides
            },
            "runs": runs,
        }
    return out


BACKLOG_MAX = 20_000  # events flooded while the tail is held (the hold stays well under 15 s)


class _Arrivals:
    """Counts events as a tail keeps them (called in the Lab loop, once per event)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.first = self.last = 0.0

    def __call__(self, _tail: object) -> None:
        now = time.perf_counter()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def bench_tail(mesh: Mesh) -> dict[str, Any]:
    """Part 4: event tail ingest, with a lab tail in this process (on the Lab's own loop, as
    in a notebook) keeping a ring buffer of ``tail_rows``.

    - ingest: the Lab loop is held while a pika publisher floods ``tail_n`` events into the
      tail's queue, then let go: events/s from the first to the last arrival is what the
      tail takes in, whatever the publisher's speed (on 2 cores publisher, broker and tail
      cannot all run flat out at once; the live rate with the flood running is reported too);
    - memory: RSS growth once ``tail_total`` events went through the buffer;
    - ``.df`` of a full buffer: median time of 5 builds.
    """
    s = mesh.settings
    argv = [str(nuropb_python()), str(PEERS / "flood_peer.py"), mesh.url]
    flood = Peer("flood", argv, mesh.log_dir)
    await flood.start()
    lab = Lab(timeout=30)
    try:
        await lab.aconnect(mesh.url, alias="bench")
        tail = await lab.atail("bench.flood.#", max_rows=s.tail_rows, backlog=s.tail_n)
        arrivals = _Arrivals()
        tail.add_listener(arrivals)
        rss_before = rss_bytes()
        runs = []
        backlog_n = min(s.tail_n, BACKLOG_MAX)
        for round_no in range(s.rounds):
            # live: the flood and the tail at once
            arrivals.reset()
            cpu0 = time.process_time()
            sent = await flood.ask({"op": "flood", "topic": "bench.flood.x", "n": s.tail_n})
            await settled(lambda: arrivals.count, "the tail was still taking events", timeout=120.0)
            cpu_us = (time.process_time() - cpu0) / max(arrivals.count, 1) * 1e6
            live = arrivals.count / max(arrivals.last - arrivals.first, 1e-9)
            # backlog: a flood while the tail's loop is held, then taken in at once. The hold
            # stays short: RabbitMQ drops a connection whose socket blocks its writes for 15 s.
            arrivals.reset()
            release = threading.Event()
            lab.runner.call_soon(release.wait, 30)  # blocks the Lab loop until released
            try:
                await flood.ask({"op": "flood", "topic": "bench.flood.x", "n": backlog_n})
            finally:
                release.set()
            await settled(lambda: arrivals.count, "the tail was still taking events", timeout=120.0)
            drained = arrivals.count / max(arrivals.last - arrivals.first, 1e-9)
            runs.append(
                {
                    "round": round_no,
                    "events": s.tail_n,
                    "published_per_s": s.tail_n / sent["seconds"],
                    "live_per_s": live,
                    "cpu_us_per_event": cpu_us,
                    "backlog": backlog_n,
                    "backlog_per_s": drained,
                    "backlog_received": arrivals.count,
                }
            )
            print(
                f"  tail round {round_no + 1}/{s.rounds}: {drained:,.0f} events/s from a backlog"
                f" of {backlog_n:,}, {live:,.0f}/s live (published at"
                f" {runs[-1]['published_per_s']:,.0f}/s), {cpu_us:.0f} us CPU per event",
                flush=True,
            )
        while tail.received < s.tail_total:
            arrivals.reset()
            n = min(50_000, s.tail_total - tail.received)
            await flood.ask({"op": "flood", "topic": "bench.flood.x", "n": n})
            await settled(lambda: arrivals.count, "the tail was still taking events", timeout=120.0)
        rss_after = rss_bytes()
        df_seconds = []
        for _ in range(5):
            started = time.perf_counter()
            frame = tail.df
            df_seconds.append(time.perf_counter() - started)
        result = {
            "rows": s.tail_rows,
            "ingest_per_s": median([r["backlog_per_s"] for r in runs]),
            "live_per_s": median([r["live_per_s"] for r in runs]),
            "published_per_s": median([r["published_per_s"] for r in runs]),
            "cpu_us_per_event": median([r["cpu_us_per_event"] for r in runs]),
            "runs": runs,
            "events_total": tail.received,
            "rss_growth_mb": (rss_after - rss_before) / 2**20,
            "df_rows": len(frame),
            "df_columns": len(frame.columns),
            "df_ms": median(df_seconds) * 1000,
        }
        tail.stop()
        return result
    finally:
        await asyncio.to_thread(lab.close)
        await flood.stop()


async def bench_discovery(mesh: Mesh) -> dict[str, Any]:
    """Part 5: ``services()`` on a mesh of ``discovery_n`` services (served by one peer
    process): names from the management API, counts by passive declares, every
    ``nuropb_describe`` at once. First call, then the median of 5 more."""
    s = mesh.settings
    argv = [sys.executable, str(PEERS / "many_peer.py"), mesh.url, "disc", str(s.discovery_n)]
    many = Peer("many-services", argv, mesh.log_dir)
    await many.start()
    lab = Lab(timeout=30)
    try:
        await lab.aconnect(mesh.url, alias="bench")
        seconds = []
        for _ in range(6):
            started = time.perf_counter()
            frame = await lab.aservices()
            seconds.append(time.perf_counter() - started)
        ours = frame[frame["service"].str.startswith("disc-")]
        described = int(((ours["instances"] == 1) & (ours["methods"] == 3)).sum())
        return {
            "services": s.discovery_n,
            "described": described,
            "listed": len(frame),
            "first_s": seconds[0],
            "median_s": median(seconds[1:]),
        }
    finally:
        await asyncio.to_thread(lab.close)
        await many.stop()


# --- output ------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    rpc = results.get("rpc")
    if rpc:
        lines.append(
            f"RPC round trips (small echo, service prefetch {rpc['prefetch']} on both sides,"
            f" concurrent = {rpc['concurrency']} in flight; medians of"
            f" {results['settings']['rounds']} alternated rounds)"
        )
        header = (
            f"{'pair':16}{'mode':12}{'rt/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'client us':>11}{'service us':>12}{'broker us':>11}{'vs nuropb':>11}"
        )
        lines += [header, "-" * len(header)]
        for mode in ("sequential", "concurrent"):
            for label in rpc[mode]["pairs"]:
                row = rpc[mode]["pairs"][label]
                ratio = rpc[mode]["ratios"].get(f"{label}/nuropb->nuropb")
                lines.append(
                    f"{label:16}{mode:12}{_fmt(row['rps']):>9}{_fmt(row['p50_ms'], 2):>9}"
                    f"{_fmt(row['p99_ms'], 2):>9}{_fmt(row['client_cpu_us']):>11}"
                    f"{_fmt(row['service_cpu_us']):>12}{_fmt(row.get('broker_cpu_us')):>11}"
                    f"{(f'{ratio:.2f}x' if ratio else '-'):>11}"
                )
        lines.append("(us = CPU microseconds per round trip in that process)")
        lines.append("")
    publish = results.get("publish")
    if publish:
        lines.append(f"Commands and events ({publish['n']} per run; lab->lab and nuropb->nuropb)")
        header = f"{'kind':10}{'side':8}{'published/s':>13}{'delivered/s':>13}{'client us':>11}"
        lines += [header, "-" * len(header)]
        for kind in ("commands", "events"):
            for side in ("lab", "nuropb"):
                row = publish[kind][side]
                lines.append(
                    f"{kind:10}{side:8}{_fmt(row['publish_rps']):>13}"
                    f"{_fmt(row['delivered_rps']):>13}{_fmt(row['client_cpu_us']):>11}"
                )
            lines.append(
                f"{'':10}{'lab/nuropb':18} published {publish[kind]['ratio_publish']:.2f}x,"
                f" delivered {publish[kind]['ratio_delivered']:.2f}x"
            )
        lines.append("")
    enc = results.get("encryption")
    if enc:
        lines.append("Encrypted against plain round trips (echo; lab->lab and nuropb->nuropb)")
        header = f"{'side':20}{'mode':12}{'rt/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'service us':>12}"
        lines += [header, "-" * len(header)]
        for mode in ("sequential", "concurrent"):
            for label, row in enc[mode]["pairs"].items():
                lines.append(
                    f"{label:20}{mode:12}{_fmt(row['rps']):>9}{_fmt(row['p50_ms'], 2):>9}"
                    f"{_fmt(row['p99_ms'], 2):>9}{_fmt(row['service_cpu_us']):>12}"
                )
            lines.append("  " + ", ".join(f"{k} {v:.2f}x" for k, v in enc[mode]["ratios"].items()))
        lines.append("")
    tail = results.get("tail")
    if tail:
        lines.append(f"Event tail ingest (a pika flood into a lab tail of {tail['rows']:,} rows)")
        lines.append(
            f"  taken in from a backlog: {_fmt(tail['ingest_per_s'])} events/s (goal >= 20,000)"
        )
        lines.append(
            f"  live, with the publisher running: {_fmt(tail['live_per_s'])} events/s"
            f" (published at {_fmt(tail['published_per_s'])}/s; the tail's process spent"
            f" {tail['cpu_us_per_event']:.0f} us CPU per event)"
        )
        lines.append(
            f"  RSS growth after {tail['events_total']:,} events: {tail['rss_growth_mb']:.1f} MB"
            " (goal < 100 MB)"
        )
        lines.append(
            f"  .df of {tail['df_rows']:,} rows x {tail['df_columns']} columns:"
            f" {tail['df_ms']:.1f} ms (goal < 50 ms)"
        )
        lines.append("")
    lines += load_table(results)
    discovery = results.get("discovery")
    if discovery:
        first, then = discovery["first_s"] * 1000, discovery["median_s"] * 1000
        lines.append(
            f"Discovery: services() on {discovery['services']} services ({discovery['described']}"
            f" described, {discovery['listed']} listed): first {first:.0f} ms,"
            f" then median {then:.0f} ms (goal < 1 s)"
        )
    lines += part_tap.table(results)
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
        },
    }
    kinds = {"lab", "nuropb"}
    if "rpc" in settings.parts and any(p[1] == "bare" for p in settings.pairs):
        kinds.add("bare")
    with tempfile.TemporaryDirectory(prefix="nuropb-bench-") as log_dir:
        async with fresh_mesh(settings.base_url) as url:
            mesh = Mesh(settings, url, Path(log_dir))
            try:
                await mesh.start(kinds)
                if "rpc" in settings.parts:
                    results["rpc"] = await bench_rpc(mesh)
                if "publish" in settings.parts:
                    results["publish"] = await bench_publish(mesh)
                if "encryption" in settings.parts:
                    results["encryption"] = await bench_encryption(mesh)
                if "tail" in settings.parts:
                    results["tail"] = await bench_tail(mesh)
                if "discovery" in settings.parts:
                    results["discovery"] = await bench_discovery(mesh)
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
    print(table(results))
    settings.json_path.parent.mkdir(parents=True, exist_ok=True)
    settings.json_path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nJSON: {settings.json_path}")
    return 0
