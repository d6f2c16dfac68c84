"""How the config's dataclasses are checked, without their modules importing pydantic.

jobd.toml's sections are plain frozen dataclasses (``config_sections``,
``config``, ``shelltask``, ``rate_limit_settings``, ``migrations.settings``),
so a process that only *holds* a config — the master, for its whole life —
never loads pydantic: it is given its config already checked (``jobd
start``'s hand-over, a reload's subprocess). Reading a file still validates
it with pydantic (a ``TypeAdapter`` built where a file is read: ``config.parse_config``).

The fields carry their checks as ``Annotated`` metadata, markers that
import pydantic only when a schema is built: ``Before`` and ``After`` hand a
function to pydantic's own ``BeforeValidator`` and ``AfterValidator`` (an
``After`` check that takes two arguments gets pydantic's ``ValidationInfo``,
``info.data`` being the fields validated before it, as a ``field_validator``
would); ``AtLeast``, ``AtMost`` and ``MinLength`` are bounds that fail with
pydantic's own errors ("Input should be greater than or equal to 0"). Not
annotated-types' ``Ge``/``Le``/``MinLen``: importing those loads
typing-extensions too, half a megabyte of a master that never checks a file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from datetime import timedelta
from enum import Enum
from pathlib import PurePath
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")

#: pydantic's settings for every config dataclass (``__pydantic_config__``): an unknown key is an
#: error, a string's surrounding whitespace is dropped. A dict, so defining it imports nothing.
STRICT: dict[str, Any] = {"extra": "forbid", "str_strip_whitespace": True}

#: Error types pydantic gives an unknown key: a model's, and a dataclass's keyword argument.
UNKNOWN_KEY_ERRORS = frozenset({"extra_forbidden", "unexpected_keyword_argument"})


@dataclass(frozen=True)
class Before:
    """Turn the raw value into the field's type first (``"30s"`` → 30.0) with ``convert``."""

    convert: Callable[[Any], Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic import BeforeValidator

        return BeforeValidator(self.convert).__get_pydantic_core_schema__(source, handler)


@dataclass(frozen=True)
class After:
    """Check (and return) the typed value with ``check``; a ``ValueError`` names the field."""

    check: Callable[..., Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic import AfterValidator

        return AfterValidator(self.check).__get_pydantic_core_schema__(source, handler)


@dataclass(frozen=True)
class _Bound(ABC):
    """A bound on a value, checked after its type: a value that breaks it is pydantic-core's error ``ERROR``."""

    limit: int
    ERROR: ClassVar[str]
    CONTEXT: ClassVar[str]  # the key of ``limit`` in the error's context, which its message quotes

    @abstractmethod
    def holds(self, value: Any) -> bool:
        """Whether ``value`` (already of the field's type) keeps to the bound."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import PydanticKnownError, core_schema

        def check(value: Any) -> Any:
            if not self.holds(value):
                raise PydanticKnownError(self.ERROR, {self.CONTEXT: self.limit})  # type: ignore[arg-type]
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))


class AtLeast(_Bound):
    ERROR, CONTEXT = "greater_than_equal", "ge"

    def holds(self, value: Any) -> bool:
        return bool(value >= self.limit)


class AtMost(_Bound):
    ERROR, CONTEXT = "less_than_equal", "le"

    def holds(self, value: Any) -> bool:
        return bool(value <= self.limit)


class MinLength(_Bound):
    ERROR, CONTEXT = "string_too_short", "min_length"

    def holds(self, value: Any) -> bool:
        return len(value) >= self.limit


def as_json_data(value: Any) -> Any:
    """A config dataclass (or any value in one) as plain JSON data: paths as text, durations in seconds.

    Fields whose metadata says ``exclude`` (where a config came from) are left
    out: two configs read from different places but alike compare alike.
    """
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: as_json_data(getattr(value, item.name)) for item in fields(value) if not item.metadata.get("exclude")}
    if isinstance(value, dict):
        return {str(key): as_json_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json_data(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def validated(kind: type[T], data: Any) -> T:
    """``data`` checked into ``kind``, a config dataclass, as a file's table would be (loads pydantic).

    For code and tests that build one section by hand; a whole file goes
    through ``jobd.config.parse_config``, which names file and key.
    """
    from pydantic import TypeAdapter

    return TypeAdapter(kind).validate_python(data)
