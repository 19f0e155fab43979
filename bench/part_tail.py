"""Part 4 (``--parts tail``): event tail ingest, into a lab tail in this process (on the
Lab's own loop, as in a notebook) from a pika publisher: events/s taken in from a backlog
and live, the CPU per event, RSS growth once many events went through its ring buffer, and
the time to build ``.df`` of a full buffer (see ``bench_tail``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from nuropb_lab.lab import Lab

from .figures import fmt, median, rss_bytes
from .mesh import Mesh
from .peer import settled

__all__ = ["BACKLOG_MAX", "bench_tail", "table"]


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
    flood = await mesh.peer("flood", "flood_peer.py")
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


def table(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    tail = results.get("tail")
    if tail:
        lines.append(f"Event tail ingest (a pika flood into a lab tail of {tail['rows']:,} rows)")
        lines.append(
            f"  taken in from a backlog: {fmt(tail['ingest_per_s'])} events/s (goal >= 20,000)"
        )
        lines.append(
            f"  live, with the publisher running: {fmt(tail['live_per_s'])} events/s"
            f" (published at {fmt(tail['published_per_s'])}/s; the tail's process spent"
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
    return lines
