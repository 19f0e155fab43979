"""What ``lab.check`` sends and says, without a broker: inputs made from a description fit it
(or do not) by the one validator's word, item types are followed, and a reproducer line reads
back, through the magic's own parsing, as exactly the params that were sent."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nuropb_lab.lab.check.findings import reproducer
from nuropb_lab.lab.check.outcome import Answer, judge
from nuropb_lab.lab.check.probe import Finding
from nuropb_lab.lab.check.strategies import fitting, json_values, type_strategy, unfitting
from nuropb_lab.lab.params import param_problems, texts_where_described
from nuropb_lab.magics.args import parse_params, split_args
from nuropb_lab.mesh.describe import describe_object
from nuropb_lab.mesh.errors import NuropbTimeoutError, remote_error


class Shapes:
    def place(
        self,
        sku: str,
        qty: int = 1,
        weight: float = 1.5,
        express: bool = False,
        tags: list[int] | None = None,
        meta: dict[str, Any] | None = None,
        anything=None,  # type: ignore[no-untyped-def]
    ) -> dict[str, Any]:
        return {}

    def pair(self, both: "tuple[int, str]", maybe: "Optional[int]") -> None:  # noqa: F821, UP037
        return None

    def nothing(self) -> None:
        return None


METHODS = describe_object(Shapes(), "shapes")["methods"]
FAST = settings(max_examples=40, database=None, suppress_health_check=list(HealthCheck))


@FAST
@given(st.data())
def test_inputs_made_to_fit_fit_and_the_others_do_not(data: st.DataObject) -> None:
    for spec in METHODS.values():
        assert param_problems(spec, data.draw(fitting(spec))) == []
        assert param_problems(spec, data.draw(unfitting(spec))) != []


@FAST
@given(st.data())
def test_item_types_are_followed(data: st.DataObject) -> None:
    tags = data.draw(type_strategy("list[int]"))
    assert all(isinstance(t, int) and not isinstance(t, bool) for t in tags)
    both = data.draw(type_strategy("tuple[int, str]"))
    assert isinstance(both, list) and len(both) == 2 and isinstance(both[1], str)
    meta = data.draw(type_strategy("dict[str, bool]"))
    assert all(isinstance(k, str) and isinstance(v, bool) for k, v in meta.items())
    maybe = data.draw(type_strategy("Optional[float]"))
    assert maybe is None or isinstance(maybe, float)


@FAST
@given(st.data())
def test_a_method_without_parameters_is_sent_unknown_ones(data: st.DataObject) -> None:
    spec = METHODS["nothing"]
    assert data.draw(fitting(spec)) == {}
    wrong = data.draw(unfitting(spec))
    assert len(wrong) == 1 and param_problems(spec, wrong)[0].startswith("no parameter")


@FAST
@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), json_values(), max_size=4
    ),
    st.sampled_from(["server_error", "accepted_invalid", "timeout"]),
)
def test_a_reproducer_reads_back_as_the_params_sent(params: dict[str, Any], check: str) -> None:
    """Through the magic's own reading: split_args, parse_params, then the retyping of bare
    values where the method takes a str, unless --no-check."""
    spec = METHODS["place"]
    line = reproducer("shapes", Finding("place", check, params, "", False, check), spec, 2.0)
    words = split_args(line.removeprefix("%nuropb call "))
    assert words[0] == "shapes.place"
    tokens = [w for w in words[1:] if "=" in w]
    read = parse_params(tokens, {})
    if "--no-check" not in words:
        texts = {n: t for n, _, t in (w.partition("=") for w in tokens)}
        texts = {n: t for n, t in texts.items() if not isinstance(read[n], (str, list, dict))}
        read = texts_where_described(spec, read, texts)
        assert param_problems(spec, read) == []
    assert read == params
    assert ("--timeout 2" in line) == (check == "timeout")


def test_a_name_that_is_not_one_is_sent_as_a_cell() -> None:
    finding = Finding("place", "accepted_invalid", {"a b": 1}, "", False, "accepted_invalid")
    line = reproducer("shapes", finding, METHODS["place"], 2.0)
    assert line == '%%nuropb call shapes.place --no-check\n{"a b": 1}'


def test_the_judgement() -> None:
    spec = METHODS["place"]
    fits, wrong = {"sku": "A"}, {"sku": 1}
    remote = remote_error({"error": "NuropbValidationError", "description": "no"})
    crash = remote_error(
        {"error": "NuropbException", "description": "Runtime exception calling s.m:KeyError: 'x'"}
    )
    assert judge("fitting", Answer(error=remote), spec, fits) is None  # refused: fine
    problem = judge("fitting", Answer(error=crash), spec, fits)
    assert problem is not None and problem.check == "server_error"
    assert problem.key == "server_error:KeyError"  # nuropb 0.1.8's wrapper seen through
    assert judge("unfitting", Answer(error=crash), spec, wrong) is None  # refused, somehow
    accepted = judge("unfitting", Answer(result={}), spec, wrong)
    assert accepted is not None and accepted.check == "accepted_invalid"
    assert "sku: expected str, got 1" in accepted.text
    mismatch = judge("fitting", Answer(result=[]), spec, fits)
    assert mismatch is not None and mismatch.text == "returned [], described as returning dict"
    timeout = judge("fitting", Answer(error=NuropbTimeoutError("late")), spec, fits)
    assert timeout is not None and timeout.check == "timeout"
    huge = judge("unfitting", Answer(result="x" * 1_000_000), spec, wrong)
    assert huge is not None and len(huge.text.encode()) < 5000  # bounded
