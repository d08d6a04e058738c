"""Charts as inline SVG, drawn here (no library): every chart has a title, labelled axes with
units, and a ``<title>`` tooltip on each mark, so it reads without JavaScript.

Each function takes already aggregated data (a few hundred numbers at most) and returns
:class:`~.markup.Markup`. Sizes are in viewBox units; the page scales the SVG to its column.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from .bounded import HistogramView, TimelineView
from .markup import Markup, shorten, tag, void
from .model import STATUS_CLASSES

WIDTH = 640
HEIGHT = 300
FONT = 12

#: Colour of each status class (colour-blind-safe enough: hue and lightness both differ).
CLASS_COLOURS = {
    "2xx": "#2b8a3e",
    "3xx": "#1c7ed6",
    "4xx": "#f59f00",
    "5xx": "#e03131",
    "other": "#495057",
    "no response": "#9c36b5",
    "not fetched": "#adb5bd",
}
BAR = "#4c6ef5"
MARKERS = ("#2b8a3e", "#f08c00", "#c92a2a")


# --------------------------------------------------------------------------- number formats
def fmt_count(n: float) -> str:
    if n >= 10_000:
        for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if n >= size:
                value = n / size
                return f"{value:.0f}{unit}" if value >= 10 else f"{value:.1f}{unit}"
    return f"{n:,.0f}" if n == int(n) else f"{n:,.1f}"


def fmt_seconds(s: float) -> str:
    if s < 0.001:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        ms = s * 1000
        return f"{_trim(f'{ms:.1f}')} ms" if ms < 10 else f"{ms:.0f} ms"
    if s < 60:
        return f"{_trim(f'{s:.2f}')} s" if s < 10 else f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min" if s < 600 else f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h" if s < 36_000 else f"{s / 3600:.0f} h"


def _trim(number: str) -> str:
    """``1.50`` -> ``1.5``, ``2.00`` -> ``2``."""
    return number.rstrip("0").rstrip(".") if "." in number else number


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            value = n / size
            return (
                f"{value:.0f} {unit}"
                if value >= 100 or value == int(value)
                else (f"{value:.1f} {unit}")
            )
    return f"{n:.0f} B"


def nice_step(span: float, ticks: int = 5) -> float:
    """A step of 1, 2 or 5 times a power of ten giving about ``ticks`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return float(factor * power)
    return float(10 * power)


# --------------------------------------------------------------------------- frame
class _Frame:
    """The plot area of one chart and its SVG parts."""

    def __init__(
        self, *, left: float = 64, right: float = 20, top: float = 16, bottom: float = 52
    ) -> None:
        self.left = left
        self.right = WIDTH - right
        self.top = top
        self.bottom = HEIGHT - bottom
        self.parts: list[Markup] = []

    @property
    def w(self) -> float:
        return self.right - self.left

    @property
    def h(self) -> float:
        return self.bottom - self.top

    def add(self, part: Markup) -> None:
        self.parts.append(part)

    def text(self, x: float, y: float, label: str, **attrs: object) -> None:
        self.parts.append(tag("text", {"x": _n(x), "y": _n(y), **attrs}, label))

    def y_axis(self, top: float, title: str) -> None:
        """A linear y axis from 0 to ``top`` with gridlines and a rotated title."""
        step = nice_step(top)
        value = 0.0
        while value <= top * 1.0001:
            y = self.bottom - value / top * self.h if top else self.bottom
            self.add(
                void(
                    "line",
                    {
                        "class": "grid",
                        "x1": _n(self.left),
                        "x2": _n(self.right),
                        "y1": _n(y),
                        "y2": _n(y),
                    },
                )
            )
            self.text(self.left - 6, y + 4, fmt_count(value), **{"text-anchor": "end"})
            value += step
        mid = (self.top + self.bottom) / 2
        self.add(
            tag(
                "text",
                {
                    "class": "axis-title",
                    "transform": f"translate(14 {_n(mid)}) rotate(-90)",
                    "text-anchor": "middle",
                },
                title,
            )
        )

    def x_title(self, title: str) -> None:
        self.text(
            (self.left + self.right) / 2,
            HEIGHT - 10,
            title,
            **{"class": "axis-title", "text-anchor": "middle"},
        )

    def x_tick(self, x: float, label: str, anchor: str = "middle") -> None:
        self.add(
            void(
                "line",
                {
                    "class": "tick",
                    "x1": _n(x),
                    "x2": _n(x),
                    "y1": _n(self.bottom),
                    "y2": _n(self.bottom + 5),
                },
            )
        )
        self.text(x, self.bottom + 18, label, **{"text-anchor": anchor})

    def axes(self) -> None:
        self.add(
            void(
                "line",
                {
                    "class": "axis",
                    "x1": _n(self.left),
                    "x2": _n(self.right),
                    "y1": _n(self.bottom),
                    "y2": _n(self.bottom),
                },
            )
        )
        self.add(
            void(
                "line",
                {
                    "class": "axis",
                    "x1": _n(self.left),
                    "x2": _n(self.left),
                    "y1": _n(self.top),
                    "y2": _n(self.bottom),
                },
            )
        )

    def svg(self, chart_id: str, title: str, description: str, height: float = HEIGHT) -> Markup:
        return tag(
            "svg",
            {
                "xmlns": "http://www.w3.org/2000/svg",
                "class": "chart",
                "id": chart_id,
                "viewBox": f"0 0 {WIDTH} {_n(height)}",
                "role": "img",
                "aria-labelledby": f"{chart_id}-title {chart_id}-desc",
                "font-size": FONT,
            },
            tag("title", {"id": f"{chart_id}-title"}, title),
            tag("desc", {"id": f"{chart_id}-desc"}, description),
            *self.parts,
        )


def _n(x: float) -> str:
    """A coordinate, short."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str, cls: str = "bar") -> Markup:
    return tag(
        "rect",
        {
            "class": cls,
            "x": _n(x),
            "y": _n(y),
            "width": _n(max(w, 0.0)),
            "height": _n(max(h, 0.0)),
            "fill": fill,
        },
        tag("title", None, tip),
    )


def empty_chart(chart_id: str, title: str, message: str) -> Markup:
    frame = _Frame()
    frame.text(WIDTH / 2, HEIGHT / 2, message, **{"class": "empty", "text-anchor": "middle"})
    return frame.svg(chart_id, title, message)


# --------------------------------------------------------------------------- the charts
def timeline_chart(timeline: TimelineView | None, chart_id: str = "chart-timeline") -> Markup:
    """Records per time bin, stacked by status class, with a legend."""
    title = "Pages and failures over time"
    if timeline is None or not timeline.bins:
        return empty_chart(chart_id, title, "no record carries a time (fetched_at)")
    present = [i for i in range(len(STATUS_CLASSES)) if any(b[i] for b in timeline.bins)]
    frame = _Frame(top=36)
    peak = max(sum(b) for b in timeline.bins) or 1
    top = _round_up(peak)
    width_label = fmt_seconds(timeline.width)
    frame.y_axis(top, f"pages per {width_label}")
    n = len(timeline.bins)
    slot = frame.w / n
    gap = min(1.0, slot * 0.15)
    for i, counts in enumerate(timeline.bins):
        y = frame.bottom
        x = frame.left + i * slot + gap / 2
        at = timeline.start + i * timeline.width
        label = time.strftime("%H:%M:%S", time.localtime(at))
        for c in present:
            if not counts[c]:
                continue
            h = counts[c] / top * frame.h
            y -= h
            tip = f"{label} +{width_label}: {counts[c]:,} {STATUS_CLASSES[c]}"
            frame.add(_rect(x, y, slot - gap, h, CLASS_COLOURS[STATUS_CLASSES[c]], tip))
    span = n * timeline.width
    unit, scale = (
        ("s", 1.0) if span <= 180 else ("min", 60.0) if span <= 3 * 3600 else ("h", 3600.0)
    )
    step = nice_step(span / scale, 6)
    value = 0.0
    while value <= span / scale + 1e-9:
        x = frame.left + value * scale / span * frame.w
        frame.x_tick(x, f"{value:g}")
        value += step
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timeline.start))
    frame.x_title(f"time since {started} ({unit})")
    frame.axes()
    # legend, one row above the plot
    x = frame.left
    for c in present:
        name = STATUS_CLASSES[c]
        frame.add(
            void(
                "rect",
                {"x": _n(x), "y": "10", "width": "12", "height": "12", "fill": CLASS_COLOURS[name]},
            )
        )
        frame.text(x + 16, 20.5, name, **{"class": "legend"})
        x += 16 + 7.2 * len(name) + 18
    total = sum(sum(b) for b in timeline.bins)
    return frame.svg(
        chart_id,
        title,
        f"{total:,} records in {n} bins of {width_label}, stacked by status class",
    )


def histogram_chart(
    view: HistogramView,
    *,
    chart_id: str,
    title: str,
    x_title: str,
    fmt: str,
    empty: str,
) -> Markup:
    """A histogram over log-spaced bins with decade ticks; p50, p90 and p99 marked."""
    if not view.n:
        return empty_chart(chart_id, title, empty)
    formatter = fmt_seconds if fmt == "seconds" else fmt_bytes
    frame = _Frame(top=36)
    top = _round_up(max(view.counts) or 1)
    frame.y_axis(top, "pages")
    lo, hi = math.log10(view.edges[0]), math.log10(view.edges[-1])

    def x_of(value: float) -> float:
        v = min(max(value, view.edges[0]), view.edges[-1])
        return frame.left + (math.log10(v) - lo) / (hi - lo) * frame.w

    for i, count in enumerate(view.counts):
        x0, x1 = x_of(view.edges[i]), x_of(view.edges[i + 1])
        h = count / top * frame.h
        tip = f"{formatter(view.edges[i])} to {formatter(view.edges[i + 1])}: {count:,} pages"
        frame.add(_rect(x0 + 0.5, frame.bottom - h, x1 - x0 - 1, h, BAR, tip))
    decades = round(hi - lo)
    for k in range(round(lo), round(hi) + 1):
        frame.x_tick(x_of(10.0**k), formatter(10.0**k))
        if decades <= 2 and k < round(hi):
            for m in (2, 5):
                frame.x_tick(x_of(m * 10.0**k), formatter(m * 10.0**k))
    frame.x_title(x_title)
    frame.axes()
    # dashed lines at p50, p90 and p99; their values in a legend row above the plot (labels
    # beside the lines would collide when the percentiles are close)
    marks = [("p50", view.p50), ("p90", view.p90), ("p99", view.p99)]
    x_legend = frame.left
    for (name, value), colour in zip(marks, MARKERS, strict=True):
        if value is None:
            continue
        x = x_of(value)
        frame.add(
            tag(
                "line",
                {
                    "class": "marker",
                    "x1": _n(x),
                    "x2": _n(x),
                    "y1": _n(frame.top - 4),
                    "y2": _n(frame.bottom),
                    "stroke": colour,
                },
                tag("title", None, f"{name}: {formatter(value)}"),
            )
        )
        label = f"{name} {formatter(value)}"
        frame.add(
            void(
                "line",
                {
                    "class": "marker",
                    "x1": _n(x_legend),
                    "x2": _n(x_legend + 18),
                    "y1": "16",
                    "y2": "16",
                    "stroke": colour,
                },
            )
        )
        frame.text(x_legend + 23, 20.5, label, **{"class": "marker-label", "fill": colour})
        x_legend += 23 + 7.4 * len(label) + 22
    return frame.svg(
        chart_id,
        title,
        f"{view.n:,} pages; median {formatter(view.p50 or 0)}, p90 {formatter(view.p90 or 0)}, "
        f"p99 {formatter(view.p99 or 0)}",
    )


def depth_chart(depths: Sequence[tuple[int, int]], chart_id: str = "chart-depth") -> Markup:
    """Records per link depth (0: the seeds)."""
    title = "Pages by depth"
    if not depths:
        return empty_chart(chart_id, title, "no records")
    frame = _Frame()
    deepest = max(d for d, _ in depths)
    counts = dict(depths)
    top = _round_up(max(counts.values()))
    frame.y_axis(top, "pages")
    n = deepest + 1
    slot = frame.w / n
    every = max(1, math.ceil(n / 16))
    for d in range(n):
        count = counts.get(d, 0)
        x = frame.left + d * slot
        h = count / top * frame.h
        label = f"{d}+" if d == 50 else str(d)
        frame.add(
            _rect(
                x + slot * 0.1,
                frame.bottom - h,
                slot * 0.8,
                h,
                BAR,
                f"depth {label}: {count:,} pages",
            )
        )
        if d % every == 0:
            frame.x_tick(x + slot / 2, label)
    frame.x_title("depth (links from a seed; 0 = the seeds)")
    frame.axes()
    return frame.svg(chart_id, title, f"pages at depths 0 to {deepest}")


def hbar_chart(
    rows: Sequence[tuple[str, float, str]],
    *,
    chart_id: str,
    title: str,
    x_title: str,
    empty: str,
    colours: Sequence[str] | None = None,
) -> Markup:
    """Horizontal bars: (label, value, value as text) per row, largest first."""
    if not rows:
        return empty_chart(chart_id, title, empty)
    row_h = 22
    frame = _Frame(left=200, right=150, top=16)
    frame.bottom = frame.top + len(rows) * row_h
    height = frame.bottom + 44
    peak = max(v for _, v, _ in rows) or 1.0
    for i, (label, value, text) in enumerate(rows):
        y = frame.top + i * row_h
        w = value / peak * frame.w
        colour = colours[i] if colours else BAR
        frame.add(_rect(frame.left, y + 3, w, row_h - 6, colour, f"{label}: {text}"))
        frame.add(
            tag(
                "text",
                {"x": _n(frame.left - 8), "y": _n(y + row_h / 2 + 4), "text-anchor": "end"},
                tag("title", None, label),
                shorten(label, 30),
            )
        )
        if w > frame.w * 0.6:  # a long bar: its figure inside it, where there is room
            frame.text(
                frame.left + w - 6,
                y + row_h / 2 + 4,
                text,
                **{"class": "value inside", "text-anchor": "end"},
            )
        else:
            frame.text(frame.left + w + 6, y + row_h / 2 + 4, text, **{"class": "value"})
    frame.add(
        void(
            "line",
            {
                "class": "axis",
                "x1": _n(frame.left),
                "x2": _n(frame.left),
                "y1": _n(frame.top),
                "y2": _n(frame.bottom),
            },
        )
    )
    frame.text(
        (frame.left + frame.right) / 2,
        frame.bottom + 28,
        x_title,
        **{"class": "axis-title", "text-anchor": "middle"},
    )
    return frame.svg(chart_id, title, f"{len(rows)} bars: {x_title}", height=height)


def _round_up(value: float) -> float:
    """``value`` rounded up to a whole number of nice steps (the top of a y axis)."""
    step = nice_step(value)
    return math.ceil(value / step) * step if value > 0 else 1.0
