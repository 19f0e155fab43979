"""The known keys (pinned fingerprints, encryption seen required) and the describe policy on
them, without a broker: the answers a describe gathers are given."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nuropb_lab.mesh import crypto, descriptions
from nuropb_lab.mesh.descriptions import DescribeConflict, Descriptions, EncryptionRefused
from nuropb_lab.mesh.errors import NuropbMessageError
from nuropb_lab.mesh.known_keys import KnownKeys, KnownKeysError, parse_fingerprint
from nuropb_lab.mesh.responses import Answer

KEY = crypto.new_private_key()
OTHER = crypto.new_private_key()


def fp(key: Any) -> str:
    return crypto.fingerprint(key)


def answer(pem: str | None, required: tuple[str, ...] = ("store",), **extra: Any) -> Answer:
    methods = {
        m: {"requires_encryption": m in required, "parameters": {}} for m in ("store", "list")
    }
    info = {"service_name": "vault", "public_key": pem, "methods": methods, **extra}
    return {"tag": "response", "result": info, "error": None}


class Asked:
    """A describe's answers, given: the first ones gathered, the rest late."""

    def __init__(self, *answers: Answer, late: tuple[Answer, ...] = ()) -> None:
        self.answers = list(answers)
        self.late = list(late)
        self.windows: list[float] = []

    async def __call__(
        self,
        service: str,
        ttl: int,
        window: Callable[[Answer], float],
        on_late: Callable[[Answer], None],
    ) -> list[Answer]:
        self.windows.append(window(self.answers[0]))
        for answer_ in self.late:
            asyncio.get_running_loop().call_soon(on_late, answer_)
        return self.answers


def describe(d: Descriptions, service: str = "vault") -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        info = await d.describe(service, refresh=True)
        await asyncio.sleep(0)  # late answers, if any
        return info

    return asyncio.run(run())


def test_file_holds_fingerprints_and_requirements_only(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "known_keys.json"
    store = KnownKeys(path)
    d = Descriptions(Asked(answer(crypto.public_pem(KEY))), "mesh", store)
    describe(d)
    text = path.read_text()
    data = json.loads(text)
    assert data["keys"] == [
        {
            "mesh": "mesh",
            "service": "vault",
            "fingerprint": fp(KEY),
            "requires_encryption": ["store"],
        }
    ]
    assert "BEGIN" not in text and "PRIVATE" not in text  # no key, only its fingerprint
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # a new store (a new Lab) reads it back
    assert KnownKeys(path).get("mesh", "vault") == store.get("mesh", "vault")


def test_first_key_is_pinned_and_another_is_refused_until_trusted(tmp_path: Path) -> None:
    store = KnownKeys(tmp_path / "k.json")
    first = Asked(answer(crypto.public_pem(KEY)))
    d = Descriptions(first, "mesh", store)
    describe(d)
    assert first.windows == [descriptions.FIRST_WINDOW_S]  # first use: wait for a second answer
    assert d.key("vault") is not None and store.get("mesh", "vault").fingerprint == fp(KEY)  # type: ignore[union-attr]
    # a describe answered with another key (by a peer alone) does not take the pinned one away
    first.answers = [answer(crypto.public_pem(OTHER))]
    describe(d)
    assert d.key("vault") is not None and fp(d.key("vault")) == fp(KEY)
    assert "not the one pinned" in (d.status("vault").problem or "")

    changed = Asked(answer(crypto.public_pem(OTHER)))
    d2 = Descriptions(changed, "mesh", KnownKeys(tmp_path / "k.json"))
    describe(d2)
    assert changed.windows == [0.0]  # pinned: a different key is refused anyway
    assert d2.key("vault") is None
    problem = d2.problem("vault") or ""
    assert fp(KEY)[:16] in problem and fp(OTHER)[:16] in problem and fp(OTHER) in problem
    with pytest.raises(EncryptionRefused, match="requires encryption, but vault's key is not"):
        d2.decide("vault", "store", None)
    d2.trust("vault", f"SHA256:{fp(OTHER).upper()}")
    assert d2.key("vault") is not None and d2.decide("vault", "store", None) == (True, None)


def test_answers_that_disagree_are_a_conflict(tmp_path: Path) -> None:
    store = KnownKeys(tmp_path / "k.json")
    asked = Asked(answer(crypto.public_pem(OTHER)), answer(crypto.public_pem(KEY)))
    d = Descriptions(asked, "mesh", store)
    with pytest.raises(DescribeConflict, match="describe conflict") as info:
        describe(d)
    assert fp(KEY)[:16] in str(info.value) and fp(OTHER)[:16] in str(info.value)
    assert d.key("vault") is None and d.cached("vault") is None
    assert store.get("mesh", "vault").fingerprint is None  # type: ignore[union-attr]
    # the requirements any answer claimed are kept (stricter only)
    assert store.get("mesh", "vault").requires_encryption == {"store"}  # type: ignore[union-attr]
    with pytest.raises(EncryptionRefused, match="conflict"):
        d.decide("vault", "store", None)
    d.trust("vault", fp(KEY))  # the user checked it: the conflict ends
    assert "conflict" not in (d.problem("vault") or "")
    assert store.get("mesh", "vault").fingerprint == fp(KEY)  # type: ignore[union-attr]


def test_a_late_answer_that_disagrees_lets_a_first_key_go(tmp_path: Path) -> None:
    store = KnownKeys(tmp_path / "k.json")
    late = answer(crypto.public_pem(KEY))
    d = Descriptions(Asked(answer(crypto.public_pem(OTHER)), late=(late,)), "mesh", store)
    describe(d)
    assert d.key("vault") is None and store.get("mesh", "vault").fingerprint is None  # type: ignore[union-attr]
    assert "a late answer" in (d.problem("vault") or "")


def test_a_late_answer_against_a_pinned_key_is_said_but_the_pin_holds(tmp_path: Path) -> None:
    store = KnownKeys(tmp_path / "k.json")
    describe(Descriptions(Asked(answer(crypto.public_pem(KEY))), "mesh", store))
    late = answer(crypto.public_pem(OTHER))
    d = Descriptions(Asked(answer(crypto.public_pem(KEY)), late=(late,)), "mesh", store)
    describe(d)
    assert d.key("vault") is not None  # an answerer cannot make the pinned key unusable
    assert "only the pinned key" in (d.problem("vault") or "")


def test_requirements_are_never_lowered(tmp_path: Path) -> None:
    store = KnownKeys(tmp_path / "k.json")
    describe(Descriptions(Asked(answer(crypto.public_pem(KEY))), "mesh", store))
    downgraded = Descriptions(Asked(answer(None, required=())), "mesh", store)
    info = describe(downgraded)
    assert info["methods"]["store"]["requires_encryption"] is True
    assert any("still encrypted" in w for w in info["warnings"])
    assert downgraded.requires("vault", "store") is True
    with pytest.raises(EncryptionRefused, match="requires encryption; a plaintext call"):
        downgraded.decide("vault", "store", False)
    with pytest.raises(EncryptionRefused, match="publishes no public key"):
        downgraded.decide("vault", "store", None)


def test_cannot_tell_encrypts_with_a_known_key_or_refuses(tmp_path: Path) -> None:
    store = KnownKeys(tmp_path / "k.json")
    d = Descriptions(Asked(answer(crypto.public_pem(KEY))), "mesh", store)
    with pytest.raises(EncryptionRefused, match=r"not sent: .* encrypt=False"):
        d.decide("vault", "list", None)  # never described, no key
    assert d.decide("vault", "list", False)[0] is False  # sent anyway, and said
    assert "plaintext as asked" in (d.decide("vault", "list", False)[1] or "")
    describe(d)
    d.forget("vault")  # what it offers is not known now; its key is
    encrypt, note = d.decide("vault", "list", None)
    assert encrypt and "pinned key" in (note or "")


def test_short_and_unreadable_keys_are_not_used(tmp_path: Path) -> None:
    small = crypto.load_public_pem(
        "-----BEGIN PUBLIC KEY-----\n"
        "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAJ5VP4ZuqinY+RUMLxRZuNrKdF1YyWY+\n"
        "00hjZn7k086+6t3QKk6T02VHMQQoQHhC7+Anu73BBBJ98mBAEJPhnmkCAwEAAQ==\n"
        "-----END PUBLIC KEY-----\n"
    )
    store = KnownKeys(tmp_path / "k.json")
    d = Descriptions(Asked(answer(crypto.public_pem(small))), "mesh", store)
    describe(d)
    assert d.key("vault") is None and "512-bit" in (d.problem("vault") or "")
    assert store.get("mesh", "vault").fingerprint is None  # type: ignore[union-attr]
    with pytest.raises(NuropbMessageError, match="512-bit"):
        crypto.encrypt_request(b"x", small)
    bad = Descriptions(Asked(answer("not a key")), "other", store)
    describe(bad, "vault")
    assert "unreadable" in (bad.problem("vault") or "")


def test_the_description_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(descriptions, "CACHE_BYTES", 20_000)
    big = answer(None, required=(), description="x" * 6_000)
    d = Descriptions(Asked(big), "mesh", KnownKeys())
    for n in range(10):
        describe(d, f"s{n}")
    kept = [n for n in range(10) if d.cached(f"s{n}") is not None]
    assert kept == [7, 8, 9]  # the most recent that fit


def test_a_bad_file_is_one_line_and_never_written_over(tmp_path: Path) -> None:
    path = tmp_path / "known_keys.json"
    path.write_text("{not json")
    store = KnownKeys(path)
    with pytest.raises(KnownKeysError, match="cannot be read") as info:
        store.pin("mesh", "vault", fp(KEY))
    assert "\n" not in str(info.value)
    assert path.read_text() == "{not json"
    path.write_text(json.dumps({"nuropb-lab known keys": 1, "keys": [{"mesh": "m"}]}))
    with pytest.raises(KnownKeysError, match="no mesh or service"):
        KnownKeys(path).get("m", "x")


def test_a_file_that_cannot_be_written_keeps_the_pins_in_memory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    store = KnownKeys(tmp_path / "file" / "known_keys.json")  # its directory is a file
    assert store.pin("mesh", "vault", fp(KEY)) is True
    assert store.get("mesh", "vault").fingerprint == fp(KEY)  # type: ignore[union-attr]


def test_fingerprints_are_parsed_or_refused() -> None:
    hex64 = fp(KEY)
    colons = ":".join(hex64[i : i + 2] for i in range(0, 64, 2)).upper()
    assert parse_fingerprint(f"sha256:{colons}") == hex64
    for bad in ("", "abc", hex64[:-1], hex64 + "0", "z" * 64, None):
        with pytest.raises(KnownKeysError):
            parse_fingerprint(bad)
