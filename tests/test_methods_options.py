"""Option ranges: declared once on the constructor (``Annotated[int, Range(min=1)]``), checked at
construction before any run, shown by ``options_of``/``OptionInfo.describe`` (``bench methods``)."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import pytest

import methods
from methods.options import Range
from methods.synflow import SynFlow


def numeric(annotation: object) -> bool:
    args = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    return len(args) == 1 and args[0] in (int, float)


def test_every_numeric_option_of_every_builtin_method_declares_a_range() -> None:
    checked = 0
    for name in methods.available():
        for info in methods.options_of(methods.method_class(name)):
            if numeric(info.type):
                assert info.range is not None, f"{name}:{info.name} declares no range"
                checked += 1
    assert checked >= 9  # steps x3, num_batches x2, examples x2, batch_size x2, temperature


@pytest.mark.parametrize(
    "spec,message",
    [
        ("synflow:steps=-5", "synflow option steps=-5 is out of range (valid: integers >= 1)"),
        ("force:steps=0", "force option steps=0 is out of range (valid: integers >= 1)"),
        ("itersnip:num_batches=0",
         "itersnip option num_batches=0 is out of range (valid: integers >= 1)"),
        ("snip:examples=0", "snip option examples=0 is out of range (valid: integers >= 1)"),
        ("snip:batch_size=-1", "snip option batch_size=-1 is out of range (valid: integers >= 1)"),
        ("grasp:batch_size=0", "grasp option batch_size=0 is out of range (valid: integers >= 1)"),
        ("grasp:temperature=0",
         "grasp option temperature=0.0 is out of range (valid: numbers > 0)"),
        ("grasp:temperature=nan",
         "grasp option temperature=nan is out of range (valid: numbers > 0)"),
        ("synflow:steps=3,shuffle=layer,reinit=true", None),
        ("force:num_batches=none", None),
    ],
)
def test_out_of_range_options_fail_at_construction(spec: str, message: str | None) -> None:
    name, options = methods.parse_spec(spec)
    if message is None:
        methods.get(name, **options)
        return
    with pytest.raises(methods.OptionOutOfRange) as error:
        methods.get(name, **options)
    assert str(error.value) == message
    assert isinstance(error.value, ValueError) and isinstance(error.value, methods.UnknownMethod)


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(ValueError, match=r"synflow option steps=-5 is out of range"):
        SynFlow(steps=-5)
    with pytest.raises(ValueError, match=r"steps=2.5 is out of range \(valid: integers >= 1\)"):
        SynFlow(steps=2.5)  # type: ignore[arg-type]
    assert SynFlow(steps=1).steps == 1


def test_options_describe_their_range_and_choices() -> None:
    described = {
        name: [info.describe() for info in methods.options_of(methods.method_class(name))]
        for name in ("synflow", "force", "grasp", "epf")
    }
    assert described["synflow"] == [
        "steps=100 (integers >= 1)", "schedule='exp' (exp|linear)",
        "dtype='float64' (float64|float32)",
    ]
    assert "num_batches=None (integers >= 1 or None)" in described["force"]
    assert "temperature=200.0 (numbers > 0)" in described["grasp"]
    assert described["epf"] == ["within='layer' (layer|filter)"]
    with pytest.raises(methods.UnknownMethod, match=r"bad value 'row'.*valid: layer, filter"):
        methods.get("epf", within="row")


def test_a_plugin_declares_ranges_the_same_way() -> None:
    class Fraction(methods.Method):
        name = "fraction_demo"

        def __init__(
            self,
            share: Annotated[float, Range(min=0, max=1)] = 0.5,
            rounds: Annotated[int, Range(min=1, max=10)] = 3,
            mode: Literal["a", "b"] = "a",
        ) -> None:
            self.share, self.rounds, self.mode = share, rounds, mode

    infos = {info.name: info for info in methods.options_of(Fraction)}
    assert infos["share"].describe() == "share=0.5 (numbers >= 0 and <= 1)"
    assert infos["rounds"].type is int and infos["rounds"].range == Range(min=1, max=10)
    assert Fraction(share=1.0, rounds=10).share == 1.0
    with pytest.raises(methods.OptionOutOfRange,
                       match=r"^fraction_demo option share=1.5 is out of range "
                             r"\(valid: numbers >= 0 and <= 1\)$"):
        Fraction(share=1.5)
    with pytest.raises(methods.OptionOutOfRange, match=r"rounds=11"):
        Fraction(rounds=11)


@pytest.mark.parametrize(
    "bounds,kind,good,bad",
    [
        (Range(min=1), int, [1, 2, 10**9], [0, -5, 2.5, True, "3", float("nan")]),
        (Range(min=0, min_exclusive=True), float, [1e-9, 200.0, 3], [0, -1.0, float("nan")]),
        (Range(max=1, max_exclusive=True), float, [0.999, -3], [1, 2.0]),
    ],
)
def test_range_admits(bounds: Range, kind: type, good: list, bad: list) -> None:
    assert all(bounds.admits(value, kind) for value in good)
    assert not any(bounds.admits(value, kind) for value in bad)
