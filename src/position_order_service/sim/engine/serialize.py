"""Turn engine dataclasses into JSON-able dicts (Decimals as plain strings, enums as values)."""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Any

__all__ = ["jsonable", "slots_to_dict"]


def jsonable(value: Any) -> Any:
    if value is None or (isinstance(value, bool | int | str) and not isinstance(value, Enum)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if to_dict is not None:
        return to_dict()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def slots_to_dict(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: jsonable(getattr(obj, name)) for name in names}
