"""Part 5 (``--parts discovery``): the time for ``services()`` on a mesh of ``discovery_n``
services (20 by default), all served by one peer process, seen from a Lab in this process:
the first call and the median of 5 more.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nuropb_lab.lab import Lab

from .figures import median
from .mesh import Mesh

__all__ = ["bench_discovery", "table"]


async def bench_discovery(mesh: Mesh) -> dict[str, Any]:
    """Part 5: ``services()`` on a mesh of ``discovery_n`` services (served by one peer
    process): names from the management API, counts by passive declares, every
    ``nuropb_describe`` at once. First call, then the median of 5 more."""
    s = mesh.settings
    many = await mesh.peer(
        "many-services", "many_peer.py", "disc", str(s.discovery_n), nuropb=False
    )
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


def table(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    discovery = results.get("discovery")
    if discovery:
        first, then = discovery["first_s"] * 1000, discovery["median_s"] * 1000
        lines.append(
            f"Discovery: services() on {discovery['services']} services ({discovery['described']}"
            f" described, {discovery['listed']} listed): first {first:.0f} ms,"
            f" then median {then:.0f} ms (goal < 1 s)"
        )
    return lines
