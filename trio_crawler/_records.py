"""Items to records: what a spider yields, as plain JSON-able dicts (pure, synchronous).

Every item a spider yields goes through :func:`to_record`, which turns dicts, dataclasses,
attrs classes, pydantic models, NamedTuples and plain objects into a plain JSON-able ``dict``
so spider authors never write serialisation code. :func:`item_type_name` names the item's kind
(a SQLite table per kind). :func:`encode_json` is the one compact JSON encoder the outputs and
the stores share.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import decimal
import enum
import json
import math
import operator
import re
from collections.abc import Mapping
from typing import Any, TypeVar, cast

__all__ = ["encode_json", "item_type_name", "quick_pickle", "to_record"]

_C = TypeVar("_C", bound=type)


def quick_pickle(cls: _C) -> _C:
    """A slotted dataclass pickled in half the time: its state is one ``attrgetter`` call (a
    tuple), set back field by field. The dataclass module's own looks the fields up on every
    call. For what crosses between ``--processes`` on every page (requests, links, the
    generic spider's records): 4.5 us a link there and back, 2.2 with this. A state pickled
    by either one loads with the other."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    get = operator.attrgetter(*names)
    single = len(names) == 1
    set_field = object.__setattr__

    def __getstate__(self: object) -> tuple[Any, ...]:
        return (get(self),) if single else get(self)

    def __setstate__(self: object, state: tuple[Any, ...]) -> None:
        for name, value in zip(names, state, strict=True):
            set_field(self, name, value)

    setattr(cls, "__getstate__", __getstate__)  # noqa: B010  (a method on a built class)
    setattr(cls, "__setstate__", __setstate__)  # noqa: B010
    return cls

# One encoder, built once: ``json.dumps`` with non-default arguments builds a new one per call.
encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode

#: Values that are already plain JSON (exact types: subclasses such as enums take the slow path).
_PLAIN: frozenset[type] = frozenset({str, int, bool, type(None)})
#: Nesting deeper than this is written as ``str(value)`` (guards against cycles).
_MAX_DEPTH = 32


def to_record(item: object) -> dict[str, Any]:
    """Turn an item into a plain JSON-able ``dict``, so spider authors write no serialisation code.

    The item may be:

    * a mapping (keys are ``str()``-ed; an enum key becomes its value);
    * a dataclass instance (its fields; values are converted here, never deep-copied as
      :func:`dataclasses.asdict` would);
    * an attrs instance (the class has ``__attrs_attrs__``: its attribute names);
    * a pydantic v2 model (``model_dump(mode="json")``) or v1 model (``.dict()``; recognised by
      ``__fields__``) — both duck-typed, pydantic is never imported;
    * a NamedTuple (``_asdict()``);
    * any other object with a ``__dict__`` or ``__slots__`` (its public attributes, those not
      starting with ``_``);
    * a scalar or a list (a bare ``str``, a number...): the record is ``{"value": item}``.

    Values are converted recursively: ``datetime``/``date``/``time`` to ISO strings, enums to their
    value, ``bytes`` decoded as UTF-8 with ``errors="replace"``, sets/tuples/lists to lists (sets
    sorted when their items are comparable), ``Decimal`` to ``str``, NaN and infinities to
    ``None`` (as in JavaScript's ``JSON.stringify``), nested dataclasses/attrs/pydantic/NamedTuples
    and mappings to dicts. A nested plain object becomes the dict of its public attributes if its
    class keeps the default ``repr``, else ``str(value)``; anything else becomes ``str(value)``.
    """
    if type(item) is dict:
        return {
            (k if type(k) is str else _key(k)): (v if type(v) in _PLAIN else _value(v, 1))
            for k, v in item.items()
        }
    fields = _fields_of(item, 0)
    if fields is not None:
        return fields
    if not isinstance(item, (*_SCALAR_TYPES, type)):
        record = _public_attrs(item, 0)
        if record or not _has_custom_str(type(item)):
            return record
    return {"value": _value(item, 0)}


def item_type_name(item: object) -> str:
    """Name of the item's kind, used for table names; only ``[a-z0-9_]``.

    A mapping is ``"items"`` unless it has a ``str`` ``"_type"`` key, whose value is used (the
    generic spider's page records are dicts with ``"_type": "page"``). A scalar (``str``, number,
    list...) is ``"items"``. Any other object — dataclass, attrs, pydantic, NamedTuple, plain —
    is named after its class in snake_case (``PageRecord`` -> ``"page_record"``).
    """
    cls = type(item)
    name = _CLASS_NAMES.get(cls)
    if name is not None:
        return name
    if isinstance(item, Mapping):
        kind = item.get("_type")
        return _sanitise_name(kind) if isinstance(kind, str) else "items"
    is_named_tuple = isinstance(item, tuple) and hasattr(item, "_asdict")
    if isinstance(item, type) or (isinstance(item, _SCALAR_TYPES) and not is_named_tuple):
        return "items"
    name = _CLASS_NAMES[cls] = _sanitise_name(_snake_case(cls.__name__))
    return name


#: The names of the item classes met that are named after their class (items are named on
#: the hot path, once per page: 2 us each, 0.1 from here).
_CLASS_NAMES: dict[type, str] = {}


_SCALAR_TYPES = (
    str,
    bytes,
    bytearray,
    memoryview,
    int,
    float,
    complex,
    decimal.Decimal,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    enum.Enum,
    list,
    tuple,
    set,
    frozenset,
    type(None),
)

_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_UNSAFE_NAME_RE = re.compile(r"[^a-z0-9_]+")


def _snake_case(name: str) -> str:
    return _CAMEL_RE.sub("_", name)


def _sanitise_name(name: str) -> str:
    cleaned = _UNSAFE_NAME_RE.sub("_", name.lower()).strip("_")
    if not cleaned:
        return "items"
    if cleaned[0].isdigit():
        cleaned = "t_" + cleaned
    return cleaned


def _key(key: object) -> str:
    if isinstance(key, enum.Enum):
        return str(key.value)
    return str(key)


#: Field names of the dataclasses met (items are converted on the hot path: once per class).
_DATACLASS_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields_of(item: object, depth: int) -> dict[str, Any] | None:
    """The record of a structured item (mapping, dataclass, attrs, pydantic, NamedTuple)."""
    if isinstance(item, Mapping):
        return {_key(k): _value(v, depth + 1) for k, v in item.items()}
    if isinstance(item, type):
        return None
    cls = type(item)
    names = _DATACLASS_FIELDS.get(cls)
    if names is None and dataclasses.is_dataclass(item):
        names = _DATACLASS_FIELDS[cls] = tuple(f.name for f in dataclasses.fields(item))
    if names is not None:
        plain = _PLAIN
        out = {}
        for name in names:
            value = getattr(item, name)
            out[name] = value if type(value) in plain else _value(value, depth + 1)
        return out
    attrs_attrs = getattr(cls, "__attrs_attrs__", None)
    if attrs_attrs is not None:
        return {a.name: _value(getattr(item, a.name), depth + 1) for a in attrs_attrs}
    model_dump = getattr(item, "model_dump", None)
    if callable(model_dump):
        try:
            dumped = model_dump(mode="json")
        except TypeError:  # a model_dump() that takes no ``mode``
            dumped = model_dump()
        return _as_record(dumped, depth)
    if hasattr(cls, "__fields__"):
        as_dict = getattr(item, "dict", None)
        if callable(as_dict):
            return _as_record(as_dict(), depth)
    if isinstance(item, tuple):
        as_dict = getattr(item, "_asdict", None)
        if callable(as_dict):
            return _as_record(as_dict(), depth)
    return None


def _as_record(dumped: object, depth: int) -> dict[str, Any]:
    if isinstance(dumped, Mapping):
        return {_key(k): _value(v, depth + 1) for k, v in dumped.items()}
    return {"value": _value(dumped, depth + 1)}


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            if name not in ("__dict__", "__weakref__") and name not in names:
                names.append(name)
    return names


def _public_attrs(item: object, depth: int) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name in _slot_names(type(item)):
        if not name.startswith("_") and hasattr(item, name):
            record[name] = _value(getattr(item, name), depth + 1)
    for name, value in getattr(item, "__dict__", {}).items():
        if isinstance(name, str) and not name.startswith("_"):
            record[name] = _value(value, depth + 1)
    return record


def _value(value: object, depth: int) -> Any:
    """Convert one value to plain JSON data (see :func:`to_record`)."""
    cls = type(value)
    if cls in _PLAIN:
        return value
    if cls is float:
        return value if math.isfinite(cast(float, value)) else None
    if depth >= _MAX_DEPTH:
        return str(value)
    depth += 1
    if cls is list:
        plain = _PLAIN
        return [v if type(v) in plain else _value(v, depth) for v in cast(list[Any], value)]
    if cls is dict:
        plain = _PLAIN
        return {
            (k if type(k) is str else _key(k)): (v if type(v) in plain else _value(v, depth))
            for k, v in cast(dict[Any, Any], value).items()
        }
    depth -= 1
    if isinstance(value, enum.Enum):
        return _value(value.value, depth + 1)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # NaN and infinities are not JSON
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_value(v, depth + 1) for v in value]
    fields = _fields_of(value, depth)
    if fields is not None:
        return fields
    if isinstance(value, tuple):
        return [_value(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        items = [_value(v, depth + 1) for v in value]
        with contextlib.suppress(TypeError):  # mixed types keep their iteration order
            items.sort()
        return items
    if not isinstance(value, type) and not _has_custom_str(cls):
        return _public_attrs(value, depth)
    return str(value)


def _has_custom_str(cls: type) -> bool:
    """Whether ``str()`` of an instance says more than ``<Class object at 0x...>``."""
    return cls.__repr__ is not _OBJECT_REPR or cls.__str__ is not _OBJECT_STR


_OBJECT_REPR: object = object.__repr__
_OBJECT_STR: object = object.__str__
