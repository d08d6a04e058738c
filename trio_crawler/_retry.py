"""What to retry and when. Pure and synchronous: the engine asks, the frontier waits.

Theory of operation
-------------------
After every try of a URL the engine asks :class:`RetryPolicy` what to do:

* :meth:`RetryPolicy.for_status` for an HTTP answer. ``None`` means the answer is final and
  goes to the spider. 408, 429, 500, 502, 503 and 504 are worth another try: the URL goes back
  to the frontier with a ``delay`` (the server's ``Retry-After`` if it sent one, else
  exponential backoff with full jitter). 429 and 503 speak for the whole host, so they also
  carry a ``host_delay`` that pushes back every request to that host, not only this URL.
* :meth:`RetryPolicy.for_error` for a failure without an answer (a :class:`FailureKind`):
  the kinds in :data:`RETRYABLE_KINDS` are tried again with backoff, the rest given up at once.

``attempt`` counts the retries made so far (0 after the first try), so a URL gets
``max_retries + 1`` tries in all. A decision with ``retry=False`` names in ``give_up`` the
failure kind to record. Waiting happens in the frontier (a next-allowed time), never by
holding a fetcher.

:class:`AdaptiveDelay` is the optional per-host throttle (``adaptive_throttle``): the delay
between requests follows the observed latency and doubles on 429/503.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import math
import random
import re
from collections.abc import Mapping

from ._exceptions import RETRYABLE_KINDS, FailureKind
from ._settings import Settings

__all__ = [
    "RETRYABLE_STATUSES",
    "AdaptiveDelay",
    "RetryDecision",
    "RetryPolicy",
    "parse_retry_after",
]

#: Statuses worth another try.
RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
#: Statuses that slow the whole host down, not only the URL.
HOST_BACKOFF_STATUSES: frozenset[int] = frozenset({429, 503})

# RFC 9110 delta-seconds is 1*DIGIT; a decimal fraction is tolerated.
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Beyond this exponent 2**attempt says nothing more (and a float product could overflow).
_MAX_EXPONENT = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do with a URL after a failed try."""

    retry: bool
    delay: float = 0.0
    """Seconds before the next try of this URL (waited in the frontier, not in a fetcher)."""
    host_delay: float | None = None
    """Push the whole host's next allowed request time to now + this (429/503)."""
    give_up: FailureKind | None = None
    """When ``retry`` is False because of a failure: the kind to record."""
    reason: str = ""


def parse_retry_after(value: str | None, *, now_wall: float) -> float | None:
    """Seconds to wait from a Retry-After value, or ``None`` when there is none to use.

    Accepts delta-seconds (``'120'``) and an HTTP-date in any of its three forms (IMF-fixdate
    ``'Wed, 21 Oct 2015 07:28:00 GMT'``, RFC 850, asctime), measured from ``now_wall`` (Unix
    time). A date in the past gives ``0.0``; garbage and negative numbers give ``None``.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime and "-0000" carry no zone: HTTP dates are in UTC
        when = when.replace(tzinfo=datetime.UTC)
    try:
        delta = when.timestamp() - now_wall
    except (OverflowError, OSError, ValueError):
        return None
    return max(0.0, delta)


class RetryPolicy:
    """Decides, from a try's outcome, whether to try a URL again and after how long.

    ``rng`` makes the jitter reproducible in tests (``random.Random(seed)``).
    """

    def __init__(
        self,
        *,
        max_retries: int,
        backoff: float,
        backoff_max: float,
        max_retry_after: float,
        rng: random.Random | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {max_retries!r}")
        for name, number in (
            ("backoff", backoff),
            ("backoff_max", backoff_max),
            ("max_retry_after", max_retry_after),
        ):
            if not number >= 0:  # also rejects NaN
                raise ValueError(f"{name} must be at least 0, not {number!r}")
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._rng = rng if rng is not None else random.Random()

    @classmethod
    def from_settings(cls, settings: Settings, rng: random.Random | None = None) -> RetryPolicy:
        return cls(
            max_retries=settings.max_retries,
            backoff=settings.retry_backoff,
            backoff_max=settings.retry_backoff_max,
            max_retry_after=settings.max_retry_after,
            rng=rng,
        )

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter.

        ``uniform(0, min(backoff_max, backoff * 2**attempt))``, where ``attempt`` is the number
        of retries made so far (0-based).
        """
        if attempt < 0:
            raise ValueError(f"attempt must be 0 or more, not {attempt!r}")
        ceiling = min(self.backoff_max, self.backoff * 2.0 ** min(attempt, _MAX_EXPONENT))
        return self._rng.uniform(0.0, ceiling)

    def for_status(
        self, status: int, headers: Mapping[str, str], *, attempt: int, now_wall: float
    ) -> RetryDecision | None:
        """The decision for an HTTP answer, or ``None`` when the answer is final.

        ``headers`` is looked up for ``'retry-after'`` (the engine passes a case-insensitive
        mapping); ``now_wall`` is the wall-clock Unix time, for an HTTP-date Retry-After.

        For 429 and 503 ``host_delay`` is set even when the URL is given up: the server asked
        the whole host to slow down. It is the Retry-After (capped at ``max_retry_after``) or,
        without one, the backoff delay.
        """
        if status not in RETRYABLE_STATUSES:
            return None
        raw = headers.get("retry-after")
        if raw is None:
            raw = headers.get("Retry-After")
        retry_after = parse_retry_after(raw, now_wall=now_wall)
        delay = retry_after if retry_after is not None else self.backoff_delay(attempt)
        host_delay = min(delay, self.max_retry_after) if status in HOST_BACKOFF_STATUSES else None
        if attempt >= self.max_retries:
            tries = attempt + 1
            return RetryDecision(
                retry=False,
                host_delay=host_delay,
                give_up=FailureKind.HTTP_STATUS,
                reason=f"{status} after {tries} {'try' if tries == 1 else 'tries'}",
            )
        if retry_after is not None and retry_after > self.max_retry_after:
            return RetryDecision(
                retry=False,
                host_delay=host_delay,
                give_up=FailureKind.RETRY_AFTER_TOO_LONG,
                reason=(
                    f"{status} with Retry-After {retry_after:g}s "
                    f"(more than {self.max_retry_after:g}s)"
                ),
            )
        return RetryDecision(
            retry=True,
            delay=delay,
            host_delay=host_delay,
            reason=f"{status}, retry {attempt + 1} of {self.max_retries} in {delay:.2f}s",
        )

    def for_error(self, kind: FailureKind, *, attempt: int) -> RetryDecision:
        """The decision for a try that failed without an answer."""
        if kind not in RETRYABLE_KINDS:
            return RetryDecision(retry=False, give_up=kind, reason=f"{kind.value} is final")
        if attempt >= self.max_retries:
            tries = attempt + 1
            return RetryDecision(
                retry=False,
                give_up=kind,
                reason=f"{kind.value} after {tries} {'try' if tries == 1 else 'tries'}",
            )
        delay = self.backoff_delay(attempt)
        return RetryDecision(
            retry=True,
            delay=delay,
            reason=f"{kind.value}, retry {attempt + 1} of {self.max_retries} in {delay:.2f}s",
        )


class AdaptiveDelay:
    """Optional adaptive throttle for one host (pure): the delay follows observed latency and
    backs off on 429/503. Unlike Scrapy's AutoThrottle it reacts to 429/503.

    * A success (status below 400) moves the delay halfway toward
      ``latency / target_concurrency``.
    * 429 or 503 doubles it (from at least :attr:`BACKOFF_FLOOR`, so a zero delay backs off too).
    * An error (``status=None``) or another 4xx/5xx never lowers it: such answers are often
      fast and say nothing about the server's capacity. It may still rise toward the latency.

    The delay always stays within ``[minimum, maximum]``.
    """

    BACKOFF_FLOOR = 0.25
    """Smallest delay a 429/503 backs off to (seconds), whatever the delay was."""

    def __init__(
        self,
        *,
        start: float,
        minimum: float,
        maximum: float,
        target_concurrency: float = 1.0,
    ) -> None:
        if not 0 <= minimum <= maximum:
            raise ValueError(f"need 0 <= minimum <= maximum, not {minimum!r}, {maximum!r}")
        if not target_concurrency > 0:
            raise ValueError(f"target_concurrency must be more than 0, not {target_concurrency!r}")
        self._minimum = minimum
        self._maximum = maximum
        self._target_concurrency = target_concurrency
        self._delay = self._clamp(start)

    def _clamp(self, delay: float) -> float:
        return min(self._maximum, max(self._minimum, delay))

    @property
    def delay(self) -> float:
        """Current seconds between request starts on the host."""
        return self._delay

    def observe(self, latency: float, status: int | None) -> float:
        """Account for one finished request and return the new delay."""
        if status in HOST_BACKOFF_STATUSES:
            self._delay = self._clamp(max(self._delay * 2.0, self.BACKOFF_FLOOR))
            return self._delay
        if not math.isfinite(latency) or latency < 0:
            return self._delay  # a clock glitch tells nothing
        halfway = (self._delay + latency / self._target_concurrency) / 2.0
        if status is not None and status < 400:
            self._delay = self._clamp(halfway)
        else:
            self._delay = self._clamp(max(self._delay, halfway))
        return self._delay
