"""Known keys: per (mesh, service), the fingerprint of the public key trusted for encrypted
calls and the methods seen to require encryption.

As SSH's known_hosts: the first key seen for a service is pinned (trust on first use) and a
different one is not used until the user accepts it. As HSTS: a method once seen to require
encryption stays required. Kept in memory and, given a path, in a JSON file the user keeps
(``$NUROPB_LAB_KNOWN_KEYS``, default ``~/.config/nuropb-lab/known_keys.json``)::

    {"nuropb-lab known keys": 1,
     "keys": [{"mesh": "nuropb-demo", "service": "vault",
               "fingerprint": "<SHA-256 of the DER public key, hex>",
               "requires_encryption": ["read", "store"]}]}

A service seen without a key has ``"fingerprint": null``. It holds public fingerprints and
method names, never a key or a secret. A file that cannot be
read is one line of error and is never written over (nothing the user kept is lost); one that
cannot be written leaves the pins in memory, said once in the log.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

__all__ = ["ENV", "KnownKey", "KnownKeys", "KnownKeysError", "default_path", "parse_fingerprint"]

log = logging.getLogger(__name__)

ENV: Final = "NUROPB_LAB_KNOWN_KEYS"
FORMAT: Final = "nuropb-lab known keys"
MAX_ENTRIES: Final = 10_000  # services remembered; more are not pinned (so not trusted)
MAX_FILE_BYTES: Final = 8 * 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


class KnownKeysError(ValueError):
    """The known-keys file cannot be read or written, or a fingerprint is malformed."""


@dataclasses.dataclass(frozen=True)
class KnownKey:
    mesh: str
    service: str
    fingerprint: str | None  # None: seen without a key (or its key let go after a conflict)
    requires_encryption: frozenset[str] = frozenset()

    def as_json(self) -> dict[str, Any]:
        return {
            "mesh": self.mesh,
            "service": self.service,
            "fingerprint": self.fingerprint,
            "requires_encryption": sorted(self.requires_encryption),
        }


def default_path() -> Path:
    """``$NUROPB_LAB_KNOWN_KEYS``, else ``known_keys.json`` in the user's config directory."""
    explicit = os.environ.get(ENV)
    if explicit:
        return Path(explicit).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "nuropb-lab" / "known_keys.json"


def parse_fingerprint(text: object) -> str:
    """A SHA-256 fingerprint as the lab writes it (64 lower-case hex digits), from the forms a
    user may paste (``sha256:`` first, colons, upper case)."""
    if not isinstance(text, str):
        raise KnownKeysError(f"a fingerprint is a string of 64 hex digits, not {text!r}")
    cleaned = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if not _HEX64.fullmatch(cleaned):
        raise KnownKeysError(f"not a SHA-256 fingerprint (64 hex digits): {text[:80]!r}")
    return cleaned


def _entry(raw: object) -> KnownKey:
    if not isinstance(raw, dict):
        raise KnownKeysError(f"an entry is not an object: {str(raw)[:80]}")
    mesh, service = raw.get("mesh"), raw.get("service")
    if not isinstance(mesh, str) or not isinstance(service, str) or not mesh or not service:
        raise KnownKeysError(f"an entry has no mesh or service: {str(raw)[:80]}")
    fingerprint = raw.get("fingerprint")
    methods = raw.get("requires_encryption", [])
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise KnownKeysError(f"requires_encryption of {service} is not a list of names")
    return KnownKey(
        mesh,
        service,
        None if fingerprint is None else parse_fingerprint(fingerprint),
        frozenset(methods),
    )


class KnownKeys:
    """The known keys, in memory and (with a ``path``) in the user's file, read on first use.
    Shared by every API of a Lab; safe to use from any thread."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else None
        self._entries: dict[tuple[str, str], KnownKey] | None = None
        self._lock = threading.Lock()
        self._full_said = self._unwritable_said = False

    def __repr__(self) -> str:
        return f"<KnownKeys {self.path or '(in memory)'}>"

    def get(self, mesh: str, service: str) -> KnownKey | None:
        with self._lock:
            return self._loaded().get((mesh, service))

    def entries(self, mesh: str | None = None) -> list[KnownKey]:
        with self._lock:
            return [e for e in self._loaded().values() if mesh is None or e.mesh == mesh]

    def pin(self, mesh: str, service: str, fingerprint: str | None) -> bool:
        """Pin ``fingerprint`` for the service (replacing one pinned); None records it seen
        without a key (or lets its key go). False when the store is full and the service new
        to it (so it is not trusted)."""
        fingerprint = None if fingerprint is None else parse_fingerprint(fingerprint)
        with self._lock:
            entry = self._loaded().get((mesh, service))
            if entry is not None and entry.fingerprint == fingerprint:
                return True
            required = entry.requires_encryption if entry is not None else frozenset()
            return self._put(KnownKey(mesh, service, fingerprint, required))

    def require(self, mesh: str, service: str, methods: Iterable[str]) -> None:
        """Record methods seen to require encryption (added to those known, never removed)."""
        with self._lock:
            entry = self._loaded().get((mesh, service)) or KnownKey(mesh, service, None)
            required = entry.requires_encryption | frozenset(methods)
            if required != entry.requires_encryption:
                self._put(dataclasses.replace(entry, requires_encryption=required))

    # --- the file -----------------------------------------------------------------------------

    def _loaded(self) -> dict[tuple[str, str], KnownKey]:
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _read(self) -> dict[tuple[str, str], KnownKey]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            size = self.path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise KnownKeysError(f"{size:,} bytes, over the limit of {MAX_FILE_BYTES:,}")
            data = json.loads(self.path.read_bytes())
            if not isinstance(data, dict) or data.get(FORMAT) != 1:
                raise KnownKeysError(f"not a known-keys file (no {FORMAT!r}: 1)")
            entries = [_entry(raw) for raw in data.get("keys", [])][:MAX_ENTRIES]
        except (OSError, ValueError) as exc:
            raise KnownKeysError(
                f"known-keys file {self.path} cannot be read ({exc}); fix or move it"
                f" (${ENV} names another)"
            ) from None
        return {(e.mesh, e.service): e for e in entries}

    def _put(self, entry: KnownKey) -> bool:
        entries = self._loaded()
        key = (entry.mesh, entry.service)
        if key not in entries and len(entries) >= MAX_ENTRIES:
            if not self._full_said:
                self._full_said = True
                log.warning("known keys: %d services kept, no more are pinned", MAX_ENTRIES)
            return False
        entries[key] = entry
        if self.path is not None:
            self._write(entry)
        return True

    def _write(self, entry: KnownKey) -> None:
        """Write ``entry`` into the file as it is now (another Lab may have added to it)."""
        assert self.path is not None
        on_disk = self._read()
        on_disk[(entry.mesh, entry.service)] = entry
        data = {FORMAT: 1, "keys": [e.as_json() for e in on_disk.values()]}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # only the user may change what the user trusts
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1)
                out.write("\n")
            os.replace(temporary, self.path)
        except OSError as exc:  # still pinned in memory, for this Lab's life
            if not self._unwritable_said:
                self._unwritable_said = True
                log.warning(
                    "known keys kept in memory only: %s cannot be written: %s", self.path, exc
                )
