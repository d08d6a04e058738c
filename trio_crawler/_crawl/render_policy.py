"""What the render stage decides without a browser (pure, synchronous): whether a page is
rendered, which requests of a rendered page the crawler answers, what they carry, and how
the browser is set up from the crawl's settings. :mod:`.render` is the stage that awaits.

**Whether.** ``Request.render`` (True or False) decides for its page; else the crawl's
``render`` setting (``on``, ``off``, ``auto``); else the spider's ``render`` attribute (True,
False, ``"auto"``). Only HTML answers are rendered (a 2xx the spider would scrape).

**auto** renders a page that looks built by its scripts (:func:`looks_script_built`): it has
a script, and no link at all, or at most :data:`AUTO_MAX_LINKS` links with either an empty
mount point of a single-page app (``<div id="root"></div>``, ``<app-root>``...:
:data:`MOUNT_POINTS`) or almost no text of its own (under :data:`AUTO_MAX_TEXT` characters
besides scripts, styles, ``<noscript>`` and templates). The rules were checked on the shells
the common frameworks generate (create-react-app, Vite with Vue, Angular, Next.js and Nuxt
client-only pages, Ember, SvelteKit: rendered), the quotes site's ``/js/`` pages and the
bench's rendered variant (text on the page, links made by a script: rendered), and on pages
that need no browser: the quotes site's plain pages, the bench site's pages (30 links each),
a server-rendered Next.js page, a short page with an analytics script and a paragraph of
text, a page without a script (not rendered); ``tests/test_render_policy.py`` holds them.
What auto misses: a page with its text on the server, more than a few links, and more
links made by a script; render those with ``render="on"`` (or ``Request(render=True)``).

**Which requests.** GET only (a script's POST is refused: a crawler does not submit).
A URL must be http(s), not longer than ``max_url_length``, not of a denied domain, and for
``render_scope="site"`` of the page's own site (registrable domain) or in the crawl's scope
(:func:`subresource_refusal`). robots.txt, politeness and the address guard are the stage's
business, as for every request of the crawl.

**What they carry.** The browser's ``Referer``, ``Accept``, ``Origin`` and ``Content-Type``
only (:func:`forwarded_headers`): never its User-Agent or Cookie (the crawler's user agent,
cookie jar and credentials apply, each cookie and credential to its own origin).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Literal, TypeAlias

from .._browser import BrowserOptions
from .._settings import Settings
from .._spider import Page, Request, Spider
from .._urlparse import parse_checked
from .._urls import UrlRules, registrable_domain

RenderMode: TypeAlias = Literal["on", "off", "auto"]

#: With ``auto``: pages with more links than this are not rendered (they are readable).
AUTO_MAX_LINKS = 5
#: With ``auto``: characters of text (not counting white space) below which a page with a
#: script counts as built by it.
AUTO_MAX_TEXT = 200
#: With ``auto``: a mount point with fewer characters than this counts as empty ("Loading").
AUTO_EMPTY_MOUNT = 30
#: The elements single-page apps mount into: React (create-react-app, Vite), Vue, Next.js,
#: Nuxt, Gatsby, Svelte, Angular, Ember.
MOUNT_POINTS = (
    "#root, #app, #__next, #__nuxt, #___gatsby, #svelte, #ember-app, app-root, "
    "[ng-app], [data-reactroot]"
)
#: Text that is not the page's own: scripts, styles, fallbacks and templates.
_NOT_TEXT = "script, style, noscript, template"
#: ``<script type>`` values that are data, not code.
_DATA_SCRIPTS = frozenset(
    {"application/json", "application/ld+json", "text/template", "text/x-template", "importmap"}
)
#: Request headers of the browser's that the crawler passes on.
FORWARDED_HEADERS = frozenset({"referer", "accept", "origin", "content-type"})


def render_mode(request: Request, settings: Settings, spider: Spider) -> RenderMode:
    """Whether the page of ``request`` is rendered: ``on``, ``off`` or ``auto``."""
    if request.render is not None:
        return "on" if request.render else "off"
    if settings.render is not None:
        return settings.render
    wanted = spider.render
    if wanted == "auto":
        return "auto"
    return "on" if wanted else "off"


def may_render(settings: Settings, spider: Spider, start: Iterable[Request | str]) -> bool:
    """Whether the crawl may render at all (so Chromium must be there): the setting, the
    spider or a start request asks for it. A spider's later ``Request(render=True)`` is
    known only when it comes."""
    if settings.render is not None:
        return settings.render != "off"
    if spider.render:
        return True
    return any(isinstance(r, Request) and r.render for r in start)


def wants_render(mode: RenderMode, page: Page) -> bool:
    """``mode`` applied to a fetched 2xx ``page``: only HTML is rendered."""
    if mode == "off" or not page.is_html:
        return False
    return mode == "on" or looks_script_built(page)


def _chars(text: str) -> int:
    """Characters of ``text`` that are not white space."""
    return sum(len(word) for word in text.split())


def looks_script_built(page: Page) -> bool:
    """``auto``'s rule (see the module docstring): a script, and no link, or few links and
    an empty mount point or almost no text."""
    tree = page.html
    scripts = [
        s
        for s in tree.css("script")
        if (s.attributes.get("type") or "").strip().lower() not in _DATA_SCRIPTS
        and ("src" in s.attributes or (s.text(deep=True) or "").strip())
    ]
    links = len(page.extracted().links)
    if not scripts or links > AUTO_MAX_LINKS:
        return False
    if links == 0:
        return True
    for mount in tree.css(MOUNT_POINTS):
        if _chars(mount.text(deep=True) or "") < AUTO_EMPTY_MOUNT:
            return True
    body = tree.body
    if body is None:
        return True
    text = _chars(body.text(deep=True) or "")
    text -= sum(_chars(n.text(deep=True) or "") for n in body.css(_NOT_TEXT))
    return text < AUTO_MAX_TEXT


def subresource_refusal(
    url: str, page_url: str, *, scope: str, crawl: UrlRules, anywhere: UrlRules, max_length: int
) -> str | None:
    """Why a rendered page at ``page_url`` may not load ``url``, or None. ``crawl``: the
    crawl's rules (its scope); ``anywhere``: rules with scope ``any`` (only denied domains
    refused)."""
    if len(url) > max_length:
        return "URL too long"
    try:
        parts = parse_checked(url)
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme}"
    if not anywhere.in_scope(url):
        return "denied domain"
    if scope == "any" or crawl.in_scope(url):
        return None
    try:
        site = registrable_domain(parse_checked(page_url).host)
    except ValueError:
        return "out of scope"
    if registrable_domain(parts.host) == site:
        return None
    return "another site (render_scope site)"


def forwarded_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The browser's headers the crawler sends on (:data:`FORWARDED_HEADERS`)."""
    out: dict[str, str] = {}
    for name, value in headers:
        low = name.lower()
        if low in FORWARDED_HEADERS and "\r" not in value and "\n" not in value:
            out[low] = value
    return out


def default_render_concurrency() -> int:
    """Pages rendering at once by default: two per core."""
    return 2 * (os.cpu_count() or 1)


def render_share(settings: Settings, processes: int) -> Settings:
    """``settings`` for one of ``processes`` fetch processes of a crawl: each process starts
    its own Chromium (lazily) and renders its share of ``render_concurrency`` (rounded up,
    at least 1), so the crawl renders about as many pages at once as asked, over all."""
    if processes <= 1:
        return settings
    total = settings.render_concurrency or default_render_concurrency()
    return settings.replace(render_concurrency=max(1, math.ceil(total / processes)))


def browser_options(settings: Settings) -> BrowserOptions:
    """How the crawl's Chromium is started and renders, from its settings."""
    s = settings
    return BrowserOptions(
        concurrency=s.render_concurrency or default_render_concurrency(),
        time_limit=s.render_timeout,
        quiet_period=s.render_quiet,
        refused_types=frozenset(s.render_refused_types),
        max_dom_chars=s.max_body_size,
        js_heap_mb=s.render_js_heap,
        max_renders_per_browser=s.render_pages_per_browser,
        max_browser_rss=s.render_max_memory,
        user_agent=s.user_agent,
    )
