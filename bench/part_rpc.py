"""Parts 1-3 (``--parts rpc,publish,encryption``): lab against nuropb 0.1.8, peer process
to peer process, with the pairs alternated round by round (order reversed every other
round) so drift of the machine falls on every pair alike:

1. ``rpc``: round trips/s and latency (p50, p99) of a small echo, sequential (one in flight)
   and concurrent, for lab->lab, nuropb->nuropb, lab->nuropb, nuropb->lab and a bare aio-pika
   echo, all services at the same prefetch, with the CPU per round trip of the client, the
   service and the broker; each ratio to nuropb->nuropb is the median of the per-round ones;
2. ``publish``: commands and events published per second (and delivered to the service per
   second), lab->lab against nuropb->nuropb;
3. ``encryption``: encrypted against plain round trips, lab->lab and nuropb->nuropb.
"""

from __future__ import annotations

import sys
from typing import Any

from .figures import fmt, median, ratios, summarize
from .mesh import SERVICE_NAMES, Mesh
from .peer import PeerError

__all__ = ["bench_encryption", "bench_publish", "bench_rpc", "table"]


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


def table(results: dict[str, Any]) -> list[str]:
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
                    f"{label:16}{mode:12}{fmt(row['rps']):>9}{fmt(row['p50_ms'], 2):>9}"
                    f"{fmt(row['p99_ms'], 2):>9}{fmt(row['client_cpu_us']):>11}"
                    f"{fmt(row['service_cpu_us']):>12}{fmt(row.get('broker_cpu_us')):>11}"
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
                    f"{kind:10}{side:8}{fmt(row['publish_rps']):>13}"
                    f"{fmt(row['delivered_rps']):>13}{fmt(row['client_cpu_us']):>11}"
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
                    f"{label:20}{mode:12}{fmt(row['rps']):>9}{fmt(row['p50_ms'], 2):>9}"
                    f"{fmt(row['p99_ms'], 2):>9}{fmt(row['service_cpu_us']):>12}"
                )
            lines.append("  " + ", ".join(f"{k} {v:.2f}x" for k, v in enc[mode]["ratios"].items()))
        lines.append("")
    return lines
