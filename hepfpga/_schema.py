"""Typed construction of dataclasses from plain YAML data, with path-naming errors.

:func:`build` turns a mapping into a (possibly nested) dataclass instance. It accepts the
field types used in hepfpga configs: ``bool``, ``int``, ``float``, ``str``, ``Path``,
``Enum`` subclasses, ``Literal[...]``, ``X | None``, ``tuple[T, ...]``, ``dict[str, T]``,
nested dataclasses and tagged sections: a dataclass defining ``__schema_variant_key__`` (a
field name) and a classmethod ``__schema_variants__()`` (tag -> dataclass) is validated as
the dataclass its tag selects (``model.architecture: cnn`` -> the CNN's section). Every
error is a :class:`~hepfpga.errors.ConfigError` whose path is the dotted location of the bad
value (``training.optimizer``) and whose message says what is accepted; an unknown key also
names the closest valid key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import enum
import math
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from hepfpga.errors import ConfigError

T = TypeVar("T")

__all__ = ["MAX_INT", "build", "closest", "show", "to_plain"]

#: largest magnitude of an integer setting (a signed 64-bit integer, what NumPy and TensorFlow
#: take); YAML integers are unbounded
MAX_INT = 2**63 - 1

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3
_REPR.maxlong = 40


def show(value: Any) -> str:
    """``repr(value)`` cut to a line: a value put into an error message may be huge."""
    return _REPR.repr(value)


def closest(word: str, choices: typing.Iterable[str]) -> str | None:
    """The choice most similar to ``word`` (difflib ratio >= 0.5), or None."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def build(cls: type[T], data: Any, path: str = "", source: str | None = None) -> T:
    """Construct dataclass ``cls`` from ``data`` (a mapping), validating every value."""
    value = _convert(cls, data, path, source)
    return typing.cast(T, value)


def _build_dataclass(cls: type, data: Any, path: str, source: str | None) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of {cls.__name__} settings, "
            f"got {type(data).__name__} {show(data)}",
            path=path,
            source=source,
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if not isinstance(key, str) or key not in fields:
            hint = closest(str(key), fields)
            suggestion = f"; did you mean '{hint}'?" if hint else ""
            raise ConfigError(
                f"unknown key '{key}'{suggestion} Valid keys: {', '.join(sorted(fields))}",
                path=_join(path, str(key)),
                source=source,
            )
    kwargs = {
        name: _convert(hints[name], data[name], _join(path, name), source)
        for name in fields
        if name in data
    }
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # __post_init__ names the field relative to its dataclass; add where it lives
        # (unless the class already spelt out the full path, as FirmwareOptions does).
        full = exc.path
        if path and not (full == path or full.startswith((f"{path}.", f"{path}["))):
            full = _join(path, full) if full else path
        raise ConfigError(exc.message, path=full, source=exc.source or source) from exc
    except TypeError as exc:  # a required field without a default is missing
        missing = [
            n
            for n, f in fields.items()
            if n not in data
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        raise ConfigError(
            f"missing required key(s): {', '.join(missing) or str(exc)}",
            path=path,
            source=source,
        ) from exc


def _select_variant(base: type, data: dict, path: str, source: str | None) -> type:
    # A tagged section: the value of ``base.__schema_variant_key__`` (e.g. ``architecture``)
    # picks the dataclass that validates the rest of the section, from the registry that
    # ``base.__schema_variants__()`` returns (name -> dataclass).
    key = base.__schema_variant_key__  # type: ignore[attr-defined]
    variants: dict[str, type] = base.__schema_variants__()  # type: ignore[attr-defined]
    default = next(f.default for f in dataclasses.fields(base) if f.name == key)
    tag = data.get(key, default)
    if isinstance(tag, str) and tag in variants:
        return variants[tag]
    hint = closest(str(tag), variants)
    suggestion = f" (did you mean '{hint}'?)" if hint else ""
    raise ConfigError(
        f"invalid value {tag!r}{suggestion}; accepted: {', '.join(repr(v) for v in variants)}",
        path=_join(path, key),
        source=source,
    )


def _convert(tp: Any, value: Any, path: str, source: str | None) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, str) and hasattr(tp, "parse"):  # e.g. FixedType("ap_fixed<8,3>")
            try:
                return tp.parse(value)
            except ConfigError as exc:
                raise ConfigError(exc.message, path=path, source=source) from exc
        if "__schema_variants__" in vars(tp) and (value is None or isinstance(value, dict)):
            tp = _select_variant(tp, value or {}, path, source)
        return _build_dataclass(tp, value, path, source)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if value is None and len(non_none) < len(args):
            return None
        errors = []
        for option in non_none:
            try:
                return _convert(option, value, path, source)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"expected {_type_name(tp)}, got {show(value)}", path=path, source=source)
    if origin is typing.Literal:
        if value in args:
            return value
        hint = closest(str(value), [str(a) for a in args])
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise ConfigError(
            f"invalid value {show(value)}{suggestion}; "
            f"accepted: {', '.join(repr(a) for a in args)}",
            path=path,
            source=source,
        )
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        by_value = {str(m.value).lower(): m for m in tp}
        by_name = {m.name.lower(): m for m in tp}
        key = str(value).lower()
        if key in by_value:
            return by_value[key]
        if key in by_name:
            return by_name[key]
        accepted = [str(m.value) for m in tp]
        hint = closest(str(value), accepted)
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise ConfigError(
            f"invalid value {show(value)}{suggestion}; accepted: {', '.join(accepted)}",
            path=path,
            source=source,
        )
    if origin is tuple or tp is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(
                f"expected a list, got {type(value).__name__} {show(value)}",
                path=path,
                source=source,
            )
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, _join(path, i), source) for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(
                f"expected a list of {len(args)} values, got {len(value)}", path=path, source=source
            )
        return tuple(
            _convert(a, v, _join(path, i), source)
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(
                f"expected a mapping, got {type(value).__name__} {show(value)}",
                path=path,
                source=source,
            )
        return {str(k): _convert(args[1], v, _join(path, str(k)), source) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected true or false, got {show(value)}", path=path, source=source)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_INT:
                raise ConfigError(
                    f"expected an integer of at most 64 bits (|n| <= 2**63 - 1), got {show(value)}",
                    path=path,
                    source=source,
                )
            return value
        raise ConfigError(f"expected an integer, got {show(value)}", path=path, source=source)
    if tp is float:
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond float range
                number = math.inf
        elif isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None:
            raise ConfigError(f"expected a number, got {show(value)}", path=path, source=source)
        if not math.isfinite(number):
            # no setting means anything at infinity, and NaN compares false with every bound
            raise ConfigError(
                f"expected a finite number, got {show(value)} (.inf and .nan are not accepted)",
                path=path,
                source=source,
            )
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"expected a string, got {show(value)}", path=path, source=source)
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(f"expected a file path, got {show(value)}", path=path, source=source)
    raise TypeError(f"unsupported config field type {tp!r} at {path}")  # programming error


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain JSON/YAML-ready data (enums by value, paths as strings)."""
    if hasattr(obj, "to_hls"):  # fixed-point types are written as their C++ spelling
        return obj.to_hls()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple | list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    return obj
