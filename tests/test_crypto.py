"""The hybrid RSA + Fernet format, without a broker."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization

from nuropb_lab.mesh import crypto
from nuropb_lab.mesh.errors import NuropbMessageError

KEY = crypto.new_private_key()


def test_request_format_is_b64_rsa_dot_b64_fernet() -> None:
    wire, fernet_key = crypto.encrypt_request(b'{"a":1}', KEY.public_key())
    wrapped, token = wire.split(b".")
    # the RSA part is the Fernet key under the service's public key (OAEP, SHA-256)
    assert KEY.decrypt(base64.b64decode(wrapped), crypto._OAEP) == fernet_key
    # the token part is the Fernet token, base64-encoded once more
    assert Fernet(fernet_key).decrypt(base64.b64decode(token)) == b'{"a":1}'


def test_service_decrypts_and_answers_with_the_same_key() -> None:
    wire, fernet_key = crypto.encrypt_request(b"request", KEY.public_key())
    body, key, wrapped = crypto.decrypt_request(wire, KEY)
    assert (body, key) == (b"request", fernet_key)
    response = crypto.encrypt_with_key(b"response", key, wrapped)
    assert crypto.decrypt_with_key(response, fernet_key) == b"response"


def test_a_fresh_key_per_request() -> None:
    _, k1 = crypto.encrypt_request(b"x", KEY.public_key())
    _, k2 = crypto.encrypt_request(b"x", KEY.public_key())
    assert k1 != k2


@pytest.mark.parametrize("wire", [b"no-dot", b".token", b"key.", b"a.b"])
def test_malformed_bodies_are_message_errors(wire: bytes) -> None:
    with pytest.raises(NuropbMessageError):
        crypto.decrypt_request(wire, KEY)


def test_wrong_key_is_a_message_error() -> None:
    wire, _ = crypto.encrypt_request(b"x", crypto.new_private_key().public_key())
    with pytest.raises(NuropbMessageError, match="could not be decrypted"):
        crypto.decrypt_request(wire, KEY)
    with pytest.raises(NuropbMessageError, match="could not be decrypted"):
        crypto.decrypt_with_key(wire, Fernet.generate_key())


def test_pem_round_trip_and_fingerprint() -> None:
    pem = crypto.public_pem(KEY)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    public = crypto.load_public_pem(pem)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert crypto.fingerprint(public) == crypto.fingerprint(KEY) == hashlib.sha256(der).hexdigest()
    assert (
        crypto.load_private_pem(crypto.private_pem(KEY)).private_numbers() == KEY.private_numbers()
    )
    with pytest.raises(NuropbMessageError, match="invalid public key"):
        crypto.load_public_pem("not a key")


def request_made_at(at: int) -> bytes:
    """An encrypted request as a nuropb 0.1.8 client makes it, its token made at ``at``."""
    fernet_key = Fernet.generate_key()
    token = Fernet(fernet_key).encrypt_at_time(b'{"a":1}', at)
    return crypto.wrap_key(fernet_key, KEY.public_key()) + b"." + base64.b64encode(token)


def test_a_request_is_taken_once_within_its_ttl() -> None:
    fresh = crypto.FreshRequests()
    now = int(time.time())
    wire = request_made_at(now)
    assert fresh.take(wire, KEY, "60000", redelivered=False)[0] == b'{"a":1}'
    with pytest.raises(NuropbMessageError, match="replay"):
        fresh.take(wire, KEY, "60000", redelivered=False)
    # the same message redelivered by the broker (a requeue, a lost channel) is no replay
    assert fresh.take(wire, KEY, "60000", redelivered=True)[0] == b'{"a":1}'
    # older than its ttl (plus the clock skew allowed), whatever ttl a copy claims past 1 h
    with pytest.raises(NuropbMessageError, match="older than its ttl of 60 s"):
        fresh.take(request_made_at(now - 200), KEY, "60000", redelivered=False)
    with pytest.raises(NuropbMessageError, match="older than its ttl of 3600 s"):
        fresh.take(request_made_at(now - 4000), KEY, str(10**9), redelivered=False)
    # a sender's clock 30 s behind is fine; a token from 2 minutes ahead is not
    assert fresh.take(request_made_at(now - 80), KEY, "60000", redelivered=False)
    with pytest.raises(NuropbMessageError, match="in the future"):
        fresh.take(request_made_at(now + 120), KEY, "60000", redelivered=False)


def test_past_its_bound_the_oldest_go_and_tokens_as_old_are_refused() -> None:
    fresh = crypto.FreshRequests(max_entries=3)
    now = int(time.time())
    first = request_made_at(now - 10)
    fresh.take(first, KEY, None, redelivered=False)
    for _ in range(3):
        fresh.take(request_made_at(now), KEY, None, redelivered=False)
    assert len(fresh) == 3
    with pytest.raises(NuropbMessageError, match="older than the requests this service"):
        fresh.take(first, KEY, None, redelivered=False)  # let go, yet still no replay
    assert fresh.take(request_made_at(now), KEY, None, redelivered=False)
