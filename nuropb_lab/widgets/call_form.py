"""A call form generated from a method's ``nuropb_describe`` parameters."""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any

import ipywidgets as w

from ..lab import Lab
from ..lab.markup import join, tag
from ..lab.params import param_problems, parameters_of
from ..mesh.errors import NuropbException, error_name
from ..mesh.limits import ERROR_BYTES, clip_text
from .render import error_html, result_html

__all__ = ["CallForm"]

_NUMERIC = {"int": (w.IntText, int), "float": (w.FloatText, float)}


def _magic_value(value: Any) -> str:
    """A value as the magic parses it back (plain word when unambiguous, else JSON)."""
    if isinstance(value, str) and value and not any(c.isspace() or c in "\"'[]{}$" for c in value):
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, separators=(",", ":"))


class ParamInput:
    """One parameter's input widget, typed by its annotation."""

    def __init__(
        self, name: str, spec: dict[str, Any], required: bool, secret: bool = False
    ) -> None:
        self.name = name
        self.type = str(spec.get("type") or "")
        self.required = required
        default = None if required else spec.get("default")
        self.default = default
        label = f"{name}{' *' if required else ''}"
        shown_default = "" if required else f", default {json.dumps(default, default=str)}"
        tip = f"{self.type or 'any'}{shown_default}"
        style = {"description_width": "140px"}
        self.kind: str
        self.widget: w.Widget
        if self.type in _NUMERIC and (required or isinstance(default, (int, float))):
            cls, _ = _NUMERIC[self.type]
            self.kind = "number"
            self.widget = cls(value=default or 0, description=label, tooltip=tip, style=style)
        elif self.type == "bool" and (required or isinstance(default, bool)):
            self.kind = "bool"
            self.widget = w.Checkbox(
                value=bool(default), description=label, tooltip=tip, indent=False
            )
        elif self.type == "str" and (required or isinstance(default, str)):
            self.kind = "text"
            # a credential's name (redact.py): typed, not shown
            text = w.Password if secret else w.Text
            self.widget = text(value=default or "", description=label, tooltip=tip, style=style)
        else:  # dict, list, unannotated, optional: JSON text
            self.kind = "json"
            text = "" if default is None else json.dumps(default)
            self.widget = w.Textarea(
                value=text,
                description=label,
                placeholder=f"JSON ({self.type or 'any'})",
                tooltip=tip,
                rows=1,
                style=style,
            )

    def value(self) -> tuple[bool, Any]:
        """(present, value); raises ValueError for invalid JSON or a missing required value."""
        raw = self.widget.value
        if self.kind == "json":
            text = str(raw).strip()
            if not text:
                if self.required:
                    raise ValueError(f"{self.name} is required")
                return False, None
            try:
                return True, json.loads(text)
            except ValueError:
                raise ValueError(f"{self.name} is not valid JSON: {text[:60]}") from None
        if self.kind == "text" and self.required and raw == "":
            raise ValueError(f"{self.name} is required")
        return True, raw


class CallForm(w.VBox):
    """Inputs for each parameter, context, ttl, trace id and encryption; a Call button, the
    result (or the nuropb error), and the same call as ``%nuropb`` and ``lab.call`` code."""

    def __init__(
        self,
        lab: Lab,
        service: str,
        method: str,
        spec: dict[str, Any],
        alias: str | None = None,
    ) -> None:
        self.lab = lab
        self.service = service
        self.method = method
        self.alias = alias
        self.spec = spec
        properties, required = parameters_of(spec)
        secret = lab.redactor.sensitive_key
        self.inputs = [
            ParamInput(name, p, name in required, lab.redactor.enabled and secret(name))
            for name, p in properties
        ]
        self.requires_encryption = bool(spec.get("requires_encryption"))
        self.context = w.Textarea(
            value="{}", description="context", rows=1, style={"description_width": "140px"}
        )
        self.ttl = w.BoundedFloatText(
            value=lab.timeout,
            min=0.001,
            max=86_400,
            description="ttl (s)",
            style={"description_width": "140px"},
        )
        self.trace_id = w.Text(
            value="", description="trace id", style={"description_width": "140px"}
        )
        self.check = w.Checkbox(
            value=True, description="check the parameters against the description", indent=False
        )
        self.encrypt = w.Checkbox(
            value=self.requires_encryption,
            disabled=self.requires_encryption,
            description="encrypt" + (" (required)" if self.requires_encryption else ""),
            indent=False,
        )
        self.call_button = w.Button(description="Call", button_style="primary", icon="play")
        self.code_button = w.Button(description="Copy as code", icon="code")
        self.result = w.HTML()
        self.code = w.Textarea(rows=2, layout=w.Layout(width="100%", display="none"))
        self.pending: concurrent.futures.Future[Any] | None = None
        self.last_result: Any = None
        self.last_error: BaseException | None = None
        self.call_button.on_click(self._on_call)
        self.code_button.on_click(self._on_code)
        title = w.HTML(
            join(
                [
                    tag("b", f"{service}.{method}"),
                    " 🔒" if self.requires_encryption else "",
                    tag("div", spec.get("description") or ""),
                ]
            )
        )
        super().__init__(
            [
                title,
                *[i.widget for i in self.inputs],
                w.Accordion(
                    [w.VBox([self.context, self.ttl, self.trace_id, self.check])],
                    titles=("options",),
                    selected_index=None,
                ),
                w.HBox([self.encrypt, self.call_button, self.code_button]),
                self.result,
                self.code,
            ]
        )

    # --- reading the form -----------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """The parameters as entered; ValueError names the first bad one, or (when checked)
        what does not fit the method's description (the Lab's one validator, params.py)."""
        values = {}
        for item in self.inputs:
            present, value = item.value()
            if present:
                values[item.name] = value
        problems = param_problems(self.spec, values) if self.check.value else []
        if problems:
            raise ValueError("; ".join(problems))
        return values

    def context_value(self) -> dict[str, Any]:
        text = self.context.value.strip() or "{}"
        try:
            value = json.loads(text)
        except ValueError:
            raise ValueError(f"context is not valid JSON: {text[:60]}") from None
        if not isinstance(value, dict):
            raise ValueError("context must be a JSON object")
        return value

    def code_lines(self) -> tuple[str, str]:
        """The same call as a ``%nuropb call`` line and as a ``lab.call(...)`` line; credentials
        in it redacted (redact.py), so that no copy of it holds one."""
        redact = self.lab.redactor.value
        params = redact(self.params())[0]
        context = redact(self.context_value())[0]
        target = f"{self.service}.{self.method}"
        magic = ["%nuropb call", target, *(f"{k}={_magic_value(v)}" for k, v in params.items())]
        python = [
            repr(target),
            *(f"{k}={v!r}" if k.isidentifier() else "" for k, v in params.items()),
        ]
        options: list[tuple[str, str]] = []
        if self.ttl.value != self.lab.timeout:
            magic.append(f"--timeout {self.ttl.value:g}")
            options.append(("timeout", f"{self.ttl.value:g}"))
        if self.encrypt.value and not self.requires_encryption:
            magic.append("--encrypt")
            options.append(("encrypt", "True"))
        if context:
            magic.append(f"--context {json.dumps(context, separators=(',', ':'))}")
            options.append(("context", repr(context)))
        if self.trace_id.value.strip():
            magic.append(f"--trace {self.trace_id.value.strip()}")
            options.append(("trace_id", repr(self.trace_id.value.strip())))
        if self.alias:
            magic.append(f"--alias {self.alias}")
            options.append(("alias", repr(self.alias)))
        if not self.check.value:
            magic.append("--no-check")
            options.append(("check", "False"))
        python += [f"{k}={v}" for k, v in options]
        return " ".join(magic), f"lab.call({', '.join(p for p in python if p)})"

    # --- actions ----------------------------------------------------------------------------

    def _on_code(self, _button: Any = None) -> None:
        try:
            magic, python = self.code_lines()
        except ValueError as exc:
            self.result.value = error_html("invalid input", str(exc))
            return
        self.code.value = f"{magic}\n{python}"
        self.code.layout.display = None

    def _on_call(self, _button: Any = None) -> None:
        """Validate, then run the call on the Lab loop; never blocks the kernel."""
        try:
            params, context = self.params(), self.context_value()
        except ValueError as exc:
            self.result.value = error_html("invalid input", str(exc))
            return
        self.call_button.disabled = True
        self.call_button.description = "Calling…"
        self.result.value = tag("i", "calling…")
        self.pending = self.lab.start_call(
            f"{self.service}.{self.method}",
            params,
            timeout=self.ttl.value,
            encrypt=True if self.encrypt.value else None,
            context=context,
            trace_id=self.trace_id.value.strip() or None,
            alias=self.alias,
            check=self.check.value,
        )
        self.pending.add_done_callback(self._on_done)

    def _on_done(self, future: concurrent.futures.Future[Any]) -> None:
        # Runs in the Lab loop thread: only set trait values here.
        try:
            # shown and kept redacted (redact.py), like everything the lab shows
            self.last_result, self.last_error = self.lab.redactor.value(future.result())[0], None
            self.result.value = result_html(self.last_result)
        except concurrent.futures.CancelledError:
            self.last_error = None
            self.result.value = error_html("cancelled", "the call was cancelled")
        except BaseException as exc:
            self.last_error = exc
            description = exc.description if isinstance(exc, NuropbException) else str(exc)
            description = self.lab.redactor.text(description)[0]
            self.result.value = error_html(error_name(exc), clip_text(description, ERROR_BYTES))
        finally:
            self.call_button.disabled = False
            self.call_button.description = "Call"
