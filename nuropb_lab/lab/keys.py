"""Encryption status per service: key, fingerprint, size, encrypted methods, calls, warnings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ..mesh import crypto
from ..mesh.errors import NuropbMessageError
from .history import CallRecord

__all__ = ["KEY_COLUMNS", "key_row", "keys_frame"]

KEY_COLUMNS = [
    "service",
    "public_key",
    "fingerprint",
    "key_size",
    "encrypted_methods",
    "encrypted_calls",
    "encrypted_failed",
    "warnings",
]


def key_row(
    service: str,
    description: Mapping[str, Any] | None,
    calls: Iterable[CallRecord],
    previous_fingerprint: str | None = None,
) -> dict[str, Any]:
    """One service's encryption status. ``previous_fingerprint`` flags a changed key."""
    description = description or {}
    methods = description.get("methods") or {}
    needs = sorted(m for m, spec in methods.items() if (spec or {}).get("requires_encryption"))
    warnings = [str(w) for w in description.get("warnings") or []]
    fingerprint = key_size = None
    pem = description.get("public_key")
    if pem:
        try:
            key = crypto.load_public_pem(pem)
            fingerprint, key_size = crypto.fingerprint(key), key.key_size
        except NuropbMessageError as exc:
            warnings.append(f"public key unreadable: {exc}")
    if needs and not pem:
        warnings.append("encrypted methods but no public key")
    if previous_fingerprint and fingerprint and previous_fingerprint != fingerprint:
        warnings.append(f"key changed since the last describe (was {previous_fingerprint[:16]}…)")
    encrypted = [c for c in calls if c.service == service and c.encrypted]
    return {
        "service": service,
        "public_key": bool(pem),
        "fingerprint": fingerprint,
        "key_size": key_size,
        "encrypted_methods": needs,
        "encrypted_calls": len(encrypted),
        "encrypted_failed": sum(not c.ok for c in encrypted),
        "warnings": warnings,
    }


def keys_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=KEY_COLUMNS)
