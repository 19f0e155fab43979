"""Hybrid RSA + Fernet payload encryption, in nuropb's wire format.

An encrypted body is ``base64(RSA-OAEP(fernet_key)) + b"." + base64(fernet_token)``. The
Fernet key is fresh per correlation id; the response to an encrypted request is encrypted
with the same key. RSA keys under :data:`MIN_KEY_BITS` are not encrypted for.

A service takes an encrypted request once (:class:`FreshRequests`): its Fernet token carries
the time it was made, so a token older than the message's ttl is refused, and the wrapped keys
of the tokens taken are remembered as long as a token may be that old, so a copy sent again is
refused too. Both sides of nuropb 0.1.8's format stay as they are.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import math
import time
from typing import Final

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import NuropbMessageError

__all__ = [
    "MIN_KEY_BITS",
    "FreshRequests",
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
    "short_key",
    "wrap_key",
]

MIN_KEY_BITS: Final = 2048
MAX_TOKEN_AGE_S: Final = 60 * 60  # nuropb's default ttl: no request is taken once older
CLOCK_SKEW_S: Final = 60  # a sender's clock may be this far behind (Fernet allows as much ahead)
FRESH_ENTRIES: Final = 100_000  # wrapped keys remembered (about 20 MB at most)

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


def short_key(public_key: rsa.RSAPublicKey) -> str | None:
    """Why a key is too short to encrypt for, or None."""
    if public_key.key_size >= MIN_KEY_BITS:
        return None
    return (
        f"a {public_key.key_size}-bit RSA key is refused (keys under {MIN_KEY_BITS} bits are"
        " not encrypted for)"
    )


def wrap_key(fernet_key: bytes, public_key: rsa.RSAPublicKey) -> bytes:
    refused = short_key(public_key)
    if refused is not None:
        raise NuropbMessageError(refused)
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


def decrypt_request(
    wire: bytes, private_key: rsa.RSAPrivateKey, ttl_s: int | None = None
) -> tuple[bytes, bytes, bytes]:
    """Decrypt a request with the service's key; returns (body, Fernet key, wrapped key).
    ``ttl_s``: a token made longer ago than that (plus :data:`CLOCK_SKEW_S`) is refused.

    The wrapped key is reused for the response: it already is the key under the service's
    own public key, which is what nuropb puts in a response (the client ignores it).
    """
    wrapped, token = _split(wire)
    try:
        fernet_key = private_key.decrypt(base64.b64decode(wrapped, validate=True), _OAEP)
        fernet = Fernet(fernet_key)
        raw = base64.b64decode(token, validate=True)
        if ttl_s is None:
            return fernet.decrypt(raw), fernet_key, wrapped
        try:
            return fernet.decrypt(raw, ttl_s + CLOCK_SKEW_S), fernet_key, wrapped
        except InvalidToken:
            made = fernet.extract_timestamp(raw)  # InvalidToken again when it is no token
    except (InvalidToken, binascii.Error, ValueError) as exc:
        raise NuropbMessageError("encrypted body could not be decrypted") from exc
    age = int(time.time()) - made
    if age < 0:
        raise NuropbMessageError(
            f"encrypted request refused: its token was made {-age} s in the future (more than"
            f" {CLOCK_SKEW_S} s of clock skew)"
        )
    raise NuropbMessageError(
        f"encrypted request refused: its token was made {age} s ago, older than its ttl of"
        f" {ttl_s} s (give or take {CLOCK_SKEW_S} s of clock skew): replayed or held back"
    )


class FreshRequests:
    """A service's record of the encrypted requests it took, so that each is taken once.

    A token may be at most its message's ttl old (capped at :data:`MAX_TOKEN_AGE_S`, whatever
    ttl a copy claims), and the wrapped keys taken are remembered (a digest each) until a token
    made with them is too old anyway: a copy sent again is refused, unless the broker says it
    is the same message redelivered (a requeue, a lost channel). Past :data:`FRESH_ENTRIES`
    the oldest are let go and tokens as old as they are refused from then on, so memory stays
    bounded and no replay gets through. The record is per process: another instance of the
    same service did not see what this one took.
    """

    def __init__(self, max_entries: int = FRESH_ENTRIES) -> None:
        self._max = max_entries
        # digest of a wrapped key -> when its token was made (epoch seconds), oldest first
        self._taken: collections.OrderedDict[bytes, int] = collections.OrderedDict()
        self._floor = 0  # tokens made at or before this are refused (see above)

    def __len__(self) -> int:
        return len(self._taken)

    def take(
        self,
        wire: bytes,
        private_key: rsa.RSAPrivateKey,
        expiration: str | None,
        redelivered: bool,
    ) -> tuple[bytes, bytes, bytes]:
        """Decrypt a request (``expiration``: its AMQP expiration, in ms), refusing a copy of
        one taken already and a token too old; returns (body, Fernet key, wrapped key)."""
        wrapped, token = _split(wire)
        digest = hashlib.sha256(wrapped).digest()[:16]
        if digest in self._taken and not redelivered:
            raise NuropbMessageError(
                "encrypted request refused: a replay of one this service already took"
            )
        body, fernet_key, _ = decrypt_request(wire, private_key, _ttl_s(expiration))
        made = Fernet(fernet_key).extract_timestamp(base64.b64decode(token))
        if made <= self._floor:
            raise NuropbMessageError(
                "encrypted request refused: its token is older than the requests this service"
                " can still tell from a replay"
            )
        self._forget_old(int(time.time()))
        self._taken[digest] = made
        self._taken.move_to_end(digest)
        while len(self._taken) > self._max:
            _, evicted = self._taken.popitem(last=False)
            self._floor = max(self._floor, evicted)
        return body, fernet_key, wrapped

    def _forget_old(self, now: int) -> None:
        """Let go of the wrapped keys whose tokens would be refused as too old anyway."""
        limit = now - MAX_TOKEN_AGE_S - CLOCK_SKEW_S
        taken = self._taken
        while taken:
            digest, made = next(iter(taken.items()))
            if made >= limit:
                return
            del taken[digest]


def _ttl_s(expiration: str | None) -> int:
    """A message's ttl in whole seconds (its AMQP expiration is in ms), capped."""
    try:
        ttl_ms = int(expiration) if expiration else None
    except ValueError:
        ttl_ms = None
    if ttl_ms is None or ttl_ms <= 0:
        return MAX_TOKEN_AGE_S
    return min(math.ceil(ttl_ms / 1000), MAX_TOKEN_AGE_S)
