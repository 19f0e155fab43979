"""The Lab's usage errors: one family under :class:`LabError`.

What the mesh says goes as its nuropb error (``NuropbException`` and its kin, including the
refusals ``EncryptionRefused`` and ``DescribeConflict``, which RMQAPI raises too); what the
Lab refuses to do as asked is a ``LabError``. The magic shows both as one line, so a message
here is one line that says what to change. A leaf module: every part of the Lab imports it.
"""

from __future__ import annotations

__all__ = [
    "BenchError",
    "CheckError",
    "FirehoseRefused",
    "LabError",
    "OptionError",
    "ParamError",
    "RedactedReplay",
]


class LabError(Exception):
    """A usage error in the Lab (unknown alias, malformed target, refused option)."""


class OptionError(LabError, ValueError):
    """An option or argument of a bad value (a limit under 1, a timeout under 0, a URL that is
    not one). Also a ValueError, as such a value was before the family."""


class ParamError(LabError, ValueError):
    """Parameters that do not fit the method's description; the message is one line."""


class BenchError(LabError, ValueError):
    """A bench that cannot run as asked (bad n, rate, target...); the message is one line."""


class CheckError(LabError):
    """A contract check that cannot run as asked (bad options, a service that cannot describe
    itself); the message is one line."""


class FirehoseRefused(LabError):
    """The firehose cannot be had (not an administrator, no management API ...)."""


class RedactedReplay(LabError):
    """A replay would send values that were redacted (someone's credentials, redact.py); the
    message names them and asks for the user's own."""
