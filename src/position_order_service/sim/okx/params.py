"""Reading OKX request fields (JSON bodies and query strings) strictly: every bad value is an OkxError.

Missing required field -> 50014 "Parameter {name} can not be empty"; a value of the wrong shape ->
51000 "Parameter {name} error". OKX accepts numbers as strings or JSON numbers and booleans as true/"true".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from .codes import OkxError, param_error, required

__all__ = [
    "CLORDID_RE",
    "as_list",
    "as_object",
    "choice",
    "limit_of",
    "opt_bool",
    "opt_clid",
    "opt_dec",
    "opt_int",
    "opt_str",
    "opt_tag",
    "req_dec",
    "req_str",
    "split_ids",
]

CLORDID_RE = re.compile(r"[A-Za-z0-9]{1,32}")
_TAG_RE = re.compile(r"[A-Za-z0-9]{1,16}")

Fields = Mapping[str, Any]


def opt_str(d: Fields, name: str) -> str | None:
    v = d.get(name)
    if v is None or v == "":
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise param_error(name)
    return str(v)


def req_str(d: Fields, name: str) -> str:
    v = opt_str(d, name)
    if v is None:
        raise required(name)
    return v


def opt_dec(d: Fields, name: str) -> Decimal | None:
    v = d.get(name)
    if v is None or v == "":
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise param_error(name)
    try:
        out = Decimal(str(v).strip())
    except InvalidOperation:
        raise param_error(name) from None
    if not out.is_finite():
        raise param_error(name)
    return out


def req_dec(d: Fields, name: str) -> Decimal:
    v = opt_dec(d, name)
    if v is None:
        raise required(name)
    return v


def opt_int(d: Fields, name: str) -> int | None:
    v = opt_dec(d, name)
    if v is None:
        return None
    if v != v.to_integral_value():
        raise param_error(name)
    return int(v)


def opt_bool(d: Fields, name: str, default: bool = False) -> bool:
    v = d.get(name)
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    if v in ("true", "True"):
        return True
    if v in ("false", "False"):
        return False
    raise param_error(name)


def opt_clid(d: Fields, name: str) -> str | None:
    """A client id: 1-32 letters/digits (OKX's rule for clOrdId and algoClOrdId)."""
    v = opt_str(d, name)
    if v is not None and not CLORDID_RE.fullmatch(v):
        raise param_error(name)
    return v


def opt_tag(d: Fields, name: str = "tag") -> str | None:
    v = opt_str(d, name)
    if v is not None and not _TAG_RE.fullmatch(v):
        raise param_error(name)
    return v


def choice(d: Fields, name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    v = opt_str(d, name)
    if v is None:
        if default is None:
            raise required(name)
        return default
    if v not in allowed:
        raise param_error(name)
    return v


def split_ids(value: str | None) -> set[str] | None:
    """A comma-separated id list (instId=A,B) as a set, None when absent."""
    if not value:
        return None
    return {p for p in value.split(",") if p}


def limit_of(d: Fields, default: int = 100, maximum: int = 100) -> int:
    n = opt_int(d, "limit")
    if n is None:
        return default
    if n < 1:
        raise param_error("limit")
    return min(n, maximum)


def as_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise OkxError("50002", "Json data format error.", 400)
    return body


def as_list(body: Any, max_items: int, name: str = "orders") -> list[Any]:
    """A batch body: a JSON array of 1..max_items objects (a single object counts as one)."""
    if isinstance(body, dict):
        return [body]
    if not isinstance(body, list) or not body:
        raise OkxError("50002", "Json data format error.", 400)
    if len(body) > max_items:
        raise OkxError("51111", f"Maximum {max_items} {name} can be placed in bulk.")
    return body
