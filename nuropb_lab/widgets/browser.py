"""The service browser: the mesh's services, refreshed on their own; pick one, pick a method,
call it through a generated form."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Iterator
from typing import Any

import ipywidgets as w

from ..lab import Lab, ServiceInfo
from ..lab.markup import join, tag
from .call_form import CallForm
from .live import Live, idle_timeout_of
from .render import error_html

__all__ = ["ServiceBrowser"]


def service_label(info: ServiceInfo) -> str:
    parts = [info.service, f"{info.instances if info.instances is not None else '?'} inst"]
    if info.encrypted:
        parts.append("🔒")
    if info.version:
        parts.append(f"v{info.version}")
    if info.placement is not None and info.placement.down:
        parts.append("queue down")
    if info.error:
        parts.append("⚠")
    return "  ·  ".join(parts)


class ServiceBrowser(w.VBox):
    """Services of the mesh (instances, encrypted badge, version), refreshed every
    ``refresh_interval`` seconds and by the button; a service that appears or goes away shows
    up or leaves on its own. It stops refreshing after ``idle_timeout`` s without interaction
    (default: the Lab's ``live_idle_timeout``) until Resume."""

    def __init__(
        self,
        lab: Lab,
        alias: str | None = None,
        refresh_interval: float = 5.0,
        idle_timeout: float | None = None,
    ) -> None:
        self.lab = lab
        self.alias = lab.connection(alias).alias
        self.refresh_interval = refresh_interval
        self.infos: dict[str, ServiceInfo] = {}
        self.form: CallForm | None = None
        self.refreshes = 0
        self._updating = False
        self.live = Live(
            lab.runner, idle_timeout_of(lab, idle_timeout), key=("browser", id(lab), self.alias)
        )
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.summary = w.HTML(tag("i", "discovering…"))
        self.services = w.Select(options=[], value=None, rows=10, layout=w.Layout(width="340px"))
        self.detail = w.HTML()
        self.methods = w.Select(options=[], value=None, rows=6, layout=w.Layout(width="340px"))
        self.form_box = w.VBox()
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.services.observe(self._on_service, names="value")
        self.methods.observe(self._on_method, names="value")
        self.live.watch(self.refresh_button)
        super().__init__(
            [
                self.live.bar,
                w.HBox(
                    [
                        w.HTML(join([tag("b", "nuropb mesh"), " ", self.alias])),
                        self.refresh_button,
                        self.summary,
                    ]
                ),
                w.HBox(
                    [
                        w.VBox([w.HTML("services"), self.services]),
                        w.VBox([self.detail, w.HTML("methods"), self.methods]),
                    ]
                ),
                self.form_box,
            ]
        )
        self.live.every(refresh_interval, self._refresh, at_once=True)

    # --- refreshing (in the Lab loop) -------------------------------------------------------

    def refresh(self) -> concurrent.futures.Future[None]:
        """Discover again now (returns at once)."""
        return self.lab.runner.submit(self._refresh())

    async def _refresh(self) -> None:
        try:
            await self.lab.aservices(self.alias)
        except Exception as exc:
            self.summary.value = error_html(type(exc).__name__, str(exc))
            return
        self._apply(self.lab.cached_services(self.alias))

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Programmatic changes must not act like a user's pick."""
        self._updating = True
        try:
            yield
        finally:
            self._updating = False

    def _apply(self, infos: dict[str, ServiceInfo]) -> None:
        # Only trait values are set here (this runs in the loop thread).
        self.infos = infos
        self.refreshes += 1
        selected = self.services.value
        with self._quiet():
            self.services.options = [(service_label(i), name) for name, i in sorted(infos.items())]
            self.services.value = selected if selected in infos else None
        if selected in infos:
            self._show_detail(infos[selected])
        elif selected is not None:
            self._clear()
        # no clock here: a view whose data did not change sends nothing
        self.summary.value = f"{len(infos)} services"

    # --- picking (in the kernel thread, on user action) ---------------------------------------

    def _on_service(self, change: dict[str, Any]) -> None:
        if self._updating:
            return
        self.live.touch()
        info = self.infos.get(change["new"])
        if info is None:
            self._clear()
            return
        self._show_detail(info)
        with self._quiet():
            self.methods.options = info.methods
            self.methods.value = None
        self.form_box.children = ()
        self.form = None

    def _show_detail(self, info: ServiceInfo) -> None:
        rows = [
            ("description", info.summary or ""),
            ("version", info.version or ""),
            ("instances", "" if info.instances is None else str(info.instances)),
            ("queued", "" if info.queued is None else str(info.queued)),
            ("encrypted methods", "yes" if info.encrypted else "no"),
        ]
        placement = info.placement
        if placement is not None:  # on a cluster: where its queue lives
            node, replicas = placement.node or "?", ", ".join(placement.replicas) or "none"
            rows += [
                ("queue", f"{placement.kind} on {node}{' (down)' if placement.down else ''}"),
                ("replicas", replicas),
                (
                    "not in sync",
                    ", ".join(placement.unsynced) or ("—" if placement.replicas else ""),
                ),
            ]
        table = tag("table", *(tag("tr", tag("td", k), tag("td", v)) for k, v in rows))
        error = error_html("unavailable", info.error) if info.error else ""
        self.detail.value = join([tag("b", info.service), table, error])
        if set(self.methods.options) != set(info.methods) and self.services.value == info.service:
            with self._quiet():
                current = self.methods.value
                self.methods.options = info.methods
                self.methods.value = current if current in info.methods else None

    def _clear(self) -> None:
        self.detail.value = ""
        with self._quiet():
            self.methods.options = []
            self.methods.value = None
        self.form_box.children = ()
        self.form = None

    def _on_method(self, change: dict[str, Any]) -> None:
        if self._updating or change["new"] is None:
            return
        self.live.touch()
        info = self.infos.get(self.services.value)
        spec = ((info.description or {}).get("methods") or {}).get(change["new"]) if info else None
        if info is None or spec is None:
            return
        self.form = CallForm(self.lab, info.service, change["new"], spec, alias=self.alias)
        self.live.watch(self.form.call_button, self.form.code_button)
        self.form_box.children = (self.form,)

    def select(self, service: str, method: str | None = None) -> CallForm | None:
        """Pick a service (and a method) as a user would; returns the call form."""
        self.services.value = service
        if method is not None:
            self.methods.value = method
        return self.form

    def close(self) -> None:
        self.live.close()
        super().close()
