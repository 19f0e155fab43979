"""Hybrid RSA + Fernet payload encryption, in nuropb's wire format.

An encrypted body is ``base64(RSA-OAEP(fernet_key)) + b"." + base64(fernet_token)``. The
Fernet key is fresh per correlation id; the response to an encrypted request is encrypted
with the same key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import NuropbMessageError

__all__ = [
    "decrypt_request",
    "decrypt_with_key",
    "encrypt_request",
    "encrypt_with_key",
    "fingerprint",
    "load_private_pem",
    "load_public_pem",
    "new_fernet_key",
    "new_private_key",
    "private_pem",
    "public_pem",
    "wrap_key",
]

_OAEP = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)


def new_private_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_public_pem(pem: str | bytes) -> rsa.RSAPublicKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise NuropbMessageError(f"invalid public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise NuropbMessageError(f"public key is {type(key).__name__}, not RSA")
    return key


def load_private_pem(pem: str | bytes, password: bytes | None = None) -> rsa.RSAPrivateKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=password)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"private key is {type(key).__name__}, not RSA")
    return key


def fingerprint(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, in hex."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def new_fernet_key() -> bytes:
    return Fernet.generate_key()


def encrypt_with_key(body: bytes, fernet_key: bytes, wrapped_key: bytes) -> bytes:
    """Encrypt ``body`` under ``fernet_key``; ``wrapped_key`` is its base64 RSA form."""
    return wrapped_key + b"." + base64.b64encode(Fernet(fernet_key).encrypt(body))


def wrap_key(fernet_key: bytes, public_key: rsa.RSAPublicKey) -> bytes:
    return base64.b64encode(public_key.encrypt(fernet_key, _OAEP))


def encrypt_request(body: bytes, public_key: rsa.RSAPublicKey) -> tuple[bytes, bytes]:
    """Encrypt a request body for a service; returns (wire body, the Fernet key to keep)."""
    fernet_key = new_fernet_key()
    return encrypt_with_key(body, fernet_key, wrap_key(fernet_key, public_key)), fernet_key


def _split(wire: bytes) -> tuple[bytes, bytes]:
    wrapped, sep, token = wire.partition(b".")
    if not sep or not wrapped or not token:
        raise NuropbMessageError("encrypted body is not in the form key.token")
    return wrapped, token


def decrypt_with_key(wire: bytes, fernet_key: bytes) -> bytes:
    """Decrypt a body with a Fernet key this side already holds (a response)."""
    _, token = _split(wire)
    try:
        return Fernet(fernet_key).decrypt(base64.b64decode(token, validate=True))
    except (InvalidToken, binascii.Error, ValueError) as exc:
        raise NuropbMessageError("encrypted body could not be decrypted") from exc


def decrypt_request(wire: bytes, private_key: rsa.RSAPrivateKey) -> tuple[bytes, bytes, bytes]:
    """Decrypt a request with the service's key; returns (body, Fernet key, wrapped key).

    The wrapped key is reused for the response: it already is the key under the service's
    own public key, which is what nuropb puts in a response (the client ignores it).
    """
    wrapped, token = _split(wire)
    try:
        fernet_key = private_key.decrypt(base64.b64decode(wrapped, validate=True), _OAEP)
        body = Fernet(fernet_key).decrypt(base64.b64decode(token, validate=True))
    except (InvalidToken, binascii.Error, ValueError) as exc:
        raise NuropbMessageError("encrypted body could not be decrypted") from exc
    return body, fernet_key, wrapped
