"""What the built-in spiders share, so that no spider imports another.

* :class:`ParseError`, the item a spider yields for part of a page it could not read;
  :func:`parse_error` makes one and logs it.
* :func:`checked_base_url` and :func:`checked_flag`, the checks of their ``--arg`` values.
* :func:`warn_failed`, the loud line a spider logs when one of its pages could not be fetched
  (the engine logs an HTTP status failure at INFO: for these spiders a lost page is lost data).
"""

from __future__ import annotations

import dataclasses
import logging
from urllib.parse import urlsplit

from .._exceptions import SettingsError
from .._spider import Failure


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ParseError:
    """Part of a page that could not be parsed (the layout drifted, or the block is broken)."""

    url: str
    reason: str


def parse_error(logger: logging.Logger, url: str, reason: str) -> ParseError:
    """A :class:`ParseError` for ``url``, logged at WARNING with the spider's name."""
    logger.warning("%s: %s: %s", _spider_name(logger), url, reason)
    return ParseError(url=url, reason=reason)


def warn_failed(logger: logging.Logger, failure: Failure, what: str) -> None:
    """Log at WARNING that ``what`` (``"start page"``, ``"list page"``...) could not be fetched,
    naming its URL and the HTTP status or the kind of failure."""
    request = failure.request
    how = f"HTTP {failure.status}" if failure.status is not None else str(failure.kind)
    logger.warning(
        "%s: %s %s failed (%s): %s",
        _spider_name(logger),
        what,
        request.original_url,
        how,
        failure.message,
    )


def checked_base_url(value: str, arg: str = "base_url") -> str:
    """``value`` as an http(s) origin (and optional path prefix) without a trailing slash."""
    parts = urlsplit(value.strip())
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number below 65536)
    except ValueError:
        raise SettingsError(f"{arg} has a bad port: {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError(f"{arg} must be an http(s) URL without query, not {value!r}")
    return value.strip().rstrip("/")


def checked_flag(value: str, arg: str) -> bool:
    """``--arg NAME=1``/``0`` (and yes/no, true/false, on/off) as a bool."""
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{arg} must be 0 or 1, not {value!r}")


def _spider_name(logger: logging.Logger) -> str:
    return logger.name.rpartition(".")[2]
