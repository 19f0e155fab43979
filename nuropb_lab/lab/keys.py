"""Encryption status per service: the key seen and the key pinned, size, encrypted methods,
calls, and warnings (a conflict, a changed or short key, encrypted methods without a key)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ..mesh.descriptions import KeyStatus
from .history import CallRecord

__all__ = ["KEY_COLUMNS", "key_row", "keys_frame"]

KEY_COLUMNS = [
    "service",
    "public_key",
    "fingerprint",
    "pinned",
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
    status: KeyStatus,
    error: str | None = None,
) -> dict[str, Any]:
    """One service's encryption status: ``status`` is what the API knows of its key,
    ``error`` why it gave no description now."""
    description = description or {}
    methods = description.get("methods") or {}
    described = {m for m, spec in methods.items() if (spec or {}).get("requires_encryption")}
    needs = sorted(described | status.requires_encryption)
    warnings = [f"no description: {error}"] if error else []
    warnings += [str(w) for w in description.get("warnings") or []]
    if status.problem is not None and not any(status.problem in w for w in warnings):
        warnings.append(status.problem)
    elif needs and not status.fingerprint:
        warnings.append("encrypted methods but no public key")
    encrypted = [c for c in calls if c.service == service and c.encrypted]
    return {
        "service": service,
        "public_key": bool(status.fingerprint),
        "fingerprint": status.fingerprint,
        "pinned": status.pinned,
        "key_size": status.key_size,
        "encrypted_methods": needs,
        "encrypted_calls": len(encrypted),
        "encrypted_failed": sum(not c.ok for c in encrypted),
        "warnings": warnings,
    }


def keys_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=KEY_COLUMNS)
