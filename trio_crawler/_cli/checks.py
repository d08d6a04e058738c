"""What a command checks before it opens anything: a failed command never empties a file.

The start URLs must each be admitted by the crawl's own rules (the same
:class:`~trio_crawler._crawl.admission.Admission` the engine applies); every output must be
writable (:func:`~trio_crawler._export.check_target`, which touches nothing), and so must the
``--stats-json`` file; no two of them (nor the ``--state`` file) may be the same file. Only
then does the crawl start; the engine itself opens the outputs last, after the store (a state
file that is not a crawl, or holds another one) and the fetcher (a bad CA file).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import urlsplit

from .._crawl import effective_settings
from .._crawl.admission import Admission
from .._exceptions import SettingsError
from .._export import check_target, unwritable
from .._settings import Settings
from .._spider import Request, Spider
from .._stats import Counters
from .._urls import UrlRules

_WHY = {
    "too_long": "longer than max_url_length ({max_url_length:,} characters)",
    "excluded": "excluded by --include/--exclude",
    "out_of_scope": "out of the scope",
    "denied_domain": "its domain is denied (--deny-domain)",
    "bad_scheme": "not http:// or https://",
    "unparsable": "not a URL that can be fetched",
    "too_deep": "deeper than --max-depth",
}


def check_url(url: str) -> None:
    """A start URL given on the command line: http(s), with a host."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise SettingsError(f"malformed URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"malformed URL {url!r}: need http:// or https:// and a host")


def check_seeds(settings: Settings, spider: Spider, start: Sequence[Request | str]) -> None:
    """Every start URL passes the crawl's rules (length, scope, --include/--exclude, traps),
    or a one-line :class:`SettingsError` names the first that does not and why."""
    settings = effective_settings(settings, spider)
    urls = [entry.url if isinstance(entry, Request) else entry for entry in start]
    counters = Counters()
    admission = Admission(
        settings,
        UrlRules(settings, urls),
        counters,
        seen_hint=lambda _: False,
        spider_headers={},
    )
    for entry in start:
        request = entry if isinstance(entry, Request) else Request(url=entry)
        if admission.admit(request) is None:
            reason = next(iter(counters.dropped), "refused")
            why = _WHY.get(reason, reason).format(max_url_length=settings.max_url_length)
            raise SettingsError(f"start URL {_shown(request.url)} is refused: {why}")


def _shown(url: str) -> str:
    return repr(url) if len(url) <= 100 else f"{url[:80]!r}... ({len(url):,} characters)"


def check_outputs(
    outputs: Sequence[str],
    *,
    format: str | None,
    stats_json: str | None = None,
    state: str | None = None,
) -> None:
    """Every output and the ``--stats-json`` file can be written, and they are distinct files
    (from each other and from the state file). Touches none of them."""
    for target in outputs:
        check_target(target, format=format)
    if stats_json is not None:
        check_file(stats_json, "the statistics")
    seen: dict[str, str] = {}
    named = [*outputs, *([stats_json] if stats_json else []), *([state] if state else [])]
    for path in named:
        if path == "-":
            continue
        key = os.path.realpath(path)
        if key in seen:
            raise SettingsError(f"{seen[key]!r} and {path!r} are the same file: name two files")
        seen[key] = path


def check_file(path: str, what: str) -> None:
    """``path`` can be created or overwritten (its directory exists and is writable)."""
    problem = unwritable(path)
    if problem is not None:
        raise SettingsError(f"cannot write {what} to {path!r}: {problem.strerror}")
