"""A task's args are checked against its signature: at submit, and again in the worker before each attempt."""

from __future__ import annotations

import itertools
import json

import pytest

from jobd.errors import InvalidArgs
from jobd.task_signature import ArgsCheck, signature_from_data, signature_to_data
from jobd.tasks import TaskDefinition

SIGNATURES = [
    "def f(ctx): pass",
    "def f(ctx, a): pass",
    "def f(ctx, a=1): pass",
    "def f(ctx, *, a): pass",
    "def f(ctx, *, a=1): pass",
    "def f(ctx, a, /): pass",
    "def f(ctx, a=1, /): pass",
    "def f(ctx, /, a): pass",
    "def f(ctx, /, **kw): pass",
    "def f(ctx, **kw): pass",
    "def f(ctx, a, **kw): pass",
    "def f(*args): pass",
    "def f(*args, a): pass",
    "def f(*, ctx): pass",
    "def f(): pass",
    "def f(ctx, *args, a=2, **kw): pass",
    "def f(ctx, a, b=2, *, c, d=4): pass",
    "def f(c, ctx): pass",
]
NAMES = ["a", "b", "c", "d", "ctx", "kw", "args", "x"]


def _definition(source: str) -> TaskDefinition:
    namespace: dict[str, object] = {}
    exec(source, namespace)
    return TaskDefinition("t.t", namespace["f"])  # type: ignore[arg-type]


@pytest.mark.parametrize("source", SIGNATURES)
def test_the_fast_check_accepts_exactly_what_the_signature_binds(source: str) -> None:
    """The check is two set comparisons on the hot path; it must agree with ``Signature.bind`` on every case."""
    definition = _definition(source)
    for size in range(5):
        for names in itertools.combinations(NAMES, size):
            args = dict.fromkeys(names, 1)
            try:
                definition.signature.bind(None, **args)
                binds = True
            except TypeError:
                binds = False
            try:
                definition.check_args(args)
                accepted = True
            except InvalidArgs:
                accepted = False
            assert accepted == binds, (source, args)


def test_refused_args_say_what_the_task_does_not_accept() -> None:
    definition = _definition("def f(ctx, campaign_id): pass")
    with pytest.raises(InvalidArgs, match=r"task 't.t' does not accept these args: .*campaign_id"):
        definition.check_args({})
    with pytest.raises(InvalidArgs, match="unexpected keyword argument 'campain_id'"):
        definition.check_args({"campaign_id": 1, "campain_id": 2})


@pytest.mark.parametrize("source", SIGNATURES)
def test_a_signature_written_down_as_data_accepts_and_refuses_exactly_like_the_function(source: str) -> None:
    """What a submit checks against the task catalogue, without the task's code, reads like the worker's check."""
    definition = _definition(source)
    from_data = ArgsCheck(signature_from_data(json.loads(json.dumps(signature_to_data(definition.signature)))))
    for size in range(5):
        for names in itertools.combinations(NAMES, size):
            args = dict.fromkeys(names, 1)
            outcomes = []
            for check in (definition.check_args, lambda args: from_data.check("t.t", args)):
                try:
                    check(args)
                    outcomes.append("accepted")
                except InvalidArgs as error:
                    outcomes.append(str(error))
            assert outcomes[0] == outcomes[1], (source, args)
