"""Strict dataclass validation for TOML tables: unknown keys and wrong types are rejected.

`build(cls, table, path)` turns a plain dict into a frozen dataclass instance, checking every key
against the dataclass's fields and every value against the field's annotation. Errors name the
key path and the closest valid keys; the caller adds which file or override it came from.

Generic range rules live here, once for every field: a float must be finite (nan and inf are refused;
no field takes them) and an int must fit in 64 bits (TOML allows no more, and torch, NumPy and HDF5
store no more). Per-field ranges live in each options dataclass's `__post_init__`, which raises
ValueError with a message that starts with the field's name (`"lr = -1.0 must be > 0"`); `build`
prefixes the table's key path, so every range error names its full key (`training.lr = -1.0 ...`).
Torch-free.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from typing import Any, Literal, cast, get_args, get_origin

from engine.errors import close_matches


class SchemaError(Exception):
    """A validation failure at `path` (dotted key path); message is for people."""

    def __init__(self, path: str, message: str, out_of_range: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.out_of_range = out_of_range
        """The value has the right type but not an allowed value (a union then reports this error)."""


INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""The ints a config may hold: TOML's own range, and what torch, NumPy and HDF5 can store."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp)
        return f"list of {_type_name(inner)}"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def _check(tp: Any, value: Any, path: str) -> Any:
    """Return `value` converted to `tp` (int→float only), or raise SchemaError."""
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp) and type(value) is type(get_args(tp)[0]):
            return value
        raise SchemaError(path, f"{path} = {value!r} is not one of {_type_name(tp)}")
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _check(arg, value, path)
            except SchemaError as e:
                if e.out_of_range:  # right type, wrong value: say that, not "should be float or none"
                    raise
                continue
        raise SchemaError(path, f"{path} = {value!r} should be {_type_name(tp)}")
    if origin is list:
        (inner,) = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise SchemaError(path, f"{path} = {value!r} should be a {_type_name(tp)}")
        return [_check(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise SchemaError(path, f"{path} should be a table, got {value!r}")
        return build(cast(type, tp), value, path)  # tp is a type hint: a dataclass class, never an instance
    if tp is type(None):
        if value is None:
            return None
        raise SchemaError(path, f"{path} should be empty")
    if tp is float:
        # TOML writes 1e7 as float but 10 as int; both mean a float here. bool is not a number.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond float's range
                number = math.inf
            if not math.isfinite(number):
                # nan/inf never mean anything here: lr=inf or a nan penalty only trains to NaN.
                raise SchemaError(path, f"{path} = {value!r} is not a finite number", out_of_range=True)
            return number
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT_MIN <= value <= INT_MAX:
                raise SchemaError(path, f"{path} = {value!r} is out of range (a 64-bit integer)", out_of_range=True)
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a schema bug, not user input
        raise TypeError(f"unsupported annotation {tp!r} at {path}")
    raise SchemaError(path, f"{path} = {value!r} should be {_type_name(tp)}, not {type(value).__name__}")


def build(cls: type, table: dict[str, Any], path: str = "") -> Any:
    """Validate `table` against dataclass `cls` and return an instance."""
    if not isinstance(table, dict):
        raise SchemaError(path, f"{path or 'config'} should be a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        sub = f"{path}.{key}" if path else key
        if key not in fields:
            near = close_matches(key, fields)
            # Full key paths (training.lr, not lr): the user types the path, so the hint gives one.
            hint = f" Closest valid keys: {', '.join(f'{path}.{n}' if path else n for n in near)}." if near else ""
            valid = f" Valid keys here: {', '.join(fields)}." if fields else " This table takes no keys."
            raise SchemaError(sub, f"unknown key {sub!r}.{hint or valid}")
        kwargs[key] = _check(hints[key], value, sub)
    try:
        return cls(**kwargs)
    except ValueError as e:  # __post_init__ range checks
        raise SchemaError(*_range_message(str(e), path, fields)) from None


def _range_message(msg: str, path: str, fields: dict[str, Any]) -> tuple[str, str]:
    """(key path, message) of a `__post_init__` error: a message that starts with one of the table's
    field names gets the table's path in front of it, so it names the full key."""
    m = re.match(r"[A-Za-z_]\w*", msg)
    if m and m.group() in fields:
        key = f"{path}.{m.group()}" if path else m.group()
        return key, f"{path}.{msg}" if path else msg
    return path, f"{path or 'config'}: {msg}"


def memory_bytes() -> int:
    """This machine's physical memory in bytes (what a size check compares its estimate with); 0 if unknown."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX, or the name is unknown here
        return 0


def check_fits(key: str, value: Any, nbytes: float, what: str) -> None:
    """ValueError naming `key` when `nbytes` (an estimate, a lower bound) exceeds this machine's memory.

    Used by `__post_init__` range checks, so a size that cannot fit is refused before anything starts
    instead of running out of memory minutes later. GPU memory is not probed here (that would need
    torch and the device at validation time); a run that fits in RAM but not on the GPU fails with
    CUDA's out-of-memory error in its record."""
    total = memory_bytes()
    if total and nbytes > total:
        raise ValueError(f"{key} = {value!r} needs at least {nbytes / 2**30:,.1f} GiB for {what}, "
                         f"more than this machine's {total / 2**30:,.1f} GiB of memory")


def to_dict(obj: Any) -> Any:
    """A dataclass instance as plain dicts/lists (inverse of `build`)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def field_docs(cls: type) -> dict[str, str]:
    """Field name → help text, read from `metadata['help']`."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def opt(default: Any, help: str) -> Any:
    """A dataclass field with a default and a help text (shown by `cltui presets show` and the TUI)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def check_all_or_count(options: Any, *names: str) -> None:
    """For an options dataclass's __post_init__: each named int field is -1 (all) or a count >= 1."""
    for n in names:
        value = getattr(options, n)
        if value == 0 or value < -1:
            raise ValueError(f"{n} = {value!r} must be -1 (all) or >= 1")
