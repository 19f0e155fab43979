"""Redaction (lab/redact.py) without a broker: the default keys and value patterns, keys added,
off, the pre-check, the count, a loaded tap's file, the settings and the replay refusal."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pandas as pd
import pytest

from nuropb_lab.lab import Lab, LabError, RedactedReplay
from nuropb_lab.lab.history import CallRecord, History
from nuropb_lab.lab.redact import (
    MARKER,
    Redactor,
    marked,
    redactor,
)
from nuropb_lab.lab.tap import load_tap
from nuropb_lab.lab.tap.capture import COLUMNS, Capture
from nuropb_lab.lab.tap.replay import Replayable, _refuse_redacted


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


JWT = ".".join(
    [
        b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()),
        b64url(json.dumps({"sub": "u-42", "name": "Ann"}).encode()),
        b64url(b"signature-bytes-here"),
    ]
)
BASIC = "Basic " + base64.b64encode(b"ann:s3cr3t-pw").decode()


@pytest.mark.parametrize(
    "key",
    [
        "Authorization",
        "access_token",
        "TOKEN",
        "password",
        "db_passwd",
        "pwd",
        "client_secret",
        "api_key",
        "X-Api-Key",
        "apikey",
        "Set-Cookie",
        "session_id",
        "credentials",
        "private_key",
    ],
)
def test_a_default_key_at_any_depth_is_redacted(key: str) -> None:
    value = {"outer": [{"user_id": "u-42", key: "hunter2"}]}
    redacted, count = Redactor().value(value)
    assert redacted == {"outer": [{"user_id": "u-42", key: MARKER}]}
    assert count == 1
    assert value == {"outer": [{"user_id": "u-42", key: "hunter2"}]}  # a copy, not changed


def test_credential_values_whatever_their_key() -> None:
    value = {
        "header": "Bearer abc.def-123",
        "basic": BASIC,
        "jwt": JWT,
        "note": f"sent {JWT} and Bearer 0123456789abcdef along",
        "user_id": "u-42",
        "plain": "a bearer of news, basic things",
        "dots": "eyJ.not.a.jwt",  # its first part is no JSON header
    }
    redacted, count = Redactor().value(value)
    assert redacted["header"] == redacted["basic"] == redacted["jwt"] == MARKER
    assert redacted["note"] == f"sent {MARKER} and {MARKER} along"
    assert redacted["user_id"] == "u-42"
    assert redacted["plain"] == "a bearer of news, basic things"
    assert redacted["dots"] == "eyJ.not.a.jwt"
    assert count == 5


def test_nothing_to_redact_gives_the_same_object() -> None:
    value = {"user_id": "u-42", "items": [1, 2, {"sku": "A1"}]}
    redacted, count = Redactor().value(value)
    assert redacted is value and count == 0


def test_empty_values_are_left_and_not_counted() -> None:
    redacted, count = Redactor().value({"token": None, "password": "", "session": 0})
    assert redacted == {"token": None, "password": "", "session": MARKER} and count == 1


def test_keys_added_and_off() -> None:
    on = redactor(True, ("tenant",))
    assert on.value({"Tenant_Name": "acme"}) == ({"Tenant_Name": MARKER}, 1)
    assert "tenant" in on.describe()
    off = redactor(False)
    value = {"password": "hunter2", "auth": JWT}
    assert off.value(value) == (value, 0)
    assert off.text(f"Bearer {JWT}") == (f"Bearer {JWT}", 0)
    assert off.describe() == "off"


def test_the_pre_check_on_raw_bytes() -> None:
    r = Redactor()
    assert not r.may_hold(b'{"params": {"i": 1, "text": "hello"}, "context": {}}')
    assert r.may_hold(b'{"context": {"Authorization": "x"}}')
    assert r.may_hold(b'{"a": "' + JWT.encode() + b'"}')
    # a key spelt with JSON escapes still gets the walk
    escaped = b'{"\\u0074oken": "x"}'
    assert r.may_hold(escaped)
    assert r.raw(escaped, json.loads(escaped)) == ({"token": MARKER}, 1)
    assert not Redactor(enabled=False).may_hold(b'{"token": "x"}')


def test_text_lines_keep_what_is_not_a_credential() -> None:
    line = f"NuropbAuthorizationError: token {JWT} expired for u-42"
    expected = f"NuropbAuthorizationError: token {MARKER} expired for u-42"
    assert Redactor().text(line) == (expected, 1)


def test_a_describe_answer_keeps_its_method_names() -> None:
    answer = {
        "service_name": "vault",
        "methods": {"secret": {"description": "a secret"}, "token": {"description": JWT}},
    }
    redacted, count = Redactor().description(answer)
    assert set(redacted["methods"]) == {"secret", "token"} and count == 1
    assert redacted["methods"]["secret"] == {"description": "a secret"}
    assert redacted["methods"]["token"] == {"description": MARKER}
    plain = {"methods": {"session": {"description": "x"}}}
    assert Redactor().description(plain) == (plain, 0)
    assert Redactor().value(plain)[0] == {"methods": {"session": MARKER}}


def test_marked_paths() -> None:
    assert marked({"a": {"b": MARKER}, "c": [1, MARKER], "d": "x"}, "params") == [
        "params.a.b",
        "params.c[1]",
    ]


def test_history_keeps_params_redacted() -> None:
    record = CallRecord.make(
        "m", "call", "svc", "login", {"user_id": "u-42", "password": "hunter2"}, 0.0, 0.1,
        ValueError(f"bad {JWT}"), False, None, "cid",
    )  # fmt: skip
    assert "hunter2" not in record.params and "u-42" in record.params
    assert record.description is not None and JWT not in record.description
    history = History()
    history.add(record)
    assert history.frame().attrs["redacted"] == 2


def test_the_lab_settings() -> None:
    lab = Lab(redact=["tenant"])
    try:
        assert lab.redact is True and lab.redact_keys == ("tenant",)
        assert lab.redactor.value({"tenant": "acme"})[0] == {"tenant": MARKER}
        lab.redact = False
        assert not lab.redactor.enabled
        with pytest.raises(LabError, match="redact must be True or False"):
            lab.redact = "yes"  # type: ignore[assignment]
        with pytest.raises(LabError, match="redact_keys must be a list"):
            lab.redact_keys = [""]  # type: ignore[assignment]
        assert Lab(redact=False).redactor.describe() == "off"
        assert Lab(redact="tenant, region").redact_keys == ("tenant", "region")
    finally:
        lab.close()


def _row(payload: object, context: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(COLUMNS)
    row.update(
        kind="request",
        service="svc",
        method="login",
        correlation_id="c1",
        time=pd.Timestamp.now(tz="UTC"),
        bytes=10,
        encrypted=False,
        truncated=False,
        payload=payload,
        context=context,
    )
    return row


def test_a_file_saved_without_redaction_is_redacted_as_it_loads(tmp_path: Path) -> None:
    path = tmp_path / "tap.jsonl"
    row = _row({"user": "u-42", "password": "hunter2"}, {"Authorization": f"Bearer {JWT}"})
    row["time"] = "2026-01-01T00:00:00Z"
    path.write_text(json.dumps({**row, "_call": False}) + "\n")
    loaded = load_tap(path)
    text = loaded.df.to_string() + json.dumps(loaded.df.to_dict(), default=str)
    assert "hunter2" not in text and JWT not in text and "u-42" in text
    assert loaded.df.attrs["redacted"] == 2 and "2 redacted" in repr(loaded)
    assert "hunter2" in load_tap(path, redact=False).df.to_string()


def test_a_replay_with_redacted_values_is_refused_naming_them() -> None:
    found = Replayable(
        "request", "svc", "login", {"user": "u-42", "password": MARKER},
        {"Authorization": MARKER}, None, "tap",
    )  # fmt: skip
    with pytest.raises(RedactedReplay) as caught:
        _refuse_redacted(found, dict(found.params), None)
    message = str(caught.value)
    assert "params.password" in message and "context.Authorization" in message
    assert "\n" not in message and "context={...}" in message and "password=..." in message
    # given anew, it goes
    _refuse_redacted(found, {**found.params, "password": "mine"}, {"Authorization": "mine"})


def _capture(redact: Redactor) -> Capture:
    return Capture(100, 100, 100, 60.0, 64 * 1024, None, True, 10**7, redact=redact)


def _take(capture: Capture, kind: str, cid: str, body: dict[str, object]) -> None:
    routing = "svc" if kind == "request" else "nuropb-client-1-rq"
    raw = json.dumps(body).encode()
    capture._message(0.0, kind, routing, cid, "nuropb-client-1-rq", None, False, raw, None, None)


@pytest.mark.parametrize("padding", [0, 4000])  # walked at once; looked through as bytes first
def test_a_capture_keeps_no_credential(padding: int) -> None:
    capture = _capture(Redactor())
    filler = "x" * padding
    _take(
        capture,
        "request",
        "c1",
        {"method": "login", "params": {"user_id": "u-42", "password": "hunter2", "pad": filler},
         "context": {"Authorization": f"Bearer {JWT}"}},
    )  # fmt: skip
    failure = {"error": f"Bearer {JWT}", "description": f"refused {BASIC} for u-42"}
    _take(capture, "response", "c1", {"result": None, "error": failure, "context": {}})
    _take(capture, "response", "c2", {"result": {"user_id": "u-42", "pad": filler}})
    rows = repr(capture.snapshot()) + repr(capture.calls.rows())
    assert "hunter2" not in rows and JWT not in rows and BASIC not in rows
    assert "u-42" in rows and capture.redacted == 4
    off = _capture(Redactor(enabled=False))
    _take(off, "request", "c1", {"method": "login", "params": {"password": "hunter2"}})
    assert "hunter2" in repr(off.snapshot()) and off.redacted == 0
