"""What the API has learnt of other services: their ``nuropb_describe`` answers and the public
keys those carry (encrypted calls need the key; a decryption error makes it be asked again)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import rsa

from . import crypto
from .errors import NuropbMessageError

__all__ = ["DESCRIBE_TTL_MS", "Descriptions"]

DESCRIBE_TTL_MS: Final = 60 * 1000


class Descriptions:
    """Descriptions and keys per service name, asked through ``ask(service, ttl_ms)`` (a
    ``nuropb_describe`` request) and cached until refreshed or forgotten."""

    def __init__(self, ask: Callable[[str, int], Awaitable[Any]]) -> None:
        self._ask = ask
        self._cache: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, rsa.RSAPublicKey] = {}

    async def describe(
        self, service: str, refresh: bool = False, ttl: int | None = None
    ) -> dict[str, Any]:
        """The service's description, cached; ``refresh`` asks the service again."""
        if not refresh:
            cached = self._cache.get(service)
            if cached is not None:
                return cached
        info = await self._ask(service, ttl or DESCRIBE_TTL_MS)
        if not isinstance(info, dict) or not isinstance(info.get("methods", {}), dict):
            raise NuropbMessageError(
                f"{service} answered nuropb_describe with an invalid description"
            )
        pem = info.get("public_key")
        if pem:
            self._keys[service] = crypto.load_public_pem(pem)
        else:
            self._keys.pop(service, None)
        self._cache[service] = info
        return info

    def cached(self, service: str) -> dict[str, Any] | None:
        return self._cache.get(service)

    def key(self, service: str) -> rsa.RSAPublicKey | None:
        return self._keys.get(service)

    def forget(self, service: str) -> None:
        """Drop what is known (the service may have a new key): the next use describes it."""
        self._cache.pop(service, None)
        self._keys.pop(service, None)

    async def service_key(self, service: str) -> rsa.RSAPublicKey:
        """The service's public key, described afresh when not known; NuropbMessageError when
        the service publishes none."""
        key = self._keys.get(service)
        if key is None:
            await self.describe(service, refresh=True)
            key = self._keys.get(service)
        if key is None:
            raise NuropbMessageError(
                f"{service} publishes no public key: it cannot take encrypted calls"
            )
        return key
