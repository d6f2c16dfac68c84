"""Which args a task accepts, checked from its signature or from that signature written down as data.

A worker checks args against the function it is about to call; an
application submitting a job checks them against the daemon's published
task catalogue (``jobd.catalogue``), without importing the task's code. Both
go through ``ArgsCheck``, so a refusal reads the same wherever it happens:
the catalogue keeps each parameter's name, kind and whether it has a default,
which is all ``Signature.bind`` looks at when it accepts or refuses keywords.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Any

from .errors import InvalidArgs

_P = inspect.Parameter
_KINDS = {kind.name: kind for kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD, _P.VAR_POSITIONAL, _P.KEYWORD_ONLY, _P.VAR_KEYWORD)}


class ArgsCheck:
    """Accept or refuse a task's keyword args the way ``signature.bind(ctx, **args)`` would."""

    def __init__(self, signature: inspect.Signature) -> None:
        self.signature = signature

    @cached_property
    def _keywords(self) -> tuple[frozenset[str], frozenset[str], bool, frozenset[str]] | None:
        """(names args may use, names args must give, whether any other name is accepted too,
        names args may never use: the parameter that receives ctx).

        None when the signature is unusual enough (ctx not positional, a
        required positional-only parameter) to leave every check to ``bind``.
        """
        parameters = list(self.signature.parameters.values())
        if not parameters or parameters[0].kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            return None
        rest = parameters[1:] if parameters[0].kind is not inspect.Parameter.VAR_POSITIONAL else parameters
        if any(p.kind is p.POSITIONAL_ONLY and p.default is p.empty for p in rest):
            return None
        by_keyword = [p for p in rest if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        return (
            frozenset(p.name for p in by_keyword),
            frozenset(p.name for p in by_keyword if p.default is p.empty),
            any(p.kind is p.VAR_KEYWORD for p in rest),
            frozenset(p.name for p in parameters[:1] if p.kind is p.POSITIONAL_OR_KEYWORD),
        )

    def check(self, task: str, args: dict[str, Any]) -> None:
        """Raise ``InvalidArgs`` naming ``task`` unless ``args`` fit the keyword parameters."""
        keywords = self._keywords
        if keywords is not None:
            allowed, required, any_name, taken = keywords
            names = args.keys()
            if (any_name or names <= allowed) and required <= names and taken.isdisjoint(names):
                return  # what Signature.bind accepts, decided with two set comparisons
        try:
            self.signature.bind(None, **args)
        except TypeError as error:
            raise InvalidArgs(f"task {task!r} does not accept these args: {error}") from None


#: A parameter as data: [name, kind name (``POSITIONAL_OR_KEYWORD``, ``KEYWORD_ONLY``…), has a default].
ParameterData = list[Any]


def signature_to_data(signature: inspect.Signature) -> list[ParameterData]:
    """The parts of a signature that decide which args it accepts, as JSON-ready lists."""
    return [
        [parameter.name, parameter.kind.name, parameter.default is not parameter.empty]
        for parameter in signature.parameters.values()
    ]


def signature_from_data(data: Any) -> inspect.Signature:
    """The signature ``signature_to_data`` wrote down; ValueError if ``data`` is not one."""
    if not isinstance(data, list):
        raise ValueError(f"a signature is a list of parameters, not {type(data).__name__}")
    parameters = []
    for item in data:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and item[1] in _KINDS and isinstance(item[2], bool)):
            raise ValueError(f"{item!r} is not a parameter [name, kind, has default]")
        name, kind, has_default = item
        default = None if has_default else inspect.Parameter.empty
        parameters.append(inspect.Parameter(name, _KINDS[kind], default=default))  # ValueError on a bad name
    return inspect.Signature(parameters)  # ValueError on parameters out of order
