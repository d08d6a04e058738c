"""What a setting means: the metadata each :class:`~trio_crawler.Settings` field carries
(:class:`Meaning`: its help text, the sane range of a number, its command-line flags), and
the pure functions that read it: the field's kind from its annotation (:func:`option_of`),
whether a value is in range (:func:`value_problem`), and the generated docstring
(:func:`document`). Nothing here knows the fields themselves: they are in :mod:`._settings`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import textwrap
from collections.abc import Sequence
from typing import Any

_KEY = "trio_crawler"


@dataclasses.dataclass(frozen=True, slots=True)
class Meaning:
    """What one :class:`Settings` field means, its sane range, and its command-line flags.

    ``low``/``high`` bound a number (``above``: ``low`` itself is excluded; numbers are
    always finite). ``flags`` set the field (a boolean: to True); ``off_flags`` set a boolean
    to False, described by ``off_help``. ``syntax`` is the text form of one entry of a
    repeatable pair flag (``"NAME: VALUE"``, ``"HOST=URL"``): the CLI splits it at its
    separator. ``shown`` replaces the default in ``--help`` (``1 GiB``). ``const``: the
    value a flag given without one sets (``--render`` alone is ``--render on``).
    """

    help: str
    group: str = ""
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    low: float | None = None
    high: float | None = None
    above: bool = False
    off_flags: tuple[str, ...] = ()
    off_help: str = ""
    syntax: str | None = None
    shown: str | None = None
    const: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SettingOption:
    """A field of :class:`Settings` with what its annotation says: ``kind`` is ``bool``,
    ``int``, ``float``, ``str``, ``tuple`` (of strings), ``pairs`` (a tuple of pairs) or
    ``mapping``; ``choices`` come from a ``Literal``."""

    name: str
    default: Any
    kind: str
    optional: bool
    choices: tuple[str, ...]
    meaning: Meaning


def setting(default: Any = None, help: str = "", *, factory: Any = None, **meaning: Any) -> Any:
    """A field with its meaning (typed ``Any`` so that each field keeps its own annotation)."""
    metadata = {_KEY: Meaning(help, **meaning)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def option_of(field: dataclasses.Field[Any]) -> SettingOption:
    annotation = str(field.type)
    optional = annotation.endswith("| None")
    base = annotation.removesuffix("| None").strip()
    choices = tuple(re.findall(r"[\"'](\w+)[\"']", base)) if base.startswith("Literal") else ()
    if base in ("bool", "int", "float", "str"):
        kind = base
    elif choices:
        kind = "str"
    elif base.startswith("tuple[tuple"):
        kind = "pairs"
    elif base.startswith("tuple"):
        kind = "tuple"
    elif base.startswith("Mapping"):
        kind = "mapping"
    else:  # pragma: no cover - a new annotation form must be named here
        raise TypeError(f"Settings.{field.name}: unknown annotation {annotation!r}")
    if field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        default = field.default
    meaning = field.metadata[_KEY]
    return SettingOption(field.name, default, kind, optional, choices, meaning)


def value_problem(option: SettingOption, value: Any) -> str | None:
    """What is wrong with ``value`` for the field (``"must be ..., not ..."``), or None."""
    if value is None:
        return None if option.optional else f"must be given, not {value!r}"
    if option.choices:
        if value not in option.choices:
            return f"must be {_either(option.choices)}, not {value!r}"
        return None
    m = option.meaning
    if option.kind not in ("int", "float") or (m.low is None and m.high is None):
        return None
    whole = option.kind == "int"
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return f"must be {_range(m, whole)}, not {value!r}"
    if not math.isfinite(value):
        return f"must be {_range(m, whole)}, not {value!r}"
    low_ok = m.low is None or (value > m.low if m.above else value >= m.low)
    if not low_ok or (m.high is not None and value > m.high):
        return f"must be {_range(m, whole)}, not {value!r}"
    return None


def _range(m: Meaning, whole: bool) -> str:
    what = "a whole number" if whole else "a number"
    low, high = _number(m.low), _number(m.high)
    if m.low is not None and m.high is not None:
        if m.above:
            return f"{what} above {low} and at most {high}"
        return f"{what} from {low} to {high}"
    if m.low is not None:
        return f"{what} above {low}" if m.above else f"{what} of at least {low}"
    return f"{what} of at most {high}"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:g}"


def _either(choices: tuple[str, ...]) -> str:
    return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]


def shown_default(option: SettingOption) -> str | None:
    """The default as ``--help`` and the docstring show it, or None when there is none."""
    if option.meaning.shown is not None:
        return option.meaning.shown
    value = option.default
    if value is None or value == ():
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return _number(value)
    return str(value)


def document(intro: str, options: Sequence[SettingOption]) -> str:
    """A docstring listing every field: its default, flags, range and meaning."""
    lines = [intro, "", "Fields (default; command-line flags; range):", ""]
    for option in options:
        m = option.meaning
        shown = shown_default(option)
        facts = [f"default {shown if shown is not None else repr(option.default)}"]
        flags = [*m.flags, *m.off_flags]
        if flags:
            facts.append(", ".join(flags))
        if option.choices:
            facts.append(_either(option.choices))
        elif m.low is not None or m.high is not None:
            facts.append(_range(m, option.kind == "int"))
        lines.append(f"{option.name}  ({'; '.join(facts)})")
        text = f"{m.help[0].upper()}{m.help[1:]}."
        lines.extend(textwrap.wrap(text, 88, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)
