"""The hybrid RSA + Fernet format, without a broker."""

from __future__ import annotations

import base64
import hashlib

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
