"""Redaction on a mesh nuropb 0.1.8's ``configure_mesh`` set up, with nuropb 0.1.8 clients
calling a nuropb 0.1.8 service (tests/peers): the credentials in their traffic and in the lab's
own calls appear in no table, file, printed line or widget value of a Lab that redacts (the
default), and do in one that does not (``redact=False``); an ordinary value shows in both; a
replay of a request whose values were redacted is refused, naming them."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from support import ROOT, nuropb_made_mesh, peer_process, wait_for

import nuropb_lab as nl
from nuropb_lab.lab import Lab, RedactedReplay
from nuropb_lab.lab.redact import MARKER
from nuropb_lab.mesh import ManagementAPI

USER = "u-4242-ordinary"  # a user id: not a secret, shown everywhere
BEARER = "ctx0bearer7token9abcdef"  # a caller's context: {"Authorization": "Bearer ..."}
PASSWORD = "pw-hunter2-not-for-you"  # in params
JWT = ".".join(
    base64.urlsafe_b64encode(part).decode().rstrip("=")
    for part in (
        json.dumps({"alg": "HS256", "typ": "JWT"}).encode(),
        json.dumps({"sub": USER}).encode(),
        b"jwt-signature-bytes",
    )
)
API_KEY = "ak-live-5f3e2d1c0b9a"  # an event's
SESSION = "sess-7c6b5a4d3e2f"  # an event's
DL_TOKEN = "dl-token-0e1d2c3b4a"  # in a request that is dead-lettered
OWN_TOKEN = "own0lab1user2token3"  # the lab user's own, in its call's context
OWN_PASSWORD = "own-lab-password-99"  # the lab user's own, in its call's params
SECRETS = [BEARER, PASSWORD, JWT, API_KEY, SESSION, DL_TOKEN, OWN_TOKEN, OWN_PASSWORD]
# the nuropb clients' secrets (the lab's own calls are made by the redacting Lab only)
THEIRS = [BEARER, PASSWORD, JWT, API_KEY, SESSION, DL_TOKEN]


def leaked(text: str, secrets: list[str] = SECRETS) -> list[str]:
    return [s for s in secrets if s in text]


def shown(frame: Any) -> str:
    """A table as a user sees and keeps it: printed, and as a dict."""
    return frame.to_string() + json.dumps(frame.to_dict(), default=str)


@pytest.fixture(scope="module")
def mesh_url(nuropb_python: Path, management: ManagementAPI) -> Iterator[str]:
    yield from nuropb_made_mesh(nuropb_python, management, "redact", "configure_mesh")


def run_nuropb_client(python: Path, url: str, service: str, steps: list[dict[str, Any]]) -> None:
    script = str(ROOT / "tests" / "peers" / "nuropb_client.py")
    done = subprocess.run(
        [str(python), script, url, service, json.dumps(steps)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"


def scenario(service: str) -> list[dict[str, Any]]:
    """What nuropb 0.1.8 clients send: a context token, a password and a token in params
    (rejected by the service: dead letters), a JWT-shaped value (echoed in the error), an
    event with an api key and a session id."""
    ctx = {"Authorization": f"Bearer {BEARER}", "user_id": USER}
    return [
        {"id": "ctx", "op": "request", "method": "add", "params": {"a": 2, "b": 3}, "context": ctx},
        {
            "id": "pw",
            "op": "request",
            "method": "fail",
            "params": {"message": "login", "user_id": USER, "password": PASSWORD},
            "expect_error": True,
        },
        {
            "id": "jwt",
            "op": "request",
            "method": "fail",
            "params": {"message": JWT},
            "expect_error": True,
        },
        {
            "id": "dl",
            "op": "request",
            "method": "fail",
            "params": {"message": "x", "token": DL_TOKEN},
            "expect_error": True,
        },
        {
            "id": "event",
            "op": "event",
            "topic": f"lab.{service}.signup",
            "event": {"user_id": USER, "api_key": API_KEY, "session_id": SESSION},
        },
    ]


def test_no_credential_is_shown_or_kept(nuropb_python: Path, mesh_url: str, tmp_path: Path) -> None:
    service = f"ref-{uuid.uuid4().hex[:8]}"
    redacting, open_lab = Lab(timeout=10), Lab(timeout=10, redact=False)
    try:
        redacting.connect(mesh_url, alias="r")
        open_lab.connect(mesh_url, alias="o")
        with peer_process(nuropb_python, "nuropb_service.py", mesh_url, service):
            taps = [lab.tap() for lab in (redacting, open_lab)]
            tails = [lab.tail("#") for lab in (redacting, open_lab)]
            run_nuropb_client(nuropb_python, mesh_url, service, scenario(service))
            # the lab user's own call: a token in its context, a password in its params
            assert (
                redacting.call(
                    f"{service}.add", a=1, b=2, context={"Authorization": f"Bearer {OWN_TOKEN}"}
                )
                == 3
            )
            with pytest.raises(nl.NuropbException):
                redacting.call(f"{service}.fail", message="own", password=OWN_PASSWORD, check=False)
            for tap in taps:  # 3 calls to add and fail by the clients, 2 by the lab
                wait_for(lambda t=tap: t.calls["answered"].sum() >= 6, 30, "the calls answered")
            for tail in tails:  # the event, and the service's echo of it
                wait_for(lambda t=tail: len(t) >= 2, 30, "the events")
            wait_for(lambda: len(redacting.dead_letters()) >= 4, 30, "the dead letters")

            tap, tail = taps[0], tails[0]
            path = tap.save(tmp_path / "tap.jsonl")
            outputs = {
                "tap.df": shown(tap.df),
                "tap.calls": shown(tap.calls),
                "tap repr": repr(tap) + tap._repr_html_(),
                "saved file": path.read_text(),
                "load_tap": shown(nl.load_tap(path).df),
                "traces": "".join(
                    shown(tap.trace(t).df) + tap.trace(t).picture.svg for t in tap.traces().trace_id
                ),
                "tail.df": shown(tail.df) + tail._repr_html_(),
                "dead letters": shown(redacting.dead_letters()),
                "history": shown(redacting.history()),
            }
            tap_view, tail_view = tap.widget(), tail.widget()
            tap_view.draw()
            tail_view.draw()
            outputs["tap widget"] = tap_view.table.value + tap_view.status.value
            outputs["tail widget"] = tail_view.table.value + tail_view.status.value
            tap_view.close()
            tail_view.close()
            shell = InteractiveShell.instance()
            shell.run_line_magic("load_ext", "nuropb_lab")
            with capture_output() as printed:  # the magic's own Lab: redacting by default
                shell.run_line_magic("nuropb", f"connect {mesh_url} --alias redact-magic")
                try:
                    frame = shell.run_line_magic("nuropb", "dlq --alias redact-magic")
                    shell.run_line_magic("nuropb", "status")
                finally:
                    shell.run_line_magic("nuropb", "disconnect redact-magic")
            outputs["%nuropb dlq"] = shown(frame) + printed.stdout + printed.stderr
            for name, text in outputs.items():
                assert not leaked(text), f"{name} shows {leaked(text)}"
            assert "redaction: on" in printed.stdout
            assert "value(s) redacted" in printed.stdout
            for name in ("tap.df", "saved file", "tail.df", "dead letters", "tap widget"):
                assert USER in outputs[name], f"{name} lost the ordinary value"
                assert MARKER in outputs[name], name
            assert tap.df.attrs["redacted"] >= 8 and tail.df.attrs["redacted"] >= 2
            assert frame.attrs["redacted"] >= 3
            assert f"{tap.status()['redacted']} redacted" in repr(tap)
            assert "redacted" in repr(tail)

            # the Lab that does not redact shows what it was sent
            opened = {
                "tap.df": shown(taps[1].df),
                "tail.df": shown(tails[1].df),
                "dead letters": shown(open_lab.dead_letters()),
            }
            everything = "".join(opened.values())
            assert not set(THEIRS) - set(leaked(everything, THEIRS)), opened
            assert "redaction off" in repr(taps[1])

            # a replay does not send the marker: refused, naming the fields
            df = tap.df
            requests = df[(df["kind"] == "request") & (df["method"] == "add")]
            theirs = requests[requests["context"].map(lambda c: USER in str(c))].iloc[0]
            with pytest.raises(RedactedReplay, match=r"context\.Authorization") as refused:
                redacting.replay(theirs)
            assert "\n" not in str(refused.value) and "context={...}" in str(refused.value)
            assert redacting.replay(theirs, context={"Authorization": "Bearer mine-0123"}) == 5
            failed = df[df["payload"].map(lambda p: "password" in str(p))]
            with pytest.raises(RedactedReplay, match=r"params\.password"):
                redacting.replay(failed.iloc[0])
            letters = redacting.dead_letters()
            dead = letters[letters["body"].str.contains('"token"')].iloc[0]
            with pytest.raises(RedactedReplay, match=r"params\.token"):
                redacting.replay(dead)  # read from the dead-letter queue, redacted there too
    finally:
        redacting.close()
        open_lab.close()
