"""Checked msgspec structs: the base of every model that crosses a queue or the bus.

A ``Record`` is a frozen msgspec struct whose field rules (``_rules``, field name -> rule) run
in ``__post_init__``, so decoding a body and building one in code check the same things. A
rule takes a field's value and returns it (normalised: stripped, a string parsed into a
datetime or a Decimal) or raises ``ValueError`` with the message a report shows for that
field. The rules and their messages are the ones the pydantic models had (pydantic's
wording), so error texts producers and operators read did not change when the models left
pydantic (docs/performance.md, "Cold start"; docs/producers.md, "Error texts").

msgspec stops at the first bad field; ``Record.problems`` checks each field on its own and
reports every bad one as ``path: message`` (nested records as ``total.currency``), never the
value (values may be personal data).

A rule that is a ``Rule`` object also knows its JSON Schema keywords (``schema()``): the event
catalog's schemas (``notifications.catalog``) take the structure from msgspec's schema and
the constraints from the rules, so one definition gives the check and the contract.
"""

from __future__ import annotations

import copy
import functools
import re
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Literal, Self

import msgspec

_ENUM_VALUE = re.compile(r"Invalid enum value .*?(?= - at `|$)")

# msgspec's type errors of a single value in pydantic's words (for the records whose reports
# producers and operators knew from pydantic: the events, the preferences)
_EXPECTED = re.compile(r"^Expected `(\w+)(?: \| null)?`, got `\w+`$")
_PYDANTIC_WORDS = {
    "str": "Input should be a valid string",
    "int": "Input should be a valid integer",
    "bool": "Input should be a valid boolean",
    "datetime": "Input should be a valid datetime",
    "decimal": "Input should be a valid decimal",
    "object": "Input should be an object",
    "array": "Input should be a valid array",
    "Invalid RFC3339 encoded datetime": "Input should be a valid datetime",
    "Invalid decimal string": "Input should be a valid decimal",
}


def _in_pydantic_words(message: str) -> str:
    expected = _EXPECTED.match(message)
    key = expected.group(1) if expected else message
    return _PYDANTIC_WORDS.get(key, message)


class Rule:
    """A field rule with JSON Schema keywords; subclasses implement ``__call__``."""

    def __call__(self, value: Any) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        """The JSON Schema keywords this rule adds to the field's type."""
        return {}


class Text(Rule):
    """A string of ``low``-``high`` characters (after stripping surrounding whitespace when
    ``strip``), matching ``pattern`` when given (searched, as pydantic does)."""

    def __init__(
        self, low: int = 0, high: int | None = None, *, strip: bool = False, pattern: str = ""
    ) -> None:
        self.low, self.high, self.strip, self.pattern = low, high, strip, pattern
        self._regex = re.compile(pattern) if pattern else None

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("Input should be a valid string")
        if self.strip:
            value = value.strip()
        if len(value) < self.low:
            s = "s" * (self.low != 1)
            raise ValueError(f"String should have at least {self.low} character{s}")
        if self.high is not None and len(value) > self.high:
            raise ValueError(f"String should have at most {self.high} characters")
        if self._regex is not None and not self._regex.search(value):
            raise ValueError(f"String should match pattern '{self.pattern}'")
        return value

    def schema(self) -> dict[str, Any]:
        keywords: dict[str, Any] = {}
        if self.high is not None:
            keywords["maxLength"] = self.high
        if self.low:
            keywords["minLength"] = self.low
        if self.pattern:
            keywords["pattern"] = self.pattern
        return keywords


class Integer(Rule):
    """An integer (not a bool) within ``ge``..``le``."""

    def __init__(self, ge: int | None = None, le: int | None = None) -> None:
        self.ge, self.le = ge, le

    def __call__(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("Input should be a valid integer")
        if self.ge is not None and value < self.ge:
            raise ValueError(f"Input should be greater than or equal to {self.ge}")
        if self.le is not None and value > self.le:
            raise ValueError(f"Input should be less than or equal to {self.le}")
        return value

    def schema(self) -> dict[str, Any]:
        keywords = {"minimum": self.ge, "maximum": self.le}
        return {k: v for k, v in keywords.items() if v is not None}


class Amount(Rule):
    """A finite Decimal >= ``ge`` with at most ``max_digits`` digits, ``places`` of them after
    the point, counted on the normalised value (trailing zeros do not count), as pydantic's
    ``Field(ge=..., max_digits=..., decimal_places=...)``. A string, int or float is read as a
    Decimal (what JSON and a producer's code give)."""

    def __init__(self, ge: int, max_digits: int, places: int) -> None:
        self.ge, self.max_digits, self.places = ge, max_digits, places

    def __call__(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, Decimal | str | int | float):
            raise ValueError("Decimal input should be an integer, float, string or Decimal object")
        if not isinstance(value, Decimal):
            try:
                value = Decimal(str(value).strip())
            except InvalidOperation:
                raise ValueError("Input should be a valid decimal") from None
        if not value.is_finite():
            raise ValueError("Input should be a finite number")
        _, digit_tuple, exponent = value.normalize().as_tuple()
        assert isinstance(exponent, int)  # finite
        digits, places = len(digit_tuple), 0
        if exponent >= 0:
            digits += exponent
        else:
            places = -exponent
            digits = max(digits, places)
        if digits > self.max_digits:
            raise ValueError(
                f"Decimal input should have no more than {self.max_digits} digits in total"
            )
        if places > self.places:
            raise ValueError(f"Decimal input should have no more than {self.places} decimal places")
        whole = self.max_digits - self.places
        if digits - places > whole:
            raise ValueError(
                f"Decimal input should have no more than {whole} digits before the decimal point"
            )
        if value < self.ge:
            raise ValueError(f"Input should be greater than or equal to {self.ge}")
        return value

    def schema(self) -> dict[str, Any]:
        """A JSON number or a decimal string (pydantic's pattern for these limits)."""
        whole = self.max_digits - self.places
        pattern = (
            r"^(?!^[-+.]*$)[+-]?0*"
            rf"(?:\d{{0,{whole}}}|(?=[\d.]{{1,{self.max_digits + 1}}}0*$)"
            rf"\d{{0,{whole}}}\.\d{{0,{self.places}}}0*$)"
        )
        number = {"minimum": float(self.ge), "type": "number"}
        return {"anyOf": [number, {"pattern": pattern, "type": "string"}]}


class Optional(Rule):
    """``None``, or a value ``rule`` accepts."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def __call__(self, value: Any) -> Any:
        return None if value is None else self.rule(value)

    def schema(self) -> dict[str, Any]:
        return self.rule.schema()


def aware(value: Any) -> Any:
    """A time-zone-aware datetime (an RFC 3339 string is parsed)."""
    if isinstance(value, str):
        try:
            value = msgspec.convert(value, datetime)
        except msgspec.ValidationError:
            raise ValueError("Input should be a valid datetime") from None
    if not isinstance(value, datetime):
        raise ValueError("Input should be a valid datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("Input should have timezone info")
    return value


def valid_uuid(value: Any) -> Any:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise ValueError("Input should be a valid UUID") from None
    return value


def as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _nested(annotation: Any) -> type[Record] | None:
    """The record type of a field typed ``SomeRecord`` or ``SomeRecord | None``."""
    if isinstance(annotation, type) and issubclass(annotation, Record):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _nested(args[0])
    return None


class Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A checked record with the pydantic-style methods the rest of the code base calls.

    Class settings: ``_rules`` (field name -> rule); ``_lax``: decode and convert as
    pydantic's lax mode did (a ``"2"`` for an int, a whole float for an int, a Unix time for
    a datetime); ``_str_max_length``: a limit on every string field (pydantic's
    ``str_max_length``; not part of a field's schema, as with pydantic); ``_pydantic_words``:
    type errors in ``problems`` read as pydantic's (``Input should be a valid string``), not
    msgspec's (``Expected `str`, got `int```)."""

    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    _lax: ClassVar[bool] = False
    _str_max_length: ClassVar[int | None] = None
    _pydantic_words: ClassVar[bool] = False

    def __post_init__(self) -> None:
        problems = []
        for name, rule in self._rules.items():
            value = getattr(self, name)
            try:
                checked = rule(value)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if checked is not value:
                msgspec.structs.force_setattr(self, name, checked)
        if self._str_max_length is not None:
            problems += [
                f"{name}: {long}"
                for name in self.__struct_fields__
                if (long := self._too_long(name))
            ]
        if problems:
            raise ValueError("; ".join(problems))

    def _too_long(self, name: str) -> str:
        value = getattr(self, name)
        limit = self._str_max_length
        if limit is not None and isinstance(value, str) and len(value) > limit:
            return f"String should have at most {limit} characters"
        return ""

    @classmethod
    def problems(cls, raw: object, path: str = "") -> list[str]:
        """Every bad field of ``raw`` (decoded JSON) as ``path: message``; empty when ``raw``
        is one of these. ``path`` prefixes the field names (a nested record's field)."""
        if not isinstance(raw, dict):
            return [f"{path or '(root)'}: Input should be an object"]
        prefix = f"{path}." if path else ""
        found = []
        fields = _fields(cls)
        for field in fields:
            where = f"{prefix}{field.encode_name}"
            if field.encode_name not in raw:
                if field.required:
                    found.append(f"{where}: Field required")
                continue
            value = raw[field.encode_name]
            nested = _nested(field.type)
            if nested is not None and value is not None:
                found += nested.problems(value, where)
                continue
            try:
                value = msgspec.convert(value, field.type, strict=not cls._lax)
                rule = cls._rules.get(field.name)
                if rule is not None:
                    value = rule(value)
                limit = cls._str_max_length
                if limit is not None and isinstance(value, str) and len(value) > limit:
                    raise ValueError(f"String should have at most {limit} characters")
            except (msgspec.ValidationError, ValueError) as exc:
                # msgspec names a bad enum value; a report never carries values
                message = _ENUM_VALUE.sub("Invalid enum value", str(exc))
                if cls._pydantic_words:
                    message = _in_pydantic_words(message)
                found.append(f"{where}: {message}")
        if cls.__struct_config__.forbid_unknown_fields:
            known = {field.encode_name for field in fields}
            found += [
                f"{prefix}{name}: Extra inputs are not permitted"
                for name in raw
                if name not in known
            ]
        return found

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Self:
        """Decode and check a JSON body (``msgspec.ValidationError`` or
        ``msgspec.DecodeError`` otherwise)."""
        return msgspec.json.decode(data, type=cls, strict=not cls._lax)

    @classmethod
    def model_validate(cls, obj: object) -> Self:
        """From a mapping of Python or JSON values, checked (``msgspec.ValidationError``)."""
        return msgspec.convert(obj, type=cls, strict=not cls._lax)

    def model_dump(
        self, *, mode: Literal["python", "json"] = "python", exclude: set[str] | None = None
    ) -> dict[str, Any]:
        """The fields as a dict: Python values (parts as dicts) or JSON values."""
        dumped: dict[str, Any] = msgspec.to_builtins(self) if mode == "json" else _python(self)
        return {k: v for k, v in dumped.items() if not exclude or k not in exclude}

    def model_dump_json(self, *, indent: int | None = None, exclude_none: bool = False) -> str:
        """The record as JSON (compact unless ``indent``), without its ``None`` fields when
        ``exclude_none``."""
        if exclude_none:
            encoded = msgspec.json.encode(
                {k: v for k, v in msgspec.to_builtins(self).items() if v is not None}
            )
        else:
            encoded = msgspec.json.encode(self)
        return (encoded if indent is None else msgspec.json.format(encoded, indent=indent)).decode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Self:
        """A copy with ``update`` applied, not checked again (as pydantic's ``model_copy``)."""
        duplicate = copy.copy(self)
        for name, value in (update or {}).items():
            if name not in self.__struct_fields__:
                raise AttributeError(f"{type(self).__name__} has no field {name!r}")
            msgspec.structs.force_setattr(duplicate, name, value)
        return duplicate


@functools.cache
def _fields(cls: type[Record]) -> tuple[msgspec.structs.FieldInfo, ...]:
    """``msgspec.structs.fields``, once per class (it resolves the annotations: ~0.5 ms)."""
    return msgspec.structs.fields(cls)


@functools.cache
def _capped(cls: type[Record]) -> tuple[str, ...]:
    """The string fields ``_str_max_length`` must check: those whose own rule does not
    already hold them within it."""
    limit = cls._str_max_length
    if limit is None:
        return ()
    capped = []
    for field in _fields(cls):
        if field.type not in (str, str | None, typing.Optional[str]):  # noqa: UP045
            continue
        rule = cls._rules.get(field.name)
        rule = rule.rule if isinstance(rule, Optional) else rule
        if not (isinstance(rule, Text) and rule.high is not None and rule.high <= limit):
            capped.append(field.name)
    return tuple(capped)


def _python(value: Any) -> Any:
    """A record as a dict of Python values, its parts (records, dataclasses) as dicts too."""
    if isinstance(value, Record):
        return {name: _python(getattr(value, name)) for name in value.__struct_fields__}
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, tuple):
        return tuple(_python(item) for item in value)
    return value
