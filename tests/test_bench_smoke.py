"""A smoke run of the benchmark (``python -m bench --quick``): it runs end to end against the
real broker and writes the JSON it promises. Counts are tiny and nothing about speed is
asserted: the figures of a real run are in bench/RESULTS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from support import BASE_URL, ROOT

PAIRS = ("lab->lab", "nuropb->nuropb", "lab->nuropb", "nuropb->lab", "bare aio-pika")
RPC_FIGURES = ("rps", "p50_ms", "p99_ms", "client_cpu_us", "service_cpu_us")


def positive(row: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        assert isinstance(row[key], int | float) and row[key] > 0, (key, row)


def test_quick_benchmark_run_writes_every_figure(nuropb_python: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--url", BASE_URL, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "RPC round trips" in run.stdout and "lab->lab" in run.stdout
    results = json.loads(out.read_text())

    assert results["settings"]["prefetch"] >= 1
    assert results["environment"]["nuropb"] == "0.1.8"
    rpc = results["rpc"]
    assert rpc["prefetch"] == results["settings"]["prefetch"]
    for mode in ("sequential", "concurrent"):
        assert set(rpc[mode]["pairs"]) == set(PAIRS)
        for row in rpc[mode]["pairs"].values():
            positive(row, RPC_FIGURES)
        for label in PAIRS[2:] + PAIRS[:1]:
            assert rpc[mode]["ratios"][f"{label}/nuropb->nuropb"] > 0
        assert all(run["errors"] == 0 for runs in rpc[mode]["runs"].values() for run in runs)

    publish = results["publish"]
    for kind in ("commands", "events"):
        for side in ("lab", "nuropb"):
            positive(publish[kind][side], ("publish_rps", "delivered_rps"))
        assert publish[kind]["ratio_publish"] > 0 and publish[kind]["ratio_delivered"] > 0

    encryption = results["encryption"]
    for mode in ("sequential", "concurrent"):
        assert set(encryption[mode]["pairs"]) == {
            "lab plain",
            "lab encrypted",
            "nuropb plain",
            "nuropb encrypted",
        }
        for row in encryption[mode]["pairs"].values():
            positive(row, ("rps", "p50_ms"))
        assert set(encryption[mode]["ratios"]) == {
            "lab encrypted/plain",
            "nuropb encrypted/plain",
        }

    tail = results["tail"]
    positive(tail, ("ingest_per_s", "live_per_s", "published_per_s", "cpu_us_per_event", "df_ms"))
    assert tail["events_total"] >= results["settings"]["tail_total"]
    assert tail["df_rows"] == tail["rows"] == results["settings"]["tail_rows"]
    assert "Event tail ingest" in run.stdout

    tap = results["tap"]
    positive(tap, ("ingest_per_s", "ingest_cpu_us", "published_per_s"))
    assert tap["memory"]["records"] >= 10 * results["settings"]["tail_n"]
    assert tap["memory"]["rows"] == results["settings"]["tail_rows"]
    assert tap["memory"]["pending"] <= tap["memory"]["max_pending"]
    positive(tap["rpc"], ("without_rps", "with_rps", "ratio"))
    assert "Wire tap" in run.stdout

    discovery = results["discovery"]
    assert discovery["described"] == discovery["services"] == results["settings"]["discovery_n"]
    positive(discovery, ("first_s", "median_s"))
    assert "Discovery: services()" in run.stdout


def test_quick_load_part_writes_its_figures(nuropb_python: Path, tmp_path: Path) -> None:
    """Part 6 (load) alone: lab.bench beside nuropb's client and the lab's, and the open model."""
    out = tmp_path / "load.json"
    argv = [sys.executable, "-m", "bench", "--quick", "--parts", "load", "--url", BASE_URL]
    run = subprocess.run(
        [*argv, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Load generator: lab.bench" in run.stdout and "open model: asked" in run.stdout
    load = json.loads(out.read_text())["load"]
    assert set(load["clients"]) == {"lab.bench", "nuropb client", "lab peer"}
    for row in load["clients"].values():
        positive(row, ("rps", "p50_ms", "p99_ms", "client_cpu_us", "service_cpu_us"))
    assert all(r["errors"] == 0 for runs in load["runs"].values() for r in runs)
    assert set(load["ratios"]) == {"lab.bench/nuropb client", "lab.bench p50/lab peer p50"}
    assert load["open"]["count"] > 0 and load["open"]["errors"] == 0
    positive(load["open"], ("asked_rate", "achieved_rate", "p50_ms"))
