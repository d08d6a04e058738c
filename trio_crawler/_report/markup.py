"""Escaping by default: every string that reaches the HTML goes through :func:`esc` unless it
is :class:`Markup` this package built. URLs, titles, anchor texts and error messages come from
hostile sites: they are text, never markup.

:func:`tag` escapes attribute values and children; :func:`href` gives a link target only for
``http(s)`` URLs (a ``javascript:`` URL in a hostile JSON Lines file stays inert text).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping

#: C0 controls (but tab, newline, carriage return), DEL, C1 controls and lone surrogates
#: (json.loads lets "\\ud800" through; it cannot be encoded as UTF-8).
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
#: Longest URL a report links to; longer ones are shown as text only.
MAX_HREF = 4096


class Markup(str):
    """A string that is already HTML (built here, its parts escaped)."""

    __slots__ = ()


def clean(text: str) -> str:
    """``text`` with control characters and lone surrogates replaced by U+FFFD."""
    return _UNSAFE.sub("\ufffd", text)


def esc(value: object) -> Markup:
    """``value`` as HTML text (Markup passes through unchanged)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(clean(str(value)), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Markup:
    return Markup(esc(sep).join(esc(p) for p in parts))


def tag(name: str, attrs: Mapping[str, object] | None = None, *children: object) -> Markup:
    """``<name attrs>children</name>``; an attribute whose value is None or False is left
    out, True writes the bare name."""
    out = [f"<{name}"]
    for key, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        out.append(f" {key}" if value is True else f' {key}="{esc(value)}"')
    out.append(">")
    out.extend(esc(child) for child in children)
    out.append(f"</{name}>")
    return Markup("".join(out))


def void(name: str, attrs: Mapping[str, object] | None = None) -> Markup:
    """An element with no content (``<rect .../>`` in SVG, ``<input>`` in HTML)."""
    out = [f"<{name}"]
    for key, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        out.append(f" {key}" if value is True else f' {key}="{esc(value)}"')
    out.append("/>" if name in _SVG_VOID else ">")
    return Markup("".join(out))


_SVG_VOID = frozenset({"rect", "line", "path", "circle", "polyline"})


def href(url: str) -> str | None:
    """``url`` if a report may link to it (http or https, not absurdly long), else None."""
    low = url[:8].lower()
    if (low.startswith("http://") or low.startswith("https://")) and len(url) <= MAX_HREF:
        return url
    return None


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "…"
