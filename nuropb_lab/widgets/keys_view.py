"""The encryption inspector: per service, key, the fingerprints seen and pinned, size, encrypted
methods, warnings."""

from __future__ import annotations

import concurrent.futures
import html
from typing import Any, cast

import ipywidgets as w
import pandas as pd

from ..lab import Lab
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
        self.table = w.HTML("<i>describing…</i>")
        self.refresh_button.on_click(lambda _b: self.refresh())
        super().__init__([w.HBox([w.HTML("<b>encryption</b>"), self.refresh_button]), self.table])
        self.refresh()

    def refresh(self) -> concurrent.futures.Future[pd.DataFrame]:
        """Describe the services again (returns at once)."""
        self.pending = self.lab.start_keys(self.service, alias=self.alias)
        self.pending.add_done_callback(self._on_done)
        return self.pending

    def _on_done(self, future: concurrent.futures.Future[pd.DataFrame]) -> None:
        # Runs in the Lab loop thread: only set trait values here.
        try:
            self.rows = cast(list[dict[str, Any]], future.result().to_dict("records"))
        except BaseException as exc:
            self.table.value = error_html(type(exc).__name__, str(exc))
            return
        body = "".join(
            f"<tr>{''.join(f'<td>{c}</td>' for c in self._cells(r))}</tr>" for r in self.rows
        )
        header = "".join(f"<th>{h}</th>" for h in HEADERS)
        self.table.value = f"<table><tr>{header}</tr>{body}</table>"

    @staticmethod
    def _cells(row: dict[str, Any]) -> list[str]:
        warnings = "".join(
            f"<div style='color:#b00020'>⚠ {html.escape(str(x))}</div>" for x in row["warnings"]
        )
        # a DataFrame row holds NaN (a float) where the service has no key, not None
        fingerprint = row["fingerprint"] if isinstance(row["fingerprint"], str) else ""
        pinned = row["pinned"] if isinstance(row["pinned"], str) else ""
        same = "=" if pinned and pinned == fingerprint else html.escape(pinned[:23])
        bits = row["key_size"]
        return [
            html.escape(str(row["service"])),
            "🔑" if row["public_key"] else "—",
            f"<code>{html.escape(fingerprint[:23])}</code>",
            f"<code>{same}</code>",
            str(int(bits)) if isinstance(bits, (int, float)) and bits == bits else "",
            html.escape(", ".join(row["encrypted_methods"])),
            f"{row['encrypted_calls']} / {row['encrypted_failed']}",
            warnings,
        ]

    @property
    def warnings(self) -> dict[str, list[str]]:
        return {str(r["service"]): list(r["warnings"]) for r in self.rows}
