"""A tap on the firehose ends by itself: after ``max_duration`` seconds (300 unless asked) and
after ``max_records``; it then switches the firehose off as a stop does, and its rows stay
readable. On a mesh that nuropb 0.1.8's own configure_mesh set up, traffic from a real nuropb
0.1.8 service called by the Lab. Every wait is for a condition, bounded."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from support import (
    LabSetup,
    nuropb_made_mesh_with_firehose,
    peer_process,
    vhost_of,
    wait_for,
)

from nuropb_lab.lab import Lab, OptionError, get_lab
from nuropb_lab.lab.tap.bounds import DEFAULT_MAX_DURATION, TapBounds
from nuropb_lab.lab.tap.firehose import marker_name
from nuropb_lab.mesh import ManagementAPI

WAIT = 15.0


@pytest.fixture(scope="module")
def mesh(nuropb_python: Path, management: ManagementAPI) -> Iterator[str]:
    yield from nuropb_made_mesh_with_firehose(nuropb_python, management, "taplimits")


@pytest.fixture(scope="module")
def ref(mesh: str, nuropb_python: Path) -> Iterator[str]:
    """A nuropb 0.1.8 service on the mesh."""
    name = f"ref-{uuid.uuid4().hex[:6]}"
    with peer_process(nuropb_python, "nuropb_service.py", mesh, name):
        yield name


@pytest.fixture(scope="module")
def lab_setup(mesh: str) -> LabSetup:
    return LabSetup(url=mesh, alias="lim")


def tracing(management: ManagementAPI, url: str) -> bool:
    return bool(management.call_blocking("GET", f"vhosts/{vhost_of(url)}")["tracing"])


@pytest.fixture(autouse=True)
def firehose_back_off(mesh: str, management: ManagementAPI) -> Iterator[None]:
    """Every test leaves the firehose as it found it: off, with no owner marker."""
    assert not tracing(management, mesh)
    yield
    wait_for(lambda: not tracing(management, mesh), WAIT, "the firehose to go off")
    marker = f"global-parameters/{marker_name(vhost_of(mesh))}"
    assert management.call_blocking("GET", marker) is None


def test_a_tap_ends_after_max_duration_and_switches_the_firehose_off(
    lab: Lab, mesh: str, ref: str, management: ManagementAPI
) -> None:
    tap = lab.tap(max_duration=2)
    assert tap.mode == "firehose" and tracing(management, mesh)
    notice = tap.notice or ""
    # it says that it switched the firehose on, what that costs, and when it ends
    assert notice.startswith(f"switched the firehose of {vhost_of(mesh)!r} on")
    assert "about 0.5x in the bench (0.53x, bench/RESULTS.md)" in notice
    assert "it ends by itself in 2 s (at " in notice and "switches the firehose off" in notice
    firehose_taps = lab.status().set_index("alias").loc["lim", "firehose_taps"]
    assert firehose_taps.startswith("tap of all: ") and " s left" in firehose_taps
    assert lab.call(f"{ref}.add", a=1, b=2) == 3
    wait_for(lambda: "response" in set(tap.df["kind"]), WAIT, "the response in the tap")
    wait_for(lambda: tap.stopped, WAIT, "the tap to end by itself")
    wait_for(lambda: not tracing(management, mesh), WAIT, "the firehose to go off")
    assert tap.bounds is not None and tap.bounds.ended == "its 2 s were up (max_duration)"
    assert "ended by itself: its 2 s were up" in repr(tap)
    assert tap not in lab.taps and lab.status().set_index("alias").loc["lim", "firehose"] == "off"
    # its data stays readable
    calls = tap.calls
    assert calls[calls["method"] == "add"]["answered"].tolist() == [True]


def test_a_tap_ends_after_max_records(
    lab: Lab, mesh: str, ref: str, management: ManagementAPI
) -> None:
    tap = lab.tap(ref, max_records=8, max_duration=None)
    assert tap.bounds is not None and tap.bounds.max_duration is None
    assert tap.notice is not None and "it ends by itself after 8 records" in tap.notice
    for n in range(10):  # 4 trace records a call: publish and delivery of request and response
        if tap.stopped:
            break
        assert lab.call(f"{ref}.add", a=n) == n + 2
    wait_for(lambda: tap.stopped, WAIT, "the tap to end by itself")
    wait_for(lambda: not tracing(management, mesh), WAIT, "the firehose to go off")
    assert tap.capture.received >= 8
    assert tap.bounds.ended is not None and "(max_records=8)" in tap.bounds.ended
    assert len(tap.df) > 0  # readable after


def test_a_tap_without_the_firehose_ends_after_max_records_only(lab: Lab, ref: str) -> None:
    tap = lab.tap(ref, firehose=False, max_records=3)
    try:
        assert tap.mode == "queue" and tap.bounds is not None
        assert tap.bounds.max_duration is None  # its queue costs the mesh no firehose
        for n in range(3):
            lab.command(f"{ref}.remember", key=f"k{n}", value="v")
        wait_for(lambda: tap.stopped, WAIT, "the tap to end after 3 records")
        assert len(tap.df) == 3
    finally:
        tap.stop()
    plain = lab.tap(ref, firehose=False)
    assert plain.bounds is None  # no time limit without the firehose
    plain.stop()


def test_the_default_limit_and_none_only_when_asked(lab: Lab, mesh: str) -> None:
    bounded = lab.tap()
    unbounded = lab.tap(max_duration=None)
    try:
        assert bounded.bounds is not None and bounded.bounds.max_duration == DEFAULT_MAX_DURATION
        assert DEFAULT_MAX_DURATION == 300.0
        assert unbounded.notice is not None and "no limit (max_duration=None)" in unbounded.notice
        shown = lab.status().set_index("alias").loc["lim", "firehose_taps"].split("; ")
        assert len(shown) == 2
        assert shown[0].endswith(" s left") and shown[1].endswith("no time limit")
    finally:
        bounded.stop()
        unbounded.stop()
    for bad in (0, -1, float("inf"), "5", True):
        with pytest.raises(OptionError, match="max_duration must be"):
            lab.tap(max_duration=bad)
    with pytest.raises(OptionError, match="max_records must be at least 1"):
        lab.tap(max_records=0)
    assert not lab.taps  # nothing was started by a refused one


def test_bounds_describe_age_and_time_left() -> None:
    bounds = TapBounds.make(10, 100)
    assert bounds.describe(5, now=bounds.started + 4) == "4 s old, 6 s left, 5 of 100 records"
    assert bounds.left(now=bounds.started + 20) == 0.0
    free = TapBounds.make(None, None)
    assert free.describe(0, now=free.started + 1) == "1 s old, no time limit"


def run(ip: InteractiveShell, line: str) -> tuple[Any, str, str]:
    with capture_output() as captured:
        value = ip.run_line_magic("nuropb", line)
    return value, captured.stdout, captured.stderr


def test_the_magic(mesh: str, management: ManagementAPI) -> None:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nuropb_lab")
    try:
        run(ip, f"connect {mesh} --alias limmagic")
        made, out, _ = run(ip, "tap --max-duration 2 -o t")
        assert made is ip.user_ns["t"] and made.bounds.max_duration == 2.0
        assert "note: switched the firehose of" in out and "0.53x" in out
        wait_for(lambda: made.stopped, WAIT, "the magic's tap to end by itself")
        wait_for(lambda: not tracing(management, mesh), WAIT, "the firehose to go off")
        made, _, _ = run(ip, "tap --max-duration none --max-records 5000")
        assert made.bounds.max_duration is None and made.bounds.max_records == 5000
        frame, _, _ = run(ip, "status")
        assert frame.set_index("alias").loc["limmagic", "firehose_taps"].startswith("tap of all:")
        made.stop()
        _, _, err = run(ip, "tap --max-duration -1")
        assert err.strip().startswith("OptionError: max_duration must be")
        _, out, _ = run(ip, "help tap")
        assert "--max-duration" in out and "--max-records" in out
    finally:
        get_lab().disconnect("limmagic")
