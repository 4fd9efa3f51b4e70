"""Lossless model <-> Redis hash encoding (SPEC section 2).

Decimals are canonical plain decimal strings (no trailing zeros: equal values, equal strings), None is an absent field (never ""), datetimes ISO-8601 UTC, booleans
"true"/"false", enums their value, dicts JSON. A nested model (PnLInfo) is flattened with its own field
names prefixed (pnl.realized -> "realized_pnl"). Decoding a hash that lacks a required field or holds an
unparsable value raises CorruptRecord naming the key and the field: never a silent default.
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class CorruptRecord(ValueError):
    """A stored record that cannot be decoded; names the key and the field."""

    def __init__(self, key: str, field: str, problem: str) -> None:
        super().__init__(f"corrupt record {key!r}: field {field!r} {problem}")
        self.key = key
        self.field = field


def enc_decimal(value: Decimal) -> str:
    """The one spelling of a number: plain, without trailing zeros (59475.0 -> "59475", 0.10 -> "0.1"), so
    equal numbers are equal strings and a digest over them compares values, not spellings. Exact: no rounding."""
    if value == 0:
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# Spellings already made: an order's price, size and creation time come back in each of its updates, and a
# number's or a UTC time's spelling is a pure function of its value (equal values, equal spellings). Bounded.
_enc_decimal_seen = functools.lru_cache(maxsize=4096)(enc_decimal)
_utc_isoformat = functools.lru_cache(maxsize=4096)(datetime.isoformat)


def _enc_datetime(value: datetime) -> str:
    if value.tzinfo is not UTC:  # an equal instant in another zone is spelled otherwise
        return value.isoformat()
    return _utc_isoformat(value)


def _dec_decimal(text: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"is not a decimal number: {text!r}") from exc
    if not d.is_finite():
        raise ValueError(f"is not a finite number: {text!r}")
    return d


def _dec_bool(text: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(f"is not 'true' or 'false': {text!r}")


def _dec_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"is not an ISO-8601 datetime: {text!r}") from exc


def _dec_json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON: {text[:40]!r}") from exc


def _dec_int(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise ValueError(f"is not an integer: {text!r}") from exc


@dataclass(frozen=True, slots=True)
class _FieldCodec:
    name: str  # hash field
    path: tuple[str, ...]  # attribute path in the model
    encode: Callable[[Any], str]
    decode: Callable[[str], Any]
    required: bool
    fast: Callable[[Any], str]  # encode, or a marker encode inlines: _AS_STR, _ENUM_VALUE


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """Strip Optional/Annotated; return (type, optional)."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            annotation = args[0]
            continue
        return annotation, optional


def _AS_STR(v: Any) -> str:
    return str(v)


def _ENUM_VALUE(v: Any) -> str:
    return str(v.value)


def _fast(tp: Any, encode: Callable[[Any], str]) -> Callable[[Any], str]:
    if tp is str:
        return _AS_STR
    if isinstance(tp, type) and issubclass(tp, enum.StrEnum):
        return _ENUM_VALUE
    return encode


def _codec_for(tp: Any) -> tuple[Callable[[Any], str], Callable[[str], Any]]:
    origin = typing.get_origin(tp) or tp
    if tp is Decimal:
        return _enc_decimal_seen, _dec_decimal
    if tp is bool:
        return (lambda v: "true" if v else "false"), _dec_bool
    if tp is int:
        return str, _dec_int
    if tp is str:
        return str, str
    if tp is datetime:
        return _enc_datetime, _dec_datetime
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return (lambda v: str(v.value)), tp
    if origin in (dict, list):
        return (lambda v: orjson.dumps(v, default=str).decode()), _dec_json
    raise TypeError(f"no hash codec for {tp!r}")


class HashCodec(Generic[M]):
    """Encodes one pydantic model class to a flat Redis hash and back."""

    def __init__(self, model: type[M], flatten: Mapping[str, str] | None = None) -> None:
        """`flatten` maps a nested-model field to the suffix its fields get (pnl -> "_pnl")."""
        self.model = model
        self.fields: list[_FieldCodec] = []
        self.nested: dict[str, type[BaseModel]] = {}
        flatten = flatten or {}
        for name, info in model.model_fields.items():
            tp, optional = _base_type(info.annotation)
            required = info.is_required()
            if name in flatten:
                self.nested[name] = tp
                suffix = flatten[name]
                for sub, sub_info in tp.model_fields.items():
                    stp, _ = _base_type(sub_info.annotation)
                    enc, dec = _codec_for(stp)
                    self.fields.append(
                        _FieldCodec(f"{sub}{suffix}", (name, sub), enc, dec, False, _fast(stp, enc))
                    )
                continue
            enc, dec = _codec_for(tp)
            self.fields.append(
                _FieldCodec(name, (name,), enc, dec, required and not optional, _fast(tp, enc))
            )
        self.field_names = frozenset(f.name for f in self.fields)
        # encode's plan: top-level fields read from the instance dict (a pydantic model keeps its field values
        # there), str values taken as they are (no call), a StrEnum its value; nested fields through a getter
        self._plan = tuple((f.name, f.path[0], f.fast) for f in self.fields if len(f.path) == 1)
        self._nested_encoders = tuple(
            (f.name, attrgetter(".".join(f.path)), f.encode) for f in self.fields if len(f.path) > 1
        )

    def encode(self, obj: M) -> dict[str, str]:
        """Every field that is set; a None is left out (absent field)."""
        values = obj.__dict__
        out: dict[str, str] = {}
        for name, attr, enc in self._plan:
            value = values[attr]
            if value is None:
                continue
            if enc is _AS_STR:
                out[name] = value if type(value) is str else str(value)
            elif enc is _ENUM_VALUE:
                out[name] = value if type(value) is str else value._value_
            else:
                out[name] = enc(value)
        if self._nested_encoders:
            for name, get, enc in self._nested_encoders:
                value = get(obj)
                if value is not None:
                    out[name] = enc(value)
        return out

    def encode_some(self, obj: M, names: tuple[str, ...]) -> dict[str, str]:
        """`encode`, for the named (top-level) fields only: what a partial write changes."""
        out: dict[str, str] = {}
        for f in self.fields:
            if f.name in names:
                value = getattr(obj, f.path[0])
                if value is not None:
                    out[f.name] = f.encode(value)
        return out

    def absent_fields(self, encoded: Mapping[str, str]) -> list[str]:
        """Fields of the model that `encoded` leaves out: they must be deleted from a stored hash."""
        return [f.name for f in self.fields if f.name not in encoded]

    def decode(self, key: str, raw: Mapping[Any, Any], trusted: bool = False) -> M:
        """`trusted`: the record was validated when written; parse each field (a corrupt one still raises)
        but skip the model's validators (cross-field rules): reads on the hot path cost less."""
        data = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        values: dict[str, Any] = {}
        for f in self.fields:
            text = data.get(f.name)
            if text is None:
                if f.required:
                    raise CorruptRecord(key, f.name, "is missing")
                continue
            try:
                value = f.decode(text)
            except ValueError as exc:
                raise CorruptRecord(key, f.name, str(exc)) from None
            if len(f.path) == 1:
                values[f.path[0]] = value
            else:
                values.setdefault(f.path[0], {})[f.path[1]] = value
        if trusted:
            for name, nested in self.nested.items():
                if name in values:
                    values[name] = nested.model_construct(**values[name])
            return self.model.model_construct(**values)
        try:
            return self.model.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "(record)"
            raise CorruptRecord(key, loc, f"is invalid: {err['msg']}") from None
