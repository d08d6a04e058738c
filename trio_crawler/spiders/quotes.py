"""Quotes of quotes.toscrape.com, including the JavaScript-rendered ``/js/`` pages, by default
without a browser.

The ``/js/`` pages carry their quotes in an inline script, ``var data = [ {...}, ... ];``, then
``document.write`` them. The spider cuts that array out of the script (bracket matching that skips
over strings, so a ``]`` inside a quote does not end it), decodes it with :func:`json.loads`
(which turns ``\\u201c`` into the curly quote) and HTML-unescapes the strings, as the browser
would when it writes them into the page. ``--arg mode=html`` reads the plain pages (``/``)
instead: ``.quote .text``, ``.author`` and ``.tags .tag``. ``--arg mode=browser`` renders the
``/js/`` pages in headless Chromium (the spider's ``render``) and reads the quotes the scripts
wrote, as ``mode=html`` reads them: the same items as ``mode=js``, for the price of a browser.
Every mode follows the pager's ``li.next > a``; a ``/js/`` page that lost its script but has
server-rendered quotes is read as HTML.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from .._exceptions import SettingsError
from .._spider import Failure, Page, Request, Spider, register
from ._shared import ParseError, checked_base_url, parse_error, warn_failed

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://quotes.toscrape.com"
MODES = ("js", "html", "browser")

_DATA_START = re.compile(r"\b(?:var|let|const)\s+data\s*=\s*(?=\[)")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    text: str  # with its curly quotes, as shown
    author: str
    tags: tuple[str, ...] = ()


@register
class QuotesSpider(Spider):
    """quotes.toscrape.com, from the data embedded for JavaScript or from the plain HTML."""

    name = "quotes"
    description = "quotes.toscrape.com: text, author, tags (JavaScript pages, browser optional)"
    item_types = (Quote, ParseError)
    args = {
        "mode": "js (default): read the /js/ pages' embedded data; html: the plain pages; "
        "browser: render the /js/ pages in Chromium",
        "base_url": f"site to crawl (default {DEFAULT_BASE_URL})",
    }

    def __init__(self, **kwargs: str) -> None:
        super().__init__(**kwargs)
        self.mode = kwargs.get("mode", "js").strip().lower()
        if self.mode not in MODES:
            raise SettingsError(f"mode must be js, html or browser, not {kwargs['mode']!r}")
        self.base_url = checked_base_url(kwargs.get("base_url", DEFAULT_BASE_URL))
        self.render = self.mode == "browser"

    def start_requests(self) -> Iterable[Request | str]:
        return [f"{self.base_url}/" if self.mode == "html" else f"{self.base_url}/js/"]

    async def scrape(self, page: Page) -> AsyncIterator[Any]:
        records = embedded_data(page) if self.mode == "js" else None
        if records is not None:
            for index, record in enumerate(records):
                yield _from_record(record) or _problem(page, f"data entry {index} is not a quote")
        elif page.css(".quote"):
            for index, block in enumerate(page.css(".quote")):
                yield _from_block(block) or _problem(page, f"quote block {index} lacks text/author")
        else:
            yield _problem(page, "no quotes: neither embedded `var data = [...]` nor .quote blocks")
        for anchor in page.css("li.next > a[href]"):
            yield page.follow(anchor.attributes.get("href") or "")

    async def failed(self, failure: Failure) -> list[Any]:
        """A page that could not be fetched loses its quotes and the pages after it: say so."""
        warn_failed(logger, failure, "page")
        return []


def embedded_data(page: Page) -> list[Any] | None:
    """The array assigned to ``data`` in the page's inline scripts, decoded; None if absent."""
    for script in page.css("script"):
        if "src" in script.attributes:
            continue
        source = script.text(deep=True)
        found = _DATA_START.search(source)
        if found is None:
            continue
        array = cut_array(source, found.end())
        if array is None:
            logger.warning("quotes: %s: unterminated `var data` array", page.url)
            return None
        try:
            decoded = json.loads(array)
        except ValueError as exc:
            logger.warning("quotes: %s: `var data` is not JSON: %s", page.url, exc)
            return None
        return decoded if isinstance(decoded, list) else None
    return None


def cut_array(source: str, start: int) -> str | None:
    """``source[start:end]`` where ``source[start]`` is ``[`` and ``end`` follows its match.

    Brackets and braces inside string literals (either quote, with backslash escapes) are
    skipped. None when the array is not closed.
    """
    depth = 0
    quote: str | None = None
    escaped = False
    for index in range(start, len(source)):
        char = source[index]
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return source[start : index + 1]
    return None


def _from_record(record: object) -> Quote | None:
    if not isinstance(record, dict):
        return None
    text, author, tags = record.get("text"), record.get("author"), record.get("tags") or []
    name = author.get("name") if isinstance(author, dict) else author
    if not (isinstance(text, str) and isinstance(name, str) and isinstance(tags, list)):
        return None
    return Quote(
        text=html.unescape(text).strip(),
        author=html.unescape(name).strip(),
        tags=tuple(html.unescape(tag).strip() for tag in tags if isinstance(tag, str)),
    )


def _from_block(block: Any) -> Quote | None:
    # selectolax decodes entities already: unescaping again would corrupt a literal "&amp;".
    text, author = block.css_first(".text"), block.css_first(".author")
    if text is None or author is None:
        return None
    tags = tuple(tag.text(strip=True) for tag in block.css(".tags .tag"))
    return Quote(text=text.text(strip=True), author=author.text(strip=True), tags=tags)


def _problem(page: Page, reason: str) -> ParseError:
    return parse_error(logger, page.url, reason)
