"""Bounded structures for the report's aggregation (pure): log-binned histograms, a time
series whose bins widen so any crawl fits, and a top-K heap. Each holds a fixed amount of
memory whatever the number of records it is fed."""

from __future__ import annotations

import dataclasses
import heapq
import math
from typing import Generic, TypeVar

from .model import STATUS_CLASSES

T = TypeVar("T")


class LogHistogram:
    """Counts in log-spaced bins, ``per_decade`` bins per factor of ten from ``low`` to
    ``high``. Values at or below ``low`` land in an underflow bin, values at or above ``high``
    in an overflow bin; min, max and the sum are kept exactly."""

    def __init__(self, low: float, high: float, per_decade: int = 50) -> None:
        self.low = low
        self.high = high
        self.per_decade = per_decade
        self.bins = round(math.log10(high / low) * per_decade)
        self.counts = [0] * (self.bins + 2)
        self.n = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self._scale = per_decade / math.log(10)
        self._log_low = math.log(low)

    def add(self, value: float) -> None:
        if value <= self.low:
            i = 0
        else:
            # the epsilon puts a value on a bin edge (0.001 s) in the bin it starts, despite
            # rounding in the logarithms
            i = 1 + int((math.log(value) - self._log_low) * self._scale + 1e-9)
            if i > self.bins:
                i = self.bins + 1
        self.counts[i] += 1
        self.n += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def edge(self, i: int) -> float:
        """The lower edge of bin ``i`` (1-based; bin 0 is the underflow)."""
        return float(self.low * 10 ** ((i - 1) / self.per_decade))

    def quantile(self, q: float) -> float | None:
        """The value below which a fraction ``q`` of the values lie (None when empty)."""
        if not self.n:
            return None
        if q <= 0 or q >= 1:
            return self.min if q <= 0 else self.max
        target = q * self.n
        seen = 0
        for i, count in enumerate(self.counts):
            if not count:
                continue
            if seen + count >= target:
                if i == 0:
                    value = self.min
                elif i > self.bins:
                    value = self.max
                else:
                    lo, hi = self.edge(i), self.edge(i + 1)
                    value = lo * (hi / lo) ** max(0.0, (target - seen) / count)
                return min(max(value, self.min), self.max)
            seen += count
        return self.max

    def view(self, per_decade: int) -> HistogramView:
        """The histogram regrouped into ``per_decade`` bins per decade (which must divide
        ``self.per_decade``) over the decades that hold values."""
        if not self.n:
            return HistogramView((), (), 0, None, None, None, None, None, 0.0)
        step = self.per_decade // per_decade
        filled = [i for i, count in enumerate(self.counts) if count]
        # whole decades from the first value to the last, so ticks fall on 1, 10, 100...
        lo_dec = (min(max(filled[0], 1), self.bins) - 1) // self.per_decade
        hi_dec = (min(max(filled[-1], 1), self.bins) - 1) // self.per_decade + 1
        edges: list[float] = []
        counts: list[int] = []
        for group in range(lo_dec * per_decade, hi_dec * per_decade):
            start = 1 + group * step
            edges.append(self.edge(start))
            counts.append(sum(self.counts[start : start + step]))
        edges.append(self.edge(1 + hi_dec * self.per_decade))
        counts[0] += self.counts[0]  # at or below ``low``
        counts[-1] += self.counts[-1]  # at or above ``high``
        return HistogramView(
            tuple(edges),
            tuple(counts),
            self.n,
            self.quantile(0.5),
            self.quantile(0.9),
            self.quantile(0.99),
            self.min,
            self.max,
            self.sum / self.n,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class HistogramView:
    """A histogram to draw: ``counts[i]`` values between ``edges[i]`` and ``edges[i + 1]``
    (the first bin also holds what lies below, the last what lies above)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    n: int
    p50: float | None
    p90: float | None
    p99: float | None
    min: float | None
    max: float | None
    mean: float


#: Bin widths in milliseconds; each divides the next, so bins merge exactly when they widen.
_WIDTHS_MS = (
    10,
    20,
    100,
    200,
    1_000,
    2_000,
    10_000,
    20_000,
    60_000,
    120_000,
    600_000,
    1_200_000,
    3_600_000,
    7_200_000,
    21_600_000,
    43_200_000,
    86_400_000,
)


class TimeSeries:
    """Records per status class over wall-clock time, in at most ``max_bins`` bins."""

    def __init__(self, max_bins: int = 120) -> None:
        self.max_bins = max_bins
        self.width_ms = _WIDTHS_MS[0]
        self.bins: dict[int, list[int]] = {}
        self._lo = 0
        self._hi = -1

    def add(self, t: float, cls: int) -> None:
        key = int(t * 1000) // self.width_ms
        counts = self.bins.get(key)
        if counts is None:
            counts = self.bins[key] = [0] * len(STATUS_CLASSES)
            if self._hi < self._lo:
                self._lo = self._hi = key
            elif key < self._lo:
                self._lo = key
            elif key > self._hi:
                self._hi = key
            while self._hi - self._lo + 1 > self.max_bins:
                self._widen()
                counts = self.bins[int(t * 1000) // self.width_ms]
        counts[cls] += 1

    def _widen(self) -> None:
        i = _WIDTHS_MS.index(self.width_ms) if self.width_ms in _WIDTHS_MS else len(_WIDTHS_MS)
        wider = _WIDTHS_MS[i + 1] if i + 1 < len(_WIDTHS_MS) else self.width_ms * 2
        factor = wider // self.width_ms
        merged: dict[int, list[int]] = {}
        for key, counts in self.bins.items():
            into = merged.get(key // factor)
            if into is None:
                merged[key // factor] = list(counts)
            else:
                for j, c in enumerate(counts):
                    into[j] += c
        self.bins = merged
        self.width_ms = wider
        self._lo //= factor
        self._hi //= factor

    def view(self) -> TimelineView | None:
        if not self.bins:
            return None
        empty = [0] * len(STATUS_CLASSES)
        rows = tuple(tuple(self.bins.get(k, empty)) for k in range(self._lo, self._hi + 1))
        return TimelineView(self._lo * self.width_ms / 1000, self.width_ms / 1000, rows)


@dataclasses.dataclass(frozen=True, slots=True)
class TimelineView:
    """``bins[i][c]``: records of status class ``STATUS_CLASSES[c]`` made between
    ``start + i * width`` and ``start + (i + 1) * width`` (epoch seconds)."""

    start: float
    width: float
    bins: tuple[tuple[int, ...], ...]


class TopK(Generic[T]):
    """The ``k`` items of largest key; among equal keys, the first met."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._heap: list[tuple[float, int, T]] = []
        self._seq = 0

    def wants(self, key: float) -> bool:
        """Whether an item of this key would be kept (build the item only then)."""
        return len(self._heap) < self.k or key > self._heap[0][0]

    def add(self, key: float, item: T) -> None:
        self._seq += 1
        entry = (key, -self._seq, item)
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, entry)
        elif key > self._heap[0][0]:
            heapq.heapreplace(self._heap, entry)

    def items(self) -> list[T]:
        return [item for _, _, item in sorted(self._heap, key=lambda e: (-e[0], -e[1]))]
