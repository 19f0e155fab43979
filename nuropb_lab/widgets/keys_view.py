"""The encryption inspector: per service, key, the fingerprints seen and pinned, size, encrypted
methods, warnings."""

from __future__ import annotations

import concurrent.futures
from typing import Any, cast

import ipywidgets as w
import pandas as pd

from ..lab import Lab
from ..lab.markup import join, tag
from .render import error_html

__all__ = ["KeysView"]

HEADERS = (
    "service",
    "key",
    "fingerprint (SHA-256)",
    "pinned",
    "bits",
    "methods needing encryption",
    "encrypted calls / failed",
    "warnings",
)


class KeysView(w.VBox):
    """Encryption status, with warnings: a describe conflict; a key that is not the pinned one
    or is under 2048 bits; encrypted methods but no key. Refreshes (describing again) on its
    button."""

    def __init__(self, lab: Lab, service: str | None = None, alias: str | None = None) -> None:
        self.lab = lab
        self.service = service
        self.alias = alias
        self.rows: list[dict[str, Any]] = []
        self.pending: concurrent.futures.Future[pd.DataFrame] | None = None
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.table = w.HTML(tag("i", "describing…"))
        self.refresh_button.on_click(lambda _b: self.refresh())
        title = w.HTML(tag("b", "encryption"))
        super().__init__([w.HBox([title, self.refresh_button]), self.table])
        self.refresh()

    def refresh(self) -> concurrent.futures.Future[pd.DataFrame]:
        """Describe the services again (returns at once)."""
        self.pending = self.lab.start_keys(self.service, alias=self.alias)
        self.pending.add_done_callback(self._on_done)
        return self.pending

    def _on_done(self, future: concurrent.futures.Future[pd.DataFrame]) -> None:
        # Runs in the Lab loop thread: only set trait values here.
        try:
            rows = cast(list[dict[str, Any]], future.result().to_dict("records"))
        except BaseException as exc:
            self.table.value = error_html(type(exc).__name__, str(exc))
            return
        self.table.value = tag(
            "table",
            tag("tr", *(tag("th", h) for h in HEADERS)),
            *(tag("tr", *(tag("td", c) for c in self._cells(r))) for r in rows),
        )
        self.rows = rows  # last: who sees the rows sees them drawn

    @staticmethod
    def _cells(row: dict[str, Any]) -> list[object]:
        warnings = join(tag("div", f"⚠ {x}", style="color:#b00020") for x in row["warnings"])
        # a DataFrame row holds NaN (a float) where the service has no key, not None
        fingerprint = row["fingerprint"] if isinstance(row["fingerprint"], str) else ""
        pinned = row["pinned"] if isinstance(row["pinned"], str) else ""
        same = "=" if pinned and pinned == fingerprint else pinned[:23]
        bits = row["key_size"]
        return [
            row["service"],
            "🔑" if row["public_key"] else "—",
            tag("code", fingerprint[:23]),
            tag("code", same),
            str(int(bits)) if isinstance(bits, (int, float)) and bits == bits else "",
            ", ".join(row["encrypted_methods"]),
            f"{row['encrypted_calls']} / {row['encrypted_failed']}",
            warnings,
        ]

    @property
    def warnings(self) -> dict[str, list[str]]:
        return {str(r["service"]): list(r["warnings"]) for r in self.rows}
