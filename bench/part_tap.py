"""Part ``tap`` of ``python -m bench``: the wire tap (lab.tap on the firehose).

- ingest: the tap's consumer is cancelled while a pika peer publishes requests and their
  responses (firehose trace records, two per call; the tap decodes the bodies and pairs them)
  and the tap's queue fills, then it consumes again: trace records/s from the first to the
  last taken in is the tap's rate from a backlog; for comparison, the rate at which the
  broker delivers the same backlog to a consumer that only counts, and the tap's own path
  (the bytes of a drain, recorded as read, fed again in process: frames, records, bodies,
  pairs, rows), which the broker does not limit;
- memory: RSS growth once ``10 x tail_n`` trace records went through a tap of ``tail_rows``
  rows (every 10th request never answered, so the pending-pair map fills, is bounded and
  expires);
- cost to the mesh: lab->lab concurrent round trips with a tap running (firehose on) and
  without, alternated round by round;
- redaction's cost on ingest: the recorded drain fed through the tap's own path with
  redaction on and off (lab/redact.py), alternated; on traffic with nothing to redact (the
  pre-check on each body) and on traffic whose every message holds a bearer token in its
  context (each body walked and a copy made).

Sizes follow the run's tail settings (``--quick`` makes them tiny). The firehose is switched
off again when the part ends, as the tap stops.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from nuropb_lab.lab import Lab
from nuropb_lab.lab.redact import Redactor, redactor
from nuropb_lab.lab.tap import Tap
from nuropb_lab.lab.tap.capture import Capture
from nuropb_lab.mesh.amqp.reader import Delivery, FrameReader

from .figures import median, rss_bytes
from .mesh import LAB_SERVICE, Mesh
from .peer import Peer, PeerError, settled

TAKING = "the tap was still taking records"

__all__ = ["bench_tap", "table"]

BACKLOG_MAX = 40_000  # trace records in the backlog
PENDING_TTL = 5.0  # s, in the memory run: unanswered requests expire within the run
REDACTION_PAIRS = 9  # replays with redaction off and on, alternated
# what every message of the second recorded drain carries: something to redact
CREDENTIAL_CONTEXT = {"Authorization": "Bearer bench0token1abcdef234567", "user_id": "u-1"}


class _Counter:
    """In place of the capture's take: counts the records and tells the listeners, nothing
    more (the broker's delivery rate, for comparison)."""

    def __init__(self, capture: Any) -> None:
        self.capture = capture

    def __call__(self, deliveries: Any) -> None:
        self.capture.received += len(deliveries)
        for listener in self.capture.listeners:
            listener()


class _Arrivals:
    """Trace records taken in, as the tap's listener sees them (once per socket read)."""

    def __init__(self, tap: Tap) -> None:
        self.tap = tap
        self.reset()

    def reset(self) -> None:
        self.start_count: int = self.tap.capture.received
        self.first = self.last = 0.0
        self.first_count: int = self.start_count
        self.last_count: int = self.start_count

    def __call__(self, _tap: object) -> None:
        now = time.perf_counter()
        received = self.tap.capture.received
        if not self.first:
            self.first, self.first_count = now, received
        self.last, self.last_count = now, received

    @property
    def count(self) -> int:
        return self.last_count - self.start_count

    def rate(self) -> float:
        # the first read's records arrived at its time: counted from the ones after it
        return (self.last_count - self.first_count) / max(self.last - self.first, 1e-9)


async def bench_tap(mesh: Mesh) -> dict[str, Any]:
    s = mesh.settings
    records_backlog = min(2 * s.tail_n, BACKLOG_MAX)
    records_total = 10 * s.tail_n
    flood = await mesh.peer("trace-flood", "trace_flood_peer.py")
    lab = Lab(timeout=30)
    try:
        await lab.aconnect(mesh.url, alias="bench")
        # --- ingest from a backlog ----------------------------------------------------------
        # the bench's taps run as long as the part does (a tap's default is 5 minutes)
        tap = await lab.atap(
            max_rows=s.tail_rows,
            backlog=2 * records_backlog,
            pending_ttl=PENDING_TTL,
            max_duration=None,
        )
        if tap.mode != "firehose":
            raise PeerError(f"the bench needs the firehose: {tap.notice}")
        arrivals = _Arrivals(tap)
        tap.add_listener(arrivals)
        runs = []
        for round_no in range(s.rounds):
            # the consumer off while the backlog is made (the tap's queue keeps it), on again
            # once the queue holds all of it: the rate is the tap's, not the publisher's
            await lab.runner.run_async(_consuming(lab, tap, False))
            sent = await flood.ask(
                {"op": "calls", "service": "bench-tap-sink", "n": records_backlog // 2}
            )
            await _backlog(lab, tap, records_backlog)
            arrivals.reset()
            cpu0 = time.process_time()
            await lab.runner.run_async(_consuming(lab, tap, True))
            await settled(lambda: arrivals.count, TAKING, timeout=180.0)
            cpu = time.process_time() - cpu0
            runs.append(
                {
                    "round": round_no,
                    "records": arrivals.count,
                    "per_s": arrivals.rate(),
                    "published_per_s": records_backlog / sent["seconds"],
                    "cpu_us_per_record": cpu / max(arrivals.count, 1) * 1e6,
                }
            )
            print(
                f"  tap round {round_no + 1}/{s.rounds}: {runs[-1]['per_s']:,.0f} trace records/s"
                f" from a backlog of {arrivals.count:,}",
                file=sys.stderr,
                flush=True,
            )
        # the same backlog to a consumer that only counts: what the broker delivers at here
        counted: list[float] = []
        taking = tap.capture.take_firehose
        tap.capture.take_firehose = _Counter(tap.capture)  # type: ignore[method-assign]
        try:
            for _ in range(s.rounds):
                await lab.runner.run_async(_consuming(lab, tap, False))
                await flood.ask(
                    {"op": "calls", "service": "bench-tap-sink", "n": records_backlog // 2}
                )
                await _backlog(lab, tap, records_backlog)
                arrivals.reset()
                await lab.runner.run_async(_consuming(lab, tap, True))
                await settled(
                    lambda: arrivals.count, "the tap was still taking records", timeout=180.0
                )
                counted.append(arrivals.rate())
        finally:
            tap.capture.take_firehose = taking  # type: ignore[method-assign]
        print(
            f"  tap: the broker delivers {median(counted):,.0f} trace records/s to a consumer"
            " that only counts them",
            file=sys.stderr,
            flush=True,
        )
        paired = int(tap.calls["answered"].sum())
        # the tap's own pace, the broker aside: the bytes of one drain, recorded as they came,
        # fed again in process through a fresh reader and capture
        recorded = await _record_drain(lab, tap, flood, records_backlog)
        replayed = [_replay(recorded, tap) for _ in range(3)]
        print(
            f"  tap: {median(replayed):,.0f} trace records/s through the tap's own path"
            " (frames, records, bodies, pairs, rows), replayed in process",
            file=sys.stderr,
            flush=True,
        )
        with_credentials = await _record_drain(
            lab, tap, flood, records_backlog, context=CREDENTIAL_CONTEXT
        )
        redaction = {
            "plain": _redaction_cost(recorded, tap),
            "credentials": _redaction_cost(with_credentials, tap),
        }
        for name, cost in redaction.items():
            print(
                f"  tap, {name} traffic: redaction on {cost['on_per_s']:,.0f} records per CPU s,"
                f" off {cost['off_per_s']:,.0f} ({cost['slowdown']:.3f}x the time;"
                f" {cost['redacted']:,} values redacted)",
                file=sys.stderr,
                flush=True,
            )
        tap.remove_listener(arrivals)
        await tap.astop()

        # --- memory: many records through a bounded tap -----------------------------------
        tap = await lab.atap(
            max_rows=s.tail_rows, backlog=200_000, pending_ttl=PENDING_TTL, max_duration=None
        )
        arrivals = _Arrivals(tap)
        tap.add_listener(arrivals)
        warm = await flood.ask({"op": "calls", "service": "bench-tap-sink", "n": 2_000})
        await settled(lambda: arrivals.count, TAKING, timeout=180.0)
        rss_before = rss_bytes()
        through = 0
        started = time.perf_counter()
        while through < records_total:
            arrivals.reset()
            n = min(50_000, (records_total - through) // 2 + 1)
            await flood.ask(
                {
                    "op": "calls",
                    "service": "bench-tap-sink",
                    "n": n,
                    "unanswered_every": 10,
                    "error_every": 7,
                }
            )
            await settled(lambda: arrivals.count, TAKING, timeout=180.0)
            through += arrivals.count
        live_s = time.perf_counter() - started
        rss_after = rss_bytes()
        status = tap.status()
        capture = tap.capture
        memory = {
            "records": through,
            "rows": status["rows"],
            "calls_kept": status["calls"],
            "pending": status["waiting"],
            "max_pending": capture.calls.max_pending,
            "expired": capture.calls.expired,
            "evicted": capture.calls.evicted,
            "rss_growth_mb": (rss_after - rss_before) / 2**20,
            "live_per_s": through / live_s,
            "warmup_s": warm["seconds"],
        }
        started = time.perf_counter()
        frame = tap.df
        memory["df_ms"] = (time.perf_counter() - started) * 1000
        memory["df_rows"] = len(frame)
        await tap.astop()

        # --- the mesh's rate with a tap on the firehose, and without --------------------------
        rpc: dict[str, list[float]] = {"without": [], "with": []}
        command = {
            "op": "rpc",
            "service": LAB_SERVICE,
            "n": s.conc_n,
            "concurrency": s.concurrency,
        }
        await mesh.clients["lab"].ask({**command, "n": 200})  # warm up
        for round_no in range(s.rounds):
            order = ("without", "with") if round_no % 2 == 0 else ("with", "without")
            for side in order:
                tapped = (
                    await lab.atap(max_rows=s.tail_rows, max_duration=None)
                    if side == "with"
                    else None
                )
                try:
                    result = await mesh.clients["lab"].ask(command)
                finally:
                    if tapped is not None:
                        await tapped.astop()
                if result["errors"]:
                    raise PeerError(f"lab->lab {side} a tap: {result['errors']} errors")
                rpc[side].append(result["rps"])
                print(
                    f"  tap round {round_no + 1}/{s.rounds}: lab->lab {side} a tap"
                    f" {result['rps']:,.0f} rt/s",
                    file=sys.stderr,
                    flush=True,
                )
        ratios = [w / o for w, o in zip(rpc["with"], rpc["without"], strict=True) if o]
        return {
            "rows": s.tail_rows,
            "ingest_per_s": median([r["per_s"] for r in runs]),
            "ingest_cpu_us": median([r["cpu_us_per_record"] for r in runs]),
            "broker_per_s": median(counted),
            "pipeline_per_s": median(replayed),
            "published_per_s": median([r["published_per_s"] for r in runs]),
            "backlog": records_backlog,
            "paired": paired,
            "runs": runs,
            "redaction": redaction,
            "memory": memory,
            "rpc": {
                "concurrency": s.concurrency,
                "n": s.conc_n,
                "without_rps": median(rpc["without"]),
                "with_rps": median(rpc["with"]),
                "ratio": median(ratios),
                "runs": rpc,
            },
        }
    finally:
        await asyncio.to_thread(lab.close)
        await flood.stop()


def _events(lab: Lab) -> Any:
    events = lab.connection("bench").api.transport.events
    if events is None:
        raise PeerError("the tap has no events connection")
    return events


async def _consuming(lab: Lab, tap: Any, on: bool) -> None:
    """Stop consuming the tap's queue (it stays, and fills), or consume it again."""
    if on:
        await _events(lab).add(tap.subscription)
    else:
        await _events(lab).cancel(tap.subscription)


async def _backlog(lab: Lab, tap: Any, records: int, timeout: float = 120.0) -> None:
    """Wait until the tap's queue holds ``records`` messages (the broker traces as it
    routes, a little behind the publisher)."""
    deadline = time.monotonic() + timeout
    while True:
        held, _ = await lab.runner.run_async(_events(lab).queue_info(tap.subscription))
        if held >= records:
            return
        if time.monotonic() > deadline:
            raise PeerError(f"the tap's queue held {held} of {records} records")
        await asyncio.sleep(0.2)


class _TeeReader(FrameReader):
    """A frame reader that keeps a copy of every chunk it is fed."""

    __slots__ = ("chunks",)

    def __init__(self, like: FrameReader) -> None:
        super().__init__(like.frame_max)
        self.raw_headers = set(like.raw_headers)
        self.chunks: list[bytes] = []

    def feed(self, data: bytes) -> list[Any]:
        self.chunks.append(bytes(data))
        return super().feed(data)


async def _record_drain(
    lab: Lab, tap: Any, flood: Peer, records: int, context: dict[str, Any] | None = None
) -> list[bytes]:
    """One more backlog drained, with the events connection's bytes recorded; ``context``:
    every message's."""
    events = _events(lab)
    await lab.runner.run_async(_consuming(lab, tap, False))
    await flood.ask(
        {"op": "calls", "service": "bench-tap-sink", "n": records // 2, "context": context or {}}
    )
    await _backlog(lab, tap, records)
    plain = events._reader
    tee = _TeeReader(plain)
    events._reader = tee  # between reads: no frame is half read now
    try:
        arrivals = _Arrivals(tap)
        tap.add_listener(arrivals)
        await lab.runner.run_async(_consuming(lab, tap, True))
        await settled(lambda: arrivals.count, TAKING, timeout=180.0)
        tap.remove_listener(arrivals)
    finally:
        events._reader = plain
    return tee.chunks


def _replay(chunks: list[bytes], tap: Any, redact: Redactor | None = None) -> float:
    """Records/s from ``chunks`` (socket reads) to rows and calls, in this thread, redacting
    with ``redact`` (default: the default redaction)."""
    return _replayed(chunks, tap, redact)[0]


def _replayed(
    chunks: list[bytes], tap: Any, redact: Redactor | None
) -> tuple[float, float, Capture]:
    """(records/s by the clock, records per CPU second of this thread, the capture)."""
    reader = FrameReader()
    reader.raw_headers.add(tap.subscription.queue)
    capture = Capture(
        max_rows=tap.max_rows,
        max_calls=tap.max_rows,
        max_pending=tap.capture.calls.max_pending,
        pending_ttl=120.0,
        body_limit=tap.capture.body_limit,
        services=None,
        events=True,
        max_bytes=tap.capture.rows.max_bytes,
        redact=redact,
    )
    started, cpu = time.perf_counter(), time.thread_time()
    for chunk in chunks:
        deliveries = [d for d in reader.feed(chunk) if isinstance(d, Delivery)]
        if deliveries:
            capture.take_firehose(deliveries)
    cpu = max(time.thread_time() - cpu, 1e-9)
    return capture.received / (time.perf_counter() - started), capture.received / cpu, capture


def _redaction_cost(chunks: list[bytes], tap: Any) -> dict[str, Any]:
    """The same bytes through the tap's path with redaction off and on, alternated (ABBA):
    records per CPU second of each (medians; this thread's CPU time, which other work on a
    busy machine disturbs less than the clock), the time with it on over the time without
    (the median of the pairs' ratios) and the values one pass redacted."""
    on, off = redactor(True), redactor(False)
    rates: dict[str, list[float]] = {"on": [], "off": []}
    ratios = []
    redacted = 0
    for i in range(REDACTION_PAIRS):
        pair = {}
        for side in ("off", "on") if i % 2 == 0 else ("on", "off"):
            _, rate, capture = _replayed(chunks, tap, on if side == "on" else off)
            pair[side] = rate
            rates[side].append(rate)
            redacted = capture.redacted if side == "on" else redacted
        ratios.append(pair["off"] / pair["on"])
    return {
        "on_per_s": median(rates["on"]),
        "off_per_s": median(rates["off"]),
        "slowdown": median(ratios),
        "redacted": redacted,
        "pairs": REDACTION_PAIRS,
    }


def table(results: dict[str, Any]) -> list[str]:
    tap = results.get("tap")
    if not tap:
        return []
    memory, rpc = tap["memory"], tap["rpc"]
    return [
        f"Wire tap (lab.tap on the firehose, {tap['rows']:,} rows)",
        f"  taken in from a backlog: {tap['ingest_per_s']:,.0f} trace records/s (goal >= 30,000;"
        f" {tap['ingest_cpu_us']:.0f} us CPU each; requests paired with their responses,"
        f" {tap['paired']:,} of the calls kept); the broker delivers"
        f" {tap['broker_per_s']:,.0f}/s to a consumer that only counts; the tap's own path,"
        f" the same bytes replayed in process: {tap['pipeline_per_s']:,.0f}/s",
        f"  RSS growth after {memory['records']:,} records: {memory['rss_growth_mb']:.1f} MB"
        f" (goal < 100 MB); pending pairs {memory['pending']:,} (bound {memory['max_pending']:,};"
        f" {memory['expired']:,} expired, {memory['evicted']:,} evicted); .df of"
        f" {memory['df_rows']:,} rows {memory['df_ms']:.0f} ms",
        f"  lab->lab concurrent ({rpc['concurrency']} in flight): {rpc['without_rps']:,.0f} rt/s"
        f" without a tap, {rpc['with_rps']:,.0f} rt/s with one on the firehose"
        f" ({rpc['ratio']:.2f}x)",
        *_redaction_lines(tap.get("redaction")),
        "",
    ]


def _redaction_lines(redaction: dict[str, Any] | None) -> list[str]:
    if not redaction:
        return []
    plain, tokens = redaction["plain"], redaction["credentials"]
    return [
        "  redaction on vs off, the same bytes through the tap's own path"
        f" ({plain['pairs']} pairs alternated, CPU time):",
        f"    nothing to redact: {plain['slowdown']:.3f}x the time (goal <= 1.10;"
        f" {plain['on_per_s']:,.0f} vs {plain['off_per_s']:,.0f} records per CPU s)",
        f"    a bearer token in every message: {tokens['slowdown']:.3f}x the time"
        f" ({tokens['on_per_s']:,.0f} vs {tokens['off_per_s']:,.0f} records per CPU s,"
        f" {tokens['redacted']:,} values redacted)",
    ]
