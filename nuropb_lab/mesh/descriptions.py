"""What the API has learnt of other services: their ``nuropb_describe`` answers, checked, the
public keys those carry, pinned, and whether a call must be encrypted.

A describe is a request the RPC exchange routes by the service's name, so any peer that binds a
queue of its own with that routing key gets it too and may answer. Hence:

- **Gathered answers.** Every answer that comes within a window after the first is read
  (:data:`FIRST_WINDOW_S` for a service never seen or a first key, none when a key is pinned
  or the service is known without one; later ones, until the describe's ttl, are still
  compared). Answers that disagree on the key or on
  which methods require encryption are a conflict: refused, and no key of that service is used
  until the user trusts one. Answers over :data:`MAX_DESCRIBE_BYTES` are refused.
- **Pinned keys** (known_keys.py): the first key seen for a (mesh, service) is pinned (trust on
  first use); a key under 2048 bits, a different one or one in conflict is not used for
  encrypted calls until the user accepts it (:meth:`Descriptions.trust`).
- **Requirements never lowered**: a method once seen to require encryption stays required,
  whatever a later describe says (HSTS).
- **Failing closed** (:meth:`Descriptions.decide`): when it cannot be told whether a method
  requires encryption (the service did not describe itself), a call is encrypted with the
  service's trusted key, or refused without one unless plaintext is asked for.

Nothing an unauthenticated answer says (an error's text) makes a key forgotten.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import rsa

from . import codec, crypto
from .errors import NuropbException, NuropbMessageError, remote_error
from .known_keys import KnownKeys, parse_fingerprint
from .responses import Answer

__all__ = [
    "DESCRIBE_TTL_MS",
    "FIRST_WINDOW_S",
    "MAX_DESCRIBE_BYTES",
    "DescribeConflict",
    "Descriptions",
    "EncryptionRefused",
    "KeyStatus",
]

log = logging.getLogger(__name__)

DESCRIBE_TTL_MS: Final = 60 * 1000
MAX_DESCRIBE_BYTES: Final = 256 * 1024
CACHE_BYTES: Final = 16 * 1024 * 1024  # descriptions kept, all services together
MAX_SERVICES: Final = 10_000  # services whose keys are remembered
FIRST_WINDOW_S: Final = 0.5  # nothing pinned yet: wait this long for a second answerer
QUEUES_SHOWN: Final = 8

#: ``gather(service, ttl_ms, window(first answer) -> s, on_late)``: the answers to one describe
Gather = Callable[
    [str, int, Callable[[Answer], float], Callable[[Answer], None]], Awaitable[list[Answer]]
]


class EncryptionRefused(NuropbMessageError):
    """A call not sent: it cannot be encrypted for a trusted key, or plaintext is refused."""


class DescribeConflict(EncryptionRefused):
    """Answers to one ``nuropb_describe`` disagree on the key or the encryption required."""


def _short(fingerprint: str | None) -> str:
    return f"sha256:{fingerprint[:16]}…" if fingerprint else "no key"


@dataclasses.dataclass(frozen=True)
class _Claim:
    """What one answer to a describe says: a description (with its key) or an error."""

    error: NuropbException | None = None
    info: dict[str, Any] | None = None
    key: rsa.RSAPublicKey | None = None
    fingerprint: str | None = None
    unreadable: str | None = None  # the public key it carries cannot be read
    required: frozenset[str] = frozenset()

    @classmethod
    def of(cls, service: str, answer: Answer) -> _Claim:
        if isinstance(answer, NuropbException):
            return cls(error=answer)
        if answer.get("error") is not None:
            return cls(error=remote_error(answer["error"], answer))
        info = answer.get("result")
        methods = info.get("methods", {}) if isinstance(info, dict) else None
        if not isinstance(info, dict) or not isinstance(methods, dict):
            error = NuropbMessageError(f"{service} answered nuropb_describe with no description")
            return cls(error=error)
        required = frozenset(
            m
            for m, spec in methods.items()
            if isinstance(spec, dict) and spec.get("requires_encryption")
        )
        pem = info.get("public_key")
        if not pem:
            return cls(info=info, required=required)
        try:
            if not isinstance(pem, str):
                raise NuropbMessageError("public key is not a PEM text")
            key = crypto.load_public_pem(pem)
        except NuropbMessageError as exc:
            return cls(info=info, unreadable=str(exc), required=required)
        return cls(info=info, key=key, fingerprint=crypto.fingerprint(key), required=required)

    @property
    def says(self) -> tuple[str, ...]:
        """What answers must agree on."""
        if self.error is not None:
            return ("error", type(self.error).__name__)
        return ("key", self.fingerprint or self.unreadable or "", *sorted(self.required))

    def text(self) -> str:
        if self.error is not None:
            name = getattr(self.error, "remote_name", None) or type(self.error).__name__
            return f"an error ({name})"
        key = "unreadable key" if self.unreadable else _short(self.fingerprint)
        needs = ", ".join(sorted(self.required))
        verb = "requires" if len(self.required) == 1 else "require"
        return f"{key} ({f'{needs} {verb}' if needs else 'nothing requires'} encryption)"


@dataclasses.dataclass
class _Seen:
    """A service as its last describes showed it."""

    key: rsa.RSAPublicKey | None = None  # the key its last accepted describe carried
    fingerprint: str | None = None
    unreadable: str | None = None
    # the last key it showed that was the pinned one: a describe answered with another key
    # (by a peer) does not take it away from encrypted calls
    pinned_key: rsa.RSAPublicKey | None = None
    pinned_fingerprint: str | None = None
    described: bool = False  # an answer was accepted (with or without a key)
    conflict: str | None = None  # answers disagreed (said until the user trusts a key)
    blocked: bool = False  # ... when no key was pinned: then none is used until one is trusted
    failure: str | None = None  # why the last describe failed


@dataclasses.dataclass(frozen=True)
class KeyStatus:
    """A service's key as the lab sees it (``lab.keys()``)."""

    fingerprint: str | None  # of the key its last describe carried
    key_size: int | None
    pinned: str | None  # the fingerprint pinned for it
    requires_encryption: frozenset[str]  # the methods seen to require it, ever
    problem: str | None  # why its key is not used for encrypted calls


class Descriptions:
    """Descriptions and keys per service name on one mesh, asked through ``gather`` (a
    ``nuropb_describe`` request's answers), checked against ``known`` (shared by the APIs of a
    Lab) and cached until refreshed. ``bound_queues(service)``, when set, names the queues
    bound with a service's routing key in a conflict (the management API knows them)."""

    def __init__(self, gather: Gather, mesh: str, known: KnownKeys) -> None:
        self._gather = gather
        self.mesh = mesh
        self.known = known
        self.bound_queues: Callable[[str], Awaitable[list[str]]] | None = None
        # service -> (description, its size); least recently used first
        self._cache: collections.OrderedDict[str, tuple[dict[str, Any], int]] = (
            collections.OrderedDict()
        )
        self._cache_bytes = 0
        self._seen: collections.OrderedDict[str, _Seen] = collections.OrderedDict()

    # --- describing -----------------------------------------------------------------------

    async def describe(
        self, service: str, refresh: bool = False, ttl: int | None = None
    ) -> dict[str, Any]:
        """The service's description, cached; ``refresh`` asks the service again."""
        if not refresh:
            cached = self.cached(service)
            if cached is not None:
                return cached
        seen = self._seen_of(service)
        try:
            info = await self._ask(service, ttl or DESCRIBE_TTL_MS, seen)
        except NuropbException as exc:
            name = getattr(exc, "remote_name", None) or type(exc).__name__
            seen.failure = f"{name}: {exc}"
            raise
        seen.failure = None
        return info

    async def _ask(self, service: str, ttl: int, seen: _Seen) -> dict[str, Any]:
        pinned = self.known.get(self.mesh, service)
        accepted: list[_Claim] = []
        pinned_now: list[str] = []  # a key pinned by this describe, on first use

        def window(first: Answer) -> float:
            if pinned is not None and pinned.fingerprint is not None:
                return 0.0  # a different key is refused anyway
            if pinned is not None and _Claim.of(service, first).fingerprint is None:
                return 0.0  # known without a key, still none to trust; requirements are kept
            return FIRST_WINDOW_S  # a first key, or a service never seen

        def late(answer: Answer) -> None:
            claim = _Claim.of(service, answer)
            self.known.require(self.mesh, service, claim.required)
            if accepted and claim.says != accepted[0].says:
                self._conflict(service, [accepted[0], claim], "late", pinned_now)

        claims = [_Claim.of(service, a) for a in await self._gather(service, ttl, window, late)]
        self.known.require(self.mesh, service, set().union(*(c.required for c in claims)))
        if len({c.says for c in claims}) > 1:
            text = self._conflict(service, claims, "", []) + await self._queues(service)
            seen.conflict = text
            raise DescribeConflict(text)
        claim = claims[0]
        if claim.error is not None:
            raise claim.error
        assert claim.info is not None
        accepted.append(claim)
        seen.key, seen.fingerprint, seen.unreadable = claim.key, claim.fingerprint, claim.unreadable
        seen.described = True
        if claim.key is None or crypto.short_key(claim.key) is not None:
            if pinned is None:
                self.known.pin(self.mesh, service, None)  # seen, without a key to trust
        elif pinned is None or pinned.fingerprint is None:
            if self.known.pin(self.mesh, service, claim.fingerprint):  # trust on first use
                assert claim.fingerprint is not None
                pinned_now.append(claim.fingerprint)
        entry = self.known.get(self.mesh, service)
        if claim.key is not None and entry is not None and entry.fingerprint == claim.fingerprint:
            seen.pinned_key, seen.pinned_fingerprint = claim.key, claim.fingerprint
        info = self._with_requirements(service, claim.info)
        self._keep(service, info)
        return info

    def _conflict(
        self, service: str, claims: list[_Claim], when: str, pinned_now: list[str]
    ) -> str:
        """Record answers that disagree. With a key pinned before, that key is still the only
        one used (the conflict is said); without, a key pinned on first use by that describe
        is let go, and none is used until the user trusts one."""
        for fingerprint in pinned_now:
            entry = self.known.get(self.mesh, service)
            if entry is not None and entry.fingerprint == fingerprint:
                self.known.pin(self.mesh, service, None)
        entry = self.known.get(self.mesh, service)
        blocked = entry is None or entry.fingerprint is None
        said = "; ".join(dict.fromkeys(c.text() for c in claims))
        text = (
            f"describe conflict: {'a late answer to' if when else 'the answers to'} one"
            f" nuropb_describe of {service} disagree ({said}): "
            + (
                f"no key of {service} is used until one is trusted"
                f" (lab.trust({service!r}, FINGERPRINT))"
                if blocked
                else f"only the pinned key {_short(entry.fingerprint if entry else None)} is used"
            )
        )
        seen = self._seen_of(service)
        seen.conflict, seen.blocked = text, blocked
        self.forget(service)
        log.warning("%s", text)
        return text

    async def _queues(self, service: str) -> str:
        """The queues bound with the service's routing key, when they can be named."""
        if self.bound_queues is None:
            return ""
        try:
            queues = await self.bound_queues(service)
        except Exception as exc:  # naming them is a courtesy; the refusal stands without
            log.debug("could not name the queues bound for %s: %s", service, exc)
            return ""
        shown = ", ".join(queues[:QUEUES_SHOWN]) + (", ..." if len(queues) > QUEUES_SHOWN else "")
        return f"; queues bound with routing key {service!r}: {shown or 'none'}"

    def _with_requirements(self, service: str, info: dict[str, Any]) -> dict[str, Any]:
        """The description with every method once seen to require encryption marked so."""
        entry = self.known.get(self.mesh, service)
        required = entry.requires_encryption if entry is not None else frozenset()
        methods = info.get("methods") or {}
        lowered = sorted(
            m
            for m in required & set(methods)
            if not (isinstance(methods[m], dict) and methods[m].get("requires_encryption"))
        )
        if not lowered:
            return info
        info = {**info, "methods": dict(methods), "encrypted_methods": True}
        for name in lowered:
            spec = methods[name] if isinstance(methods[name], dict) else {}
            info["methods"][name] = {**spec, "requires_encryption": True}
        warnings = info.get("warnings")
        info["warnings"] = [
            *(warnings if isinstance(warnings, list) else []),
            f"{', '.join(lowered)}: seen to require encryption before, described now as not;"
            " still encrypted",
        ]
        return info

    def _keep(self, service: str, info: dict[str, Any]) -> None:
        """Cache a description, within :data:`CACHE_BYTES` for all (least recent go first)."""
        self.forget(service)
        size = len(codec.encode_json(info))
        self._cache[service] = (info, size)
        self._cache_bytes += size
        while self._cache_bytes > CACHE_BYTES and len(self._cache) > 1:
            _, (_, dropped) = self._cache.popitem(last=False)
            self._cache_bytes -= dropped

    def _seen_of(self, service: str) -> _Seen:
        seen = self._seen.get(service)
        if seen is None:
            seen = self._seen[service] = _Seen()
            if len(self._seen) > MAX_SERVICES:
                self._seen.popitem(last=False)
        self._seen.move_to_end(service)
        return seen

    def cached(self, service: str) -> dict[str, Any] | None:
        kept = self._cache.get(service)
        if kept is None:
            return None
        self._cache.move_to_end(service)
        return kept[0]

    def forget(self, service: str) -> None:
        """Drop the cached description (the next use describes it); what is known of its key
        stays."""
        kept = self._cache.pop(service, None)
        if kept is not None:
            self._cache_bytes -= kept[1]

    # --- keys -----------------------------------------------------------------------------

    def key(self, service: str) -> rsa.RSAPublicKey | None:
        """The service's key, when it may be encrypted for: the pinned one (as its describe
        showed it now or before), of 2048 bits or more, not in a conflict without a pin."""
        seen = self._seen.get(service)
        if seen is None or seen.blocked:
            return None
        entry = self.known.get(self.mesh, service)
        pinned = entry.fingerprint if entry is not None else None
        if pinned is None:
            return None
        for key, fingerprint in (
            (seen.key, seen.fingerprint),
            (seen.pinned_key, seen.pinned_fingerprint),
        ):
            if key is not None and fingerprint == pinned and crypto.short_key(key) is None:
                return key
        return None

    def problem(self, service: str) -> str | None:
        """Why the service's key is not used for encrypted calls, or a conflict seen (None
        when neither)."""
        seen = self._seen.get(service)
        entry = self.known.get(self.mesh, service)
        pinned = entry.fingerprint if entry is not None else None
        if seen is not None and seen.conflict is not None:
            return seen.conflict
        if seen is None or not seen.described:
            failure = f" ({seen.failure})" if seen is not None and seen.failure else ""
            return f"{service} did not describe itself{failure}"
        if seen.unreadable is not None:
            return f"{service}'s public key is unreadable: {seen.unreadable}"
        if seen.key is None:
            was = f" ({_short(pinned)} is pinned for it)" if pinned else ""
            return f"{service} publishes no public key{was}"
        short = crypto.short_key(seen.key)
        if short is not None:
            return f"{service}'s key: {short}"
        if pinned is None:
            return f"{service}'s key could not be pinned (the known keys are full)"
        if pinned != seen.fingerprint:
            return (
                f"{service}'s key is not the one pinned: pinned {_short(pinned)}, seen"
                f" {_short(seen.fingerprint)}; lab.trust({service!r}, {seen.fingerprint!r})"
                " accepts it"
            )
        return None

    def status(self, service: str) -> KeyStatus:
        seen = self._seen.get(service) or _Seen()
        entry = self.known.get(self.mesh, service)
        return KeyStatus(
            fingerprint=seen.fingerprint,
            key_size=seen.key.key_size if seen.key is not None else None,
            pinned=entry.fingerprint if entry is not None else None,
            requires_encryption=entry.requires_encryption if entry is not None else frozenset(),
            # a service that shows no key and has none pinned has nothing wrong with its key
            problem=self.problem(service)
            if seen.conflict or seen.key or seen.unreadable or (entry and entry.fingerprint)
            else None,
        )

    async def service_key(self, service: str) -> rsa.RSAPublicKey:
        """The service's trusted key, described afresh when there is none; EncryptionRefused
        (saying why) when it has none that may be used."""
        key = self.key(service)
        if key is None:
            await self.describe(service, refresh=True)
            key = self.key(service)
        if key is None:
            raise EncryptionRefused(self.problem(service) or f"{service} has no trusted key")
        return key

    def trust(self, service: str, fingerprint: str) -> None:
        """Accept the key of that fingerprint for the service (pinned in place of any other),
        ending a conflict: the user has checked it."""
        fingerprint = parse_fingerprint(fingerprint)
        if not self.known.pin(self.mesh, service, fingerprint):
            raise EncryptionRefused(f"cannot pin a key for {service}: the known keys are full")
        seen = self._seen.get(service)
        if seen is not None:
            seen.conflict, seen.blocked, seen.failure = None, False, None
            if seen.key is not None and seen.fingerprint == fingerprint:
                seen.pinned_key, seen.pinned_fingerprint = seen.key, fingerprint

    # --- encryption required? ---------------------------------------------------------------

    def requires(self, service: str, method: str) -> bool | None:
        """Whether a method requires encryption: seen so ever, or as its cached description
        says; None when that cannot be told."""
        entry = self.known.get(self.mesh, service)
        if entry is not None and method in entry.requires_encryption:
            return True
        spec = ((self.cached(service) or {}).get("methods") or {}).get(method)
        if not isinstance(spec, dict):
            return None
        return bool(spec.get("requires_encryption"))

    def decide(self, service: str, method: str, asked: bool | None) -> tuple[bool, str | None]:
        """Whether a call is encrypted, and a note when that was not the method's own say:
        ``asked`` True encrypts, False sends in plaintext (refused for a method that requires
        encryption), None follows the method. A method whose requirement cannot be told is
        encrypted when the service has a trusted key, else refused (EncryptionRefused)."""
        need = self.requires(service, method)
        seen = self._seen.get(service)
        if asked is True:
            return True, None
        if asked is False:
            if need:
                raise EncryptionRefused(
                    f"{service}.{method} requires encryption; a plaintext call is refused"
                )
            if need is None:
                return False, f"sent in plaintext as asked ({self._unknown(service, method)})"
            return False, None
        if need is None:
            if self.key(service) is not None:
                why = self._unknown(service, method)
                return True, f"encrypted with {service}'s pinned key ({why})"
            if seen is not None and seen.described and seen.key is None and not seen.blocked:
                return False, None  # a service without a key takes no encrypted call
            problem = self.problem(service) if seen is not None and seen.described else None
            trusted = f"no key of it is trusted ({problem})" if problem else "no key of it is known"
            raise EncryptionRefused(
                f"not sent: {self._unknown(service, method)}, and {trusted}; encrypt=False"
                " (--plain) sends it in plaintext"
            )
        if need and self.key(service) is None:
            raise EncryptionRefused(
                f"{service}.{method} requires encryption, but {self.problem(service)}"
            )
        return need, None

    def _unknown(self, service: str, method: str) -> str:
        seen = self._seen.get(service)
        if seen is not None and seen.failure and self.cached(service) is None:
            why = f"its describe failed: {seen.failure}"
        elif self.cached(service) is not None:
            why = f"{service} does not list {method}"
        else:
            why = f"{service} has not described itself"
        return f"whether {service}.{method} requires encryption is not known: {why}"
