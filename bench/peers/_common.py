"""What every bench peer shares (stdlib only: it runs under the lab's venv and nuropb's).

A peer is a process driven over stdin/stdout: it prints ``READY`` once connected, then reads
one JSON command per line and answers each with one JSON line. EOF on stdin ends it.
Commands every peer knows: ``{"op": "cpu"}`` (its process CPU seconds so far) and
``{"op": "profile_dump", "path": ...}``; the rest are given by the peer as handlers.

``BENCH_PROFILE=path`` runs the peer under cProfile, written to ``path`` on exit.
"""

import asyncio
import cProfile
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

PROFILER: cProfile.Profile | None = None


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


async def measure(call: Callable[[], Awaitable[Any]], n: int, concurrency: int) -> dict[str, Any]:
    """Run ``call`` ``n`` times with ``concurrency`` in flight; rate, latencies and CPU."""
    latencies: list[float] = []
    errors: list[str] = []
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        clock = time.perf_counter
        while remaining > 0:
            remaining -= 1
            start = clock()
            try:
                await call()
            except Exception as exc:  # counted and reported, never hidden
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(clock() - start)

    cpu0 = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, n)))))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    latencies.sort()
    return {
        "n": n,
        "concurrency": concurrency,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "client_cpu_s": cpu,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: "asyncio.Queue[str | None]") -> None:
    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        try:
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except RuntimeError:  # the loop is closed already
            pass

    threading.Thread(target=read, name="stdin", daemon=True).start()


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def command_loop(handlers: dict[str, Handler]) -> None:
    """Answer commands from stdin until EOF."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    _stdin_lines(asyncio.get_running_loop(), queue)
    reply({"ready": True})
    while True:
        line = await queue.get()
        if line is None:
            return
        if not line.strip():
            continue
        command = json.loads(line)
        op = command.get("op")
        try:
            if op == "cpu":
                result: dict[str, Any] = {"cpu_s": time.process_time()}
            elif op in handlers:
                result = await handlers[op](command)
            else:
                result = {"failure": f"unknown op {op!r}"}
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            result = {"failure": f"{type(exc).__name__}: {exc}"}
        reply(result)


def run(main: Callable[[], Awaitable[int]], use_uvloop: bool = False) -> None:
    """Run the peer's ``main`` (on uvloop when asked and installed), profiled when asked."""
    global PROFILER
    profile_path = os.environ.get("BENCH_PROFILE")
    if profile_path:
        PROFILER = cProfile.Profile()
        PROFILER.enable()
    try:
        if use_uvloop:
            import uvloop

            status = uvloop.run(main())
        else:
            status = asyncio.run(main())
    finally:
        if PROFILER is not None and profile_path:
            PROFILER.disable()
            PROFILER.dump_stats(profile_path)
    sys.exit(status)


def peer_main(
    doc: str | None,
    serve: Callable[[str, str, int], Awaitable[int]],
    client: Callable[[str, int], Awaitable[int]],
) -> None:
    """The command line every RPC peer takes: ``serve URL NAME PREFETCH`` or
    ``client URL PREFETCH``, with ``--uvloop`` to run on uvloop."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    use_uvloop = "--uvloop" in sys.argv
    if args and args[0] == "serve" and len(args) == 4:
        run(lambda: serve(args[1], args[2], int(args[3])), use_uvloop)
    elif args and args[0] == "client" and len(args) == 3:
        run(lambda: client(args[1], int(args[2])), use_uvloop)
    else:
        print(doc, file=sys.stderr)
        sys.exit(2)
