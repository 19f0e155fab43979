"""Remote errors raise as their nuropb class and as NuropbMessageError."""

from __future__ import annotations

import pytest

import nuropb_lab as nl
from nuropb_lab.mesh.errors import ERROR_CLASSES, error_dict, remote_error


@pytest.mark.parametrize("name", sorted(set(ERROR_CLASSES) - {"NuropbSuccess"}))
def test_each_named_error_raises_as_itself(name: str) -> None:
    exc = remote_error({"error": name, "description": "why"})
    assert isinstance(exc, ERROR_CLASSES[name])
    assert isinstance(exc, nl.NuropbMessageError)
    assert type(exc).__name__ == name
    assert exc.description == "why" and exc.remote and exc.remote_name == name


def test_unknown_names_raise_as_nuropb_exception_keeping_the_name() -> None:
    exc = remote_error({"error": "ValueError", "description": "bad"})
    assert type(exc).__name__ == "NuropbException"
    assert isinstance(exc, nl.NuropbMessageError)
    assert exc.remote_name == "ValueError"
    assert str(exc) == "bad"


def test_error_dict() -> None:
    assert error_dict(nl.NuropbValidationError("v")) == {
        "error": "NuropbValidationError",
        "description": "v",
    }
    assert error_dict(KeyError("k")) == {"error": "KeyError", "description": "'k'"}
    assert error_dict(ValueError()) == {"error": "ValueError", "description": "ValueError"}
