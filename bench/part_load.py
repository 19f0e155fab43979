"""Part 6 (``--parts load``): the notebook's load generator, ``lab.bench``, measured.

Against the same lab echo (``bench-lab``) in the same run, with the clients alternated
round by round (order reversed every other round):

- ``lab.bench`` (closed model, the RPC part's concurrency and count) on a Lab's own loop in
  this process, as in a notebook;
- nuropb 0.1.8's own client (its peer process, the same service, in-flight count and count):
  the generator is not the bottleneck when lab.bench reaches at least its rate;
- the lab's RPC client as the RPC part drives it (the lab peer process): lab.bench's reported
  p50 should be within 10% of it.

Then an open-model run (``rate``) at half the rate lab.bench reached, which the service
holds: the achieved rate should be within 2% of the asked one.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from nuropb_lab.lab import Lab

from .figures import median
from .mesh import LAB_SERVICE, Mesh

__all__ = ["bench_load", "load_table"]

SERVICE = LAB_SERVICE  # the lab echo of the RPC part
PARAMS = {"value": "ping"}
OPEN_RATE_MAX = 2_000.0  # calls/s asked of the open model, at most
CLIENTS = ("lab.bench", "nuropb client", "lab peer")


async def _cpu(mesh: Mesh) -> float:
    return float((await mesh.services["lab"].ask({"op": "cpu"}))["cpu_s"])


async def _lab_bench(mesh: Mesh, lab: Lab, n: int, concurrency: int, label: str) -> dict[str, Any]:
    service0, cpu0 = await _cpu(mesh), time.process_time()
    result = await lab.abench(f"{SERVICE}.echo", PARAMS, n=n, concurrency=concurrency, label=label)
    cpu, service_cpu = time.process_time() - cpu0, await _cpu(mesh) - service0
    s = result.summary()
    return {
        "n": s["count"],
        "errors": s["errors"],
        "rps": s["achieved_rate"],
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "client_cpu_us": cpu / max(s["count"], 1) * 1e6,
        "service_cpu_us": service_cpu / max(s["count"], 1) * 1e6,
    }


async def _peer(mesh: Mesh, kind: str, n: int, concurrency: int) -> dict[str, Any]:
    command = {"op": "rpc", "service": SERVICE, "n": n, "concurrency": concurrency}
    return await mesh.measured(kind, "lab", command)


async def bench_load(mesh: Mesh, results: dict[str, Any]) -> dict[str, Any]:
    """``results``: the run's results so far (the RPC part's lab->lab p50, when it ran)."""
    s = mesh.settings
    n, concurrency = s.conc_n, s.concurrency
    lab = Lab(timeout=30)
    try:
        await lab.aconnect(mesh.url, alias="bench")
        # warm every client up (connections, the describe lab.bench makes first)
        await lab.abench(f"{SERVICE}.echo", PARAMS, n=min(n, 1000), concurrency=concurrency)
        for kind in ("nuropb", "lab"):
            await _peer(mesh, kind, min(n, 1000), concurrency)
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CLIENTS}
        for round_no in range(s.rounds):
            order = CLIENTS if round_no % 2 == 0 else tuple(reversed(CLIENTS))
            for client in order:
                if client == "lab.bench":
                    result = await _lab_bench(mesh, lab, n, concurrency, f"load {round_no + 1}")
                else:
                    kind = "nuropb" if client == "nuropb client" else "lab"
                    result = await _peer(mesh, kind, n, concurrency)
                if result["errors"]:
                    raise RuntimeError(f"{client}: {result['errors']} errors: {result}")
                result["round"] = round_no
                runs[client].append(result)
                print(
                    f"  load round {round_no + 1}/{s.rounds} {client:14} {result['rps']:9.0f} rt/s"
                    f" p50 {result['p50_ms']:.2f} ms",
                    file=sys.stderr,
                )
        keys = ("rps", "p50_ms", "p99_ms", "client_cpu_us", "service_cpu_us")
        summary = {c: {k: median([r[k] for r in rs]) for k in keys} for c, rs in runs.items()}
        paired = list(zip(runs["lab.bench"], runs["nuropb client"], runs["lab peer"], strict=True))
        ratios = {
            "lab.bench/nuropb client": median([a["rps"] / b["rps"] for a, b, _ in paired]),
            "lab.bench p50/lab peer p50": median([a["p50_ms"] / c["p50_ms"] for a, _, c in paired]),
        }
        rpc = results.get("rpc")
        # the open model, at a rate the service holds
        rate = round(min(OPEN_RATE_MAX, summary["lab.bench"]["rps"] / 2), -1) or 100.0
        seconds = 5.0 if n >= 5000 else 1.0
        opened = await lab.abench(
            f"{SERVICE}.echo", PARAMS, rate=rate, duration=seconds, label="load open"
        )
        o = opened.summary()
        open_model = {
            "asked_rate": rate,
            "seconds": seconds,
            "count": o["count"],
            "errors": o["errors"],
            "achieved_rate": o["achieved_rate"],
            "off_pct": abs(o["achieved_rate"] - rate) / rate * 100,
            "p50_ms": o["p50_ms"],
            "p99_ms": o["p99_ms"],
            "late_sends": o["late_sends"],
            "unsent": o["unsent"],
        }
        return {
            "n": n,
            "concurrency": concurrency,
            "clients": summary,
            "ratios": ratios,
            "rpc_part_lab_p50_ms": rpc["concurrent"]["pairs"]["lab->lab"]["p50_ms"]
            if rpc
            else None,
            "open": open_model,
            "runs": runs,
        }
    finally:
        await asyncio.to_thread(lab.close)


def load_table(results: dict[str, Any]) -> list[str]:
    load = results.get("load")
    if not load:
        return []
    lines = [
        f"Load generator: lab.bench against the lab echo (closed, {load['concurrency']} in flight,"
        f" {load['n']:,} calls; medians of {results['settings']['rounds']} alternated rounds)"
    ]
    header = (
        f"{'client':16}{'rt/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'client us':>11}{'service us':>12}"
    )
    lines += [header, "-" * len(header)]
    for client, row in load["clients"].items():
        lines.append(
            f"{client:16}{row['rps']:>9,.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['client_cpu_us']:>11,.0f}{row['service_cpu_us']:>12,.0f}"
        )
    ratios = load["ratios"]
    lines.append(
        f"  lab.bench / nuropb client {ratios['lab.bench/nuropb client']:.2f}x (goal >= 1.0x);"
        f" lab.bench p50 / lab peer p50 {ratios['lab.bench p50/lab peer p50']:.2f}"
        " (goal within 10%)"
    )
    o = load["open"]
    lines.append(
        f"  open model: asked {o['asked_rate']:,.0f}/s for {o['seconds']:g} s, achieved"
        f" {o['achieved_rate']:,.1f}/s ({o['off_pct']:.2f}% off; goal within 2%), p50"
        f" {o['p50_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms, {o['late_sends']} sent late,"
        f" {o['unsent']} unsent"
    )
    lines.append("")
    return lines
