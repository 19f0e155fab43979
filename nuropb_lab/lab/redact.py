"""Redaction: credentials in message content become a fixed marker before anything is kept.

One mechanism for everything that shows or keeps what others sent (taps, tails, dead letters,
replay, the history, the call form's results, error lines that echo a payload):

- a mapping key at any depth that is or contains one of :data:`DEFAULT_KEYS` (or a key
  added), compared case-insensitively: its value becomes :data:`MARKER`;
- a string that looks like a credential whatever its key: an HTTP ``Bearer`` / ``Basic``
  credential, or a JWT (three base64url parts, the first a JSON header). A whole value of
  that shape becomes the marker; within longer text (an error line) only that part does.

Empty values (None, "") are left as they are: nothing is hidden there. Kept cheap for a tap's
ingest: a key's verdict is cached, plain leaves (numbers, short strings) are passed over
inline, a string is searched only when it may hold a credential, and a caller can skip the
walk when a look at the raw bytes shows that nothing can match (:meth:`Redactor.may_hold`:
one regex, its alternatives grouped by first byte). The anchors are Sentry's default
scrubbing (keys) and the OpenTelemetry Collector's redaction processor (keys, value patterns,
a count).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "DEFAULT_KEYS",
    "MARKER",
    "Redaction",
    "Redactor",
    "marked",
    "redactor",
]

MARKER = "[redacted]"

#: keys whose values are redacted: a key that is or contains one of these (any case)
DEFAULT_KEYS: tuple[str, ...] = (
    "authorization",
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "api_key",
    "apikey",
    "api-key",
    "cookie",
    "session",
    "credential",
    "private_key",
)

# values that look like a credential: an HTTP auth scheme and its credential, or a JWT (its
# first part, a JSON object, always begins '{"' -> base64url "eyJ")
_CREDENTIAL = re.compile(
    r"(?i:\b(bearer|basic)[ \t]+)([A-Za-z0-9._~+/-]+=*)"
    r"|\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
)
# what must be in raw bytes for a credential value to be there (besides the keys); "\u": a
# JSON escape could spell any of them
_VALUE_HINTS = (b"bearer", b"basic", b"eyj", b"\\u")
BEARER_IN_TEXT = 8  # chars a bearer token within text has at least ("bearer of news" is not)
KEYS_CACHED = 4096  # keys whose verdict is kept (the same few names come in every message)


def _b64_text(part: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
    except (binascii.Error, ValueError):
        return None


def _is_jwt_header(part: str) -> bool:
    text = _b64_text(part)
    if text is None:
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _credential(match: re.Match[str], whole: bool) -> bool:
    """Whether a match of _CREDENTIAL is one; ``whole``: it is the whole value."""
    scheme = match.group(1)
    if scheme is None:  # a JWT
        return _is_jwt_header(match.group(0).partition(".")[0])
    if whole:  # "Bearer x" / "Basic x" as a whole value: a header's value
        return True
    token = match.group(2)
    if scheme.lower() == "bearer":
        return len(token) >= BEARER_IN_TEXT
    decoded = _b64_text(token.replace("+", "-").replace("/", "_"))
    return decoded is not None and ":" in decoded  # Basic: base64 of user:password


def _first_byte_trie(hints: Iterable[bytes]) -> re.Pattern[bytes]:
    """One pattern finding any of ``hints``, its alternatives grouped by their first byte: the
    regex engine then tries one group where a byte can begin a hint, and skips the others
    (a flat alternation of a dozen words tries each at every byte: several times slower)."""
    groups: dict[bytes, list[bytes]] = {}
    for hint in dict.fromkeys(h.lower() for h in hints if h):
        groups.setdefault(hint[:1], []).append(hint[1:])
    parts = []
    for first, rests in sorted(groups.items()):
        tails = sorted({re.escape(r) for r in rests}, key=len, reverse=True)
        shortest = b"" in rests  # a hint of one byte: that byte alone is enough
        parts.append(re.escape(first) + (b"" if shortest else b"(?:" + b"|".join(tails) + b")"))
    return re.compile(b"|".join(parts))


_SCALARS = frozenset({int, float, bool, type(None)})


def _may_be_credential(text: str) -> bool:
    """Whether ``text`` may hold a credential _CREDENTIAL finds (cheaper than the search)."""
    if "eyJ" in text:
        return True
    low = text.lower()
    return "bearer" in low or "basic" in low


class Redactor:
    """Redacts values under the keys (defaults, and ``extra_keys``) and credential-shaped
    strings; ``enabled=False`` redacts nothing. Immutable: made once per set of keys."""

    def __init__(self, extra_keys: Iterable[str] = (), enabled: bool = True) -> None:
        self.enabled = enabled
        self.extra_keys = tuple(dict.fromkeys(k.lower() for k in extra_keys if k))
        keys = (*DEFAULT_KEYS, *self.extra_keys)
        self.keys = tuple(dict.fromkeys(keys))
        self._key = re.compile("|".join(re.escape(k) for k in self.keys), re.IGNORECASE)
        self._verdicts: dict[str, bool] = {}  # key -> sensitive (bounded: KEYS_CACHED)
        self._hint = _first_byte_trie([*(k.encode() for k in self.keys), *_VALUE_HINTS])

    def __repr__(self) -> str:
        return f"<Redactor {self.describe()}>"

    def describe(self) -> str:
        """What is in force, in a few words (``%nuropb status``)."""
        if not self.enabled:
            return "off"
        extra = f" + {', '.join(self.extra_keys)}" if self.extra_keys else ""
        return f"on (default keys{extra}, bearer/basic credentials, JWTs)"

    def sensitive_key(self, key: str) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._key.search(key) is not None
            if len(self._verdicts) < KEYS_CACHED:
                self._verdicts[key] = verdict
        return verdict

    def may_hold(self, raw: bytes | str) -> bool:
        """False when nothing in ``raw`` (a message's bytes, or text) can be redacted: no key,
        no credential, no escape that could spell one. Cheap: a lowercase copy and one regex
        search (its alternatives grouped by their first byte)."""
        if not self.enabled:
            return False
        low = (raw.encode(errors="replace") if isinstance(raw, str) else raw).lower()
        return self._hint.search(low) is not None

    def text(self, text: str) -> tuple[str, int]:
        """``text`` with each credential in it replaced by the marker (a whole credential
        value becomes the marker), and how many were."""
        if not self.enabled or not _may_be_credential(text):
            return text, 0
        count = 0
        stripped = text.strip()

        def replace(match: re.Match[str]) -> str:
            nonlocal count
            if _credential(match, match.group(0) == stripped):
                count += 1
                return MARKER
            return match.group(0)

        redacted = _CREDENTIAL.sub(replace, text)
        if count and redacted.strip() == MARKER:
            return MARKER, count
        return (redacted, count) if count else (text, 0)

    def value(self, value: Any) -> tuple[Any, int]:
        """``value`` with what is sensitive in it redacted (a copy where anything was; the
        same object where nothing was), and how many values were."""
        if not self.enabled or not value or type(value) in _SCALARS:
            return value, 0
        return self._walk(value)

    def description(self, value: Any) -> tuple[Any, int]:
        """:meth:`value` of a ``nuropb_describe`` answer, whose ``methods`` are keyed by
        method names: a method called ``secret`` or ``token`` is a name, not a key whose value
        is a credential (its description is still walked)."""
        methods = value.get("methods") if isinstance(value, dict) else None
        if not self.enabled or not isinstance(methods, dict):
            return self.value(value)
        count = 0
        walked = {}
        for name, spec in methods.items():
            walked[name], n = self.value(spec)
            count += n
        rest, n = self.value({k: v for k, v in value.items() if k != "methods"})
        if not count and not n:
            return value, 0
        return {**rest, "methods": walked}, count + n

    def raw(self, raw: bytes | str, decoded: Any) -> tuple[Any, int]:
        """:meth:`value` of ``decoded``, skipped when its ``raw`` form holds nothing to redact."""
        if not self.may_hold(raw):
            return decoded, 0
        return self._walk(decoded)

    def _walk(self, value: Any) -> tuple[Any, int]:
        kind = type(value)
        if kind in _SCALARS or not value:  # most values: a number, a flag, None, empty
            return value, 0
        if kind is str:
            return self.text(value) if len(value) >= 8 else (value, 0)
        if kind is dict or isinstance(value, Mapping):
            count = 0
            out: dict[Any, Any] | None = None
            verdicts = self._verdicts
            for key, item in value.items():
                # the common case inline (a known key, a plain leaf): no call per item
                sensitive = verdicts.get(key) if type(key) is str else False
                if sensitive is None:
                    sensitive = self.sensitive_key(key)
                if sensitive:
                    if item is None or item == "":
                        continue
                    new, n = MARKER, 1
                else:
                    leaf = type(item)
                    if leaf in _SCALARS or (leaf is str and len(item) < 8):
                        continue
                    new, n = self._walk(item)
                if n:
                    if out is None:
                        out = dict(value)
                    out[key] = new
                    count += n
            return (value, 0) if out is None else (out, count)
        if kind is list or kind is tuple or isinstance(value, (list, tuple)):
            count = 0
            items: list[Any] | None = None
            for i, item in enumerate(value):
                leaf = type(item)
                if leaf in _SCALARS or (leaf is str and len(item) < 8):
                    continue
                new, n = self._walk(item)
                if n:
                    if items is None:
                        items = list(value)
                    items[i] = new
                    count += n
            if items is None:
                return value, 0
            return (tuple(items) if isinstance(value, tuple) else items), count
        return value, 0


@functools.lru_cache(maxsize=16)
def redactor(enabled: bool = True, extra_keys: tuple[str, ...] = ()) -> Redactor:
    """The redactor for these settings (made once, shared)."""
    return Redactor(extra_keys, enabled)


class Redaction:
    """The redactor the settings put in force (``redact``, ``redact_keys``), for the parts
    that show or keep message content; a tap or tail keeps the one in force when it began."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def current(self) -> Redactor:
        return redactor(self._settings.redact, tuple(self._settings.redact_keys))

    def describe(self) -> str:
        return self.current.describe()


def marked(value: Any, path: str) -> list[str]:
    """Where the marker stands in ``value`` (a redacted value), as dotted paths under
    ``path``: what a replay would send in place of a credential."""
    if isinstance(value, str):
        return [path] if MARKER in value else []
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in marked(v, f"{path}.{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in marked(v, f"{path}[{i}]")]
    return []
