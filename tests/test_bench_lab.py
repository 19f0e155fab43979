"""lab.bench and lab.capacity against services served by the test, on a real broker.

Nothing here asserts how fast anything is: counts, error classes, states and the shape of
what was measured (a stall in the open model's p99, a knee where a semaphore caps the
service) are structural; the figures come from ``python -m bench``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from typing import Any

import pytest
from support import LabSetup, ctrl_c_after, wait_for

import nuropb_lab as nl
from nuropb_lab.lab import BenchError, BenchResult, Lab, ParamError
from nuropb_lab.lab.bench_result import LatencySplitter


class Target:
    """What the benches load."""

    def __init__(self) -> None:
        self.flaky_calls = 0
        self.seen: list[Any] = []
        self.notes = 0
        self.calls = 0
        self.stalled = False
        self._lock: asyncio.Lock | None = None
        self._limit: asyncio.Semaphore | None = None

    def echo(self, value: Any = None) -> Any:
        return value

    def record(self, value: Any) -> None:
        self.seen.append(value)

    def flaky(self, n: int) -> int:
        """Fails every third call it gets."""
        self.flaky_calls += 1
        if self.flaky_calls % 3 == 0:
            raise nl.NuropbValidationError(f"call {self.flaky_calls} fails")
        return n

    def note(self, value: Any = None) -> None:
        self.notes += 1

    async def pause(self, seconds: float = 0.01) -> None:
        await asyncio.sleep(seconds)

    async def stall_once(self, after: int = 50) -> None:
        """Holds every call behind one that sleeps a second, once: a stalled service."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self.calls += 1
            if self.calls == after and not self.stalled:
                self.stalled = True
                await asyncio.sleep(1.0)

    async def limited(self, seconds: float = 0.05) -> None:
        """At most four at a time: the service's capacity is 4 / seconds calls/s."""
        if self._limit is None:
            self._limit = asyncio.Semaphore(4)
        async with self._limit:
            await asyncio.sleep(seconds)

    @nl.publish_to_mesh(requires_encryption=True)
    def secret(self, text: str) -> str:
        return text[::-1]


@pytest.fixture(scope="module")
def lab_setup() -> LabSetup:
    return LabSetup(alias="b")


@pytest.fixture
def target(lab: Lab, request: pytest.FixtureRequest) -> Target:
    """A fresh Target served as ``t-<test>`` (prefetch 50, as the benchmark's services)."""
    obj = Target()
    name = "t-" + request.node.name.removeprefix("test_")[:40].replace("_", "-")
    lab.serve(obj, name=name, settings={"prefetch_count": 50})
    obj.name = name  # type: ignore[attr-defined]
    return obj


def name_of(target: Target) -> str:
    return str(target.name)  # type: ignore[attr-defined]


def test_closed_bench_counts_and_errors_by_class(lab: Lab, target: Target) -> None:
    result = lab.bench(f"{name_of(target)}.flaky", {"n": 7}, n=300, concurrency=5, label="flaky")
    s = result.summary()
    assert (s["count"], s["ok"], s["errors"], s["cancelled"]) == (300, 200, 100, 0)
    assert s["errors_by_class"] == {"NuropbValidationError": 100}
    assert s["state"] == "done" and s["model"] == "closed" and s["achieved_rate"] > 0
    values = [s[k] for k in ("p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms")]
    assert all(v > 0 for v in values) and values == sorted(values)
    df = result.df
    assert list(df["call"]) == list(range(300)) and int(df["ok"].sum()) == 200
    assert df.loc[~df["ok"], "error"].unique().tolist() == ["NuropbValidationError"]
    assert (df["sent"] == df["intended"]).all() and (df["latency_ms"] > 0).all()
    assert df["correlation_id"].nunique() == 300
    assert target.flaky_calls == 300
    # the run, not each call, is recorded
    benches = lab.benches()
    row = benches[benches["label"] == "flaky"].iloc[-1]
    assert (row["count"], row["errors"]) == (300, 100)
    picture = result.plot()
    assert sum(picture.data["histogram"]["counts"]) == 300
    assert picture.svg.startswith("<?xml") and "flaky" in repr(result)
    assert "flaky" in result._repr_html_()


def test_params_a_dict_a_cycled_list_or_a_function(lab: Lab, target: Target) -> None:
    record = f"{name_of(target)}.record"
    lab.bench(record, [{"value": "a"}, {"value": "b"}, {"value": "c"}], n=30, concurrency=3)
    assert collections.Counter(target.seen) == {"a": 10, "b": 10, "c": 10}
    target.seen.clear()
    lab.bench(record, lambda i: {"value": i * i}, n=20, concurrency=4)
    assert sorted(target.seen) == [i * i for i in range(20)]
    target.seen.clear()
    result = lab.bench(record, lambda i: {"value": 1} if i != 5 else "oops", n=10)  # type: ignore[arg-type, return-value]
    assert result.summary()["errors_by_class"] == {"BenchError": 1} and len(target.seen) == 9


def test_commands_are_published_and_confirmed(lab: Lab, target: Target) -> None:
    result = lab.bench(
        f"{name_of(target)}.note", {"value": 1}, n=500, concurrency=20, kind="command"
    )
    s = result.summary()
    assert (s["kind"], s["count"], s["ok"], s["errors"]) == ("command", 500, 500, 0)
    wait_for(lambda: target.notes == 500, what="every command to be run")


def test_encrypted_calls(lab: Lab, target: Target) -> None:
    secret = f"{name_of(target)}.secret"
    result = lab.bench(secret, {"text": "abc"}, n=20, concurrency=4)  # encrypted by itself
    assert result.info.encrypted and result.summary()["ok"] == 20
    with pytest.raises(nl.EncryptionRefused, match="requires encryption; a plaintext call is"):
        lab.bench(secret, {"text": "abc"}, n=5, encrypt=False)


def test_open_model_shows_a_stall_in_p99(lab: Lab, target: Target) -> None:
    """A service that stalls once for 1 s: in the open model every call meant for the stalled
    second waits (latency from its intended time), so the stall is in p99; a closed model
    with one in flight, which waits for the service before sending, sees it in one call."""
    stall = f"{name_of(target)}.stall_once"
    result = lab.bench(stall, {"after": 50}, rate=100, duration=3.0, label="open stall")
    s = result.summary()
    assert s["errors"] == 0 and s["model"] == "open" and target.stalled
    assert s["p99_ms"] >= 800 and s["max_ms"] >= 900
    slow = int((result.df["latency_ms"] > 500).sum())
    assert slow >= 25  # about half the calls meant for the stalled second
    # calls the generator could not send by the end (it shares the loop) are said, not lost
    assert s["count"] + s["unsent"] == 300 and abs(s["achieved_rate"] - 100) < 30
    target.calls, target.stalled = 0, False
    closed = lab.bench(stall, {"after": 50}, n=150, concurrency=1, label="closed stall")
    assert int((closed.df["latency_ms"] > 500).sum()) == 1  # coordinated omission, shown


def test_the_generator_says_when_it_fell_behind(lab: Lab, target: Target) -> None:
    run = lab.start_bench(f"{name_of(target)}.echo", {"value": 1}, rate=200, duration=1.5)
    wait_for(lambda: run.progress.done >= 50, what="calls to go")
    lab.runner.call_soon(time.sleep, 0.3)  # the Lab's loop held: no call can go out
    result = run.wait()
    s = result.summary()
    assert s["late_sends"] > 0 and "the generator fell behind" in s["notes"]
    assert s["lag_p99_ms"] is not None and s["max_ms"] >= 250  # counted from intended times


def test_ctrl_c_stops_a_blocking_bench_and_keeps_what_it_measured(lab: Lab, target: Target) -> None:
    pause = f"{name_of(target)}.pause"
    with ctrl_c_after(0.8):
        result = lab.bench(pause, {"seconds": 0.01}, n=1_000_000, concurrency=4, label="ctrl-c")
    s = result.summary()
    assert s["state"] == "interrupted" and 0 < s["count"] < 1_000_000
    assert s["errors"] == 0 and s["cancelled"] <= 4
    assert lab.benches().set_index("label").loc["ctrl-c", "state"] == "interrupted"
    wait_for(lambda: lab.connection().api.in_flight == 0, what="no call left waiting")


def test_stop_keeps_a_background_runs_result(lab: Lab, target: Target) -> None:
    run = lab.start_bench(f"{name_of(target)}.pause", {"seconds": 0.005}, duration=60)
    wait_for(lambda: run.progress.done >= 20, what="calls to go")
    assert run.progress.state == "running" and run.progress.rate > 0
    run.stop()
    result = run.wait(timeout=20)
    assert result.state == "stopped" and result.summary()["count"] >= 20
    assert run.progress.finished and run.result is result


def test_a_run_ends_by_its_duration_plus_the_timeout(lab: Lab, target: Target) -> None:
    """Calls that are never answered end at their timeout; the run with them."""
    run = lab.start_bench(
        f"{name_of(target)}.pause", {"seconds": 30}, duration=0.5, timeout=1.0, concurrency=3
    )
    result = run.wait(timeout=0.5 + 1.0 + 10)  # past it, wait() would stop it as "overran"
    s = result.summary()
    assert s["state"] == "done" and s["errors_by_class"] == {"NuropbTimeoutError": 3}


def test_bad_input_fails_in_one_line_before_any_load(lab: Lab, target: Target) -> None:
    echo = f"{name_of(target)}.echo"
    bad: dict[str, tuple[dict[str, Any], str]] = {
        "n": ({"n": 0}, r"^n must be a whole number from 1 to 10,000,000, got 0$"),
        "n-type": ({"n": 2.5}, r"^n must be a whole number"),
        "duration": ({"duration": 0}, r"^duration must be more than 0 and at most 86,400 s"),
        "both": ({"n": 5, "duration": 1}, r"^give n or duration, not both$"),
        "concurrency": ({"concurrency": 0}, r"^concurrency must be a whole number from 1 to"),
        "rate": ({"rate": -5}, r"^rate must be more than 0 and at most 100,000 calls/s"),
        "warmup": ({"warmup": -1}, r"^warmup must be a whole number of calls"),
        "kind": ({"kind": "event"}, r"^kind must be 'call' or 'command'"),
    }
    before = len(lab.benches())
    for what, (options, message) in bad.items():
        with pytest.raises(BenchError, match=message):
            lab.bench(echo, **options)
        assert what  # every case ran
    with pytest.raises(BenchError, match="params must be a dict, a list of dicts"):
        lab.bench(echo, "value=1")  # type: ignore[arg-type]
    with pytest.raises(BenchError, match=r"target must look like SERVICE\.METHOD"):
        lab.bench("echo")
    with pytest.raises(nl.NuropbNotDeliveredError, match="not on the mesh"):
        lab.bench("no-such-service.echo", n=10)
    with pytest.raises(ParamError, match=r"has no method 'nope'"):
        lab.bench(f"{name_of(target)}.nope", n=10)
    with pytest.raises(ParamError, match=r"^n: expected int, got 'x'$"):
        lab.bench(f"{name_of(target)}.flaky", {"n": "x"})
    with pytest.raises(ParamError, match=r"^n: expected int, got 'x'$"):
        lab.bench(f"{name_of(target)}.flaky", [{"n": 1}, {"n": "x"}])
    assert len(lab.benches()) == before and target.flaky_calls == 0  # nothing was sent
    sent = lab.bench(f"{name_of(target)}.pause", {"seconds": "x"}, n=3, check=False)
    assert sent.summary()["errors_by_class"] == {"TypeError": 3}  # sent anyway


def test_capacity_sweep_finds_the_knee_at_the_services_limit(lab: Lab, target: Target) -> None:
    sweep = lab.capacity(
        f"{name_of(target)}.limited", {"seconds": 0.05}, concurrency=[1, 2, 4, 8, 16], duration=1.5
    )
    df = sweep.df.set_index("load")
    assert list(df.index) == [1, 2, 4, 8, 16] and (df["errors"] == 0).all()
    assert df.loc[4, "ok_rate"] >= 2.5 * df.loc[1, "ok_rate"]  # grows up to the limit
    assert df.loc[16, "ok_rate"] <= 1.3 * df.loc[4, "ok_rate"]  # and stops growing past it
    assert df.loc[16, "p99_ms"] >= 2 * df.loc[4, "p99_ms"]  # while p99 turns up
    knee = sweep.knee
    assert knee is not None and knee["load"] == 4, sweep.df
    assert "knee at concurrency 4" in sweep.explain()
    picture = sweep.plot()
    assert picture.data["knee"]["load"] == 4 and len(picture.data["steps"]) == 5
    labels = set(lab.benches()["label"])
    assert {f"{name_of(target)}.limited c={c}" for c in (1, 2, 4, 8, 16)} <= labels


def test_rate_sweep_and_its_bad_input(lab: Lab, target: Target) -> None:
    sweep = lab.capacity(f"{name_of(target)}.echo", {"value": 1}, rate=[50, 100], n=50)
    assert list(sweep.df["load"]) == [50, 100] and sweep.by == "rate"
    assert (sweep.df["count"] == 50).all()
    with pytest.raises(BenchError, match="sweep concurrency or rate, not both"):
        lab.capacity(f"{name_of(target)}.echo", concurrency=[1], rate=[1])
    with pytest.raises(BenchError, match=r"^concurrency must be a whole number"):
        lab.capacity(f"{name_of(target)}.echo", concurrency=[1, 0])


class FakeTap:
    """A stand-in for the wire tap: it says how each call split into queued and service."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def latency_split(
        self, correlation_ids: Sequence[str]
    ) -> dict[str, tuple[float | None, float | None]]:
        self.asked = list(correlation_ids)
        return {cid: (1.0 + i % 2, 3.0) for i, cid in enumerate(correlation_ids)}


def test_a_running_tap_splits_latency_into_queued_and_service(lab: Lab, target: Target) -> None:
    result: BenchResult = lab.bench(f"{name_of(target)}.echo", {"value": 1}, n=40)
    assert "queued_p50_ms" not in result.summary()  # no tap: no split
    tap = FakeTap()
    assert isinstance(tap, LatencySplitter)
    lab.bench_splitters.append(tap)
    try:
        s = result.summary()
    finally:
        lab.bench_splitters.remove(tap)
    assert sorted(tap.asked) == sorted(result.df["correlation_id"])
    assert (s["split_calls"], s["queued_p50_ms"], s["queued_p99_ms"]) == (40, 1.0, 2.0)
    assert s["service_p50_ms"] == s["service_p99_ms"] == 3.0
