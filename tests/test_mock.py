"""``lab.mock`` on the real broker: a nuropb 0.1.8 service recorded by a tap while a nuropb 0.1.8
client calls it, refused while it consumes, then stood in for once it is gone, called by the
same nuropb 0.1.8 client: recorded answers, a clear error otherwise, its description, its
injected delay in a caller's latency; inferred descriptions, handlers, injected failures,
status and stop; the magic."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from support import LabSetup, peer_process, wait_for

from nuropb_lab.lab import Lab, LabError, get_lab
from nuropb_lab.lab.tap import Tap
from nuropb_lab.mesh import ManagementAPI

PEERS = Path(__file__).resolve().parent / "peers"
DELAY = 0.3  # s the mock waits before each answer
CALLS = [
    {"id": "describe", "op": "describe"},
    {"id": "add", "op": "request", "method": "add", "params": {"a": 2, "b": 3}},
    {"id": "add_default", "op": "request", "method": "add", "params": {"a": 7}},
    {
        "id": "fail",
        "op": "request",
        "method": "fail",
        "params": {"message": "boom"},
        "expect_error": True,
    },
]


def nuropb_client(python: Path, url: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """peers/nuropb_client.py: a nuropb 0.1.8 client running ``steps`` against ``ref``."""
    done = subprocess.run(
        [str(python), str(PEERS / "nuropb_client.py"), url, "ref", json.dumps(steps)],
        capture_output=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    results: dict[str, Any] = json.loads(done.stdout)["results"]
    return results


@pytest.fixture(scope="module")
def lab_setup() -> LabSetup:
    return LabSetup(alias="mocks")


def consumers(lab: Lab, service: str = "ref") -> int:
    found = lab.runner.run(lab.connection().api.queue_info(f"nuropb-{service}-sq"), 10)
    return found[1] if found is not None else 0


@pytest.fixture(scope="module")
def recorded(lab: Lab, nuropb_python: Path, mesh_url: str, management: ManagementAPI) -> Tap:
    """A tap of a nuropb 0.1.8 client calling the nuropb 0.1.8 service ``ref``, which is gone
    at the end (after the refusal was seen while it consumed)."""
    vhost = mesh_url.rsplit("/", 1)[1]
    try:
        with peer_process(nuropb_python, "nuropb_service.py", mesh_url, "ref"):
            # a describe with a key is over the default 2 KiB a tap keeps of a body
            tap = lab.tap("ref", body_limit=64 * 1024)
            assert tap.mode == "firehose"
            answers = nuropb_client(nuropb_python, mesh_url, CALLS)
            assert answers["add"] == {"result": 5}
            wait_for(lambda: tap.calls["answered"].sum() >= len(CALLS), 15, "the responses")
            tap.stop()
            with pytest.raises(LabError, match=r"^ref is being served \(1 consumer\(s\)"):
                lab.mock("ref", tap)
            assert "ref" not in lab.connection().served  # nothing was served
            beside = lab.mock("ref", tap, replace=True)  # one more instance, and it says so
            assert beside.notes == [
                "one more instance beside 1 consumer(s) of ref's queue: the mock answers about"
                " 1 in 2 of its calls"
            ]
            assert consumers(lab) == 2
            beside.stop()
    finally:
        management.call_blocking("PUT", f"vhosts/{vhost}", {"tracing": False})
    wait_for(lambda: consumers(lab) == 0, 15, "the nuropb service to leave")
    return tap


def test_recorded_calls_answered_after_the_service_is_gone(
    lab: Lab, recorded: Tap, nuropb_python: Path, mesh_url: str, tmp_path: Path
) -> None:
    path = recorded.save(tmp_path / "ref.jsonl")
    mock = lab.mock("ref", str(path), delay=DELAY)  # from the file tap.save wrote
    try:
        assert lab.status().loc[0, "served"] == "ref (mock)"
        steps = [
            *CALLS,
            {
                "id": "unrecorded",
                "op": "request",
                "method": "add",
                "params": {"a": 9},
                "expect_error": True,
            },
            {
                "id": "unrecorded_secret",
                "op": "request",
                "method": "secret",
                "params": {"text": "x"},
                "encrypted": True,  # with the mock's own key, from its describe
                "expect_error": True,
            },
            {
                "id": "unknown",
                "op": "request",
                "method": "nope",
                "params": {},
                "expect_error": True,
            },
        ]
        answers = nuropb_client(nuropb_python, mesh_url, steps)
        assert answers["add"] == {"result": 5} and answers["add_default"] == {"result": 9}
        # the recorded error, as nuropb 0.1.8 reported it
        assert "ValueError: boom" in answers["fail"]["description"]
        assert answers["unrecorded"]["description"] == (
            "mock: no recorded call of ref.add(a=9); the nearest recorded: add(a=7)"
        )
        assert answers["unrecorded_secret"]["description"] == (
            "mock: no recorded call of ref.secret(text='x')"
        )
        assert answers["unknown"]["description"] == "Unknown method nope"
        # its description is the recorded one (the key is the mock's own)
        described = answers["describe"]["result"]
        original = recorded.df.query("method == 'nuropb_describe' and kind == 'response'")
        recorded_description = original["payload"].iloc[0]
        assert described["methods"] == recorded_description["methods"]
        assert described["service_version"] == "0.1.8-interop"
        assert answers["describe"]["requires_encryption"]["secret"] is True
        assert mock.stats == {"answered": 3, "handled": 0, "unmatched": 2, "injected": 0}
        assert mock.notes == []  # every call was seen whole
        # the injected delay shows in a caller's latency
        assert lab.call("ref.add", a=2, b=3) == 5
        assert lab.history(1)["latency_ms"].iloc[0] >= DELAY * 1000
    finally:
        mock.stop()
    assert "ref" not in lab.connection().served and not lab.connection().mocks
    assert lab.status().loc[0, "served"] == ""
    again = lab.mock("ref")  # no recording given: the newest tap that saw calls to it
    try:
        assert again.served.recording.calls == mock.served.recording.calls
        assert lab.call("ref.add", a=7) == 9
    finally:
        again.stop()


def test_an_inferred_description_handlers_and_injected_failures(lab: Lab, recorded: Tap) -> None:
    df = recorded.df
    calls_only = df[df["method"] != "nuropb_describe"]
    mock = lab.mock(
        "ref",
        calls_only,
        handlers={"add": lambda a, b=2: a * b, "ping": lambda: "pong"},
        error_rate=0.5,
        seed=3,
    )
    try:
        methods = lab.runner.run(lab.connection().api.describe_service("ref", refresh=True), 10)[
            "methods"
        ]
        assert set(methods) == {"add", "fail", "ping"}
        assert methods["add"]["parameters"] == {
            "type": "object",
            "properties": [
                ["a", {"type": "int", "description": "", "default": ""}],
                ["b", {"type": "int", "description": "", "default": None}],
            ],
            "required": ["a"],
        }
        assert methods["add"]["returns"] == {"type": "int"}
        outcomes = []
        for _ in range(20):
            try:
                outcomes.append(lab.call("ref.add", a=2, b=3))  # the handler: 2 * 3
            except Exception as exc:
                outcomes.append(type(exc).__name__)
        assert set(outcomes) == {6, "NuropbException"}
        assert mock.stats["injected"] == outcomes.count("NuropbException")
        assert mock.stats["handled"] == outcomes.count(6)
    finally:
        mock.stop()


def test_disconnect_takes_a_mock_off_the_mesh(lab: Lab, mesh_url: str) -> None:
    other = Lab(timeout=10)
    try:
        other.connect(mesh_url, alias="leaving")
        made = other.mock("leaver", handlers={"ping": lambda: "pong"})
        assert other.call("leaver.ping") == "pong" and consumers(lab, "leaver") == 1
        other.disconnect("leaving")
        assert made.stopped and "stopped" in repr(made)
        wait_for(lambda: consumers(lab, "leaver") == 0, 15, "the mock to leave")
    finally:
        other.close()


def test_bad_input_is_one_line(lab: Lab, recorded: Tap, tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"^no recording of nobody: no tap of this connection"):
        lab.mock("nobody")  # no tap of the connection (stopped ones too) saw a call to it
    with pytest.raises(LabError, match="no recording at"):
        lab.mock("ref", str(tmp_path / "missing.jsonl"))
    with pytest.raises(LabError, match="a recording is a tap, its df, or a file"):
        lab.mock("ref", 42)
    with pytest.raises(LabError, match="holds no answered call to nobody"):
        lab.mock("nobody", recorded)
    with pytest.raises(LabError, match="error_rate must be from 0 to 1"):
        lab.mock("ref", recorded, error_rate=2)
    with pytest.raises(LabError, match="delay is in seconds"):
        lab.mock("ref", recorded, delay="slow")  # type: ignore[arg-type]
    assert "ref" not in lab.connection().served


def test_the_magic(recorded: Tap, mesh_url: str) -> None:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nuropb_lab")
    magic = get_lab()
    magic.connect(mesh_url, alias="mockmagic")
    ip.user_ns["recording"] = recorded
    try:
        with capture_output() as captured:
            ip.run_line_magic("nuropb", "mock ref --from recording --delay 50 -o m")
        assert captured.stdout.startswith("mocking ref on mockmagic: <Mock ref (serving): 3")
        status = ip.run_line_magic("nuropb", "status")
        assert "ref (mock)" in list(status["served"])
        assert magic.call("ref.add", a=7) == 9
        with capture_output() as captured:
            ip.run_line_magic("nuropb", "mock ref --stop")
        assert captured.stdout.strip() == "stopped the mock of ref"
        assert ip.user_ns["m"].stopped
        result = ip.run_cell("%nuropb mock ref --from nowhere")
        assert "--from: no variable or file named 'nowhere'" in str(result.error_in_exec)
    finally:
        magic.disconnect("mockmagic")
