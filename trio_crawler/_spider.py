"""The spider contract: what a user writes, and the values that cross it.

A spider is the seed's two-step contract in Python idiom:

* ``scrape(page)`` receives one fetched :class:`Page` and returns or yields what it found:
  :class:`Request` objects (and :class:`Follow` batches of URLs) are followed, anything else
  is an *item*. It may be an async
  generator (``yield``) or a coroutine returning an iterable (``return [...]``).
* ``process(item)`` does something with one item (store it, print it). It runs concurrently
  under the processing limiter. Items reach ``process`` **at least once**: a page fetched again
  after a crash or a cancellation can deliver its items again.
* ``failed(failure)`` (optional) sees a page that could not be fetched; it may yield items
  (the generic spider yields an error record).

The engine never looks inside items. ``@register`` puts a spider in :data:`registry`;
finding one by name or loading it from ``path/to/file.py:Class`` / ``package.module:Class``
is :mod:`trio_crawler._registry`'s (it knows the built-in spiders; this module does not).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

from . import _extract
from ._exceptions import FailureKind, SettingsError
from ._records import quick_pickle

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

#: What responses a spider wants handed to ``scrape``: parsed HTML only, JSON only, or anything.
Accept: TypeAlias = Literal["html", "json", "any"]

Item: TypeAlias = Any
ScrapeOutput: TypeAlias = "Request | Item"
ScrapeResult: TypeAlias = (
    "AsyncIterator[Request | Item] | Awaitable[Iterable[Request | Item] | None]"
)


#: Beyond this many ``<div`` tags a page's divs are parsed as spans (see :attr:`Page.html`).
MAX_DIV_TAGS = 20_000
_DIV_TAG = re.compile(r"<(/?)div\b", re.IGNORECASE)


@quick_pickle
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A URL to fetch, with what the spider wants to send and remember about it.

    ``url`` is read as a browser reads it (the URL Standard): the engine admits it in its
    normalised form, which is what is fetched, logged and recorded; dedupe uses its canonical
    form. ``meta`` must be JSON-serialisable (it is stored with the frontier). ``depth``,
    ``referrer``, ``retries``, ``redirects`` and ``rate_limited`` are filled in by the engine.

    ``render``: True renders the page in headless Chromium before ``scrape`` (the spider
    gets the DOM the scripts built), False never; None (default) leaves it to the crawl's
    ``render`` setting, then the spider's ``render`` attribute. ``wait_for``: a CSS selector
    the rendered page must match before it counts as done (within the render timeout).
    """

    url: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    priority: int = 0
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dont_filter: bool = False
    depth: int = 0
    referrer: str | None = None
    retries: int = 0
    redirects: tuple[str, ...] = ()
    #: Rate-limited answers to this request so far (the spider's ``rate_limit_delay``): each
    #: one waits, and after ``max_rate_limit_waits`` the request fails as ``rate_limited``.
    rate_limited: int = 0
    render: bool | None = None
    wait_for: str | None = None

    @property
    def original_url(self) -> str:
        """The URL first asked for, before any redirect."""
        return self.redirects[0] if self.redirects else self.url


class Headers(Mapping[str, str]):
    """An immutable, case-insensitive view of response headers.

    Repeated headers are joined with ``", "`` on lookup; :meth:`get_list` returns each value.
    """

    __slots__ = ("_items", "_map")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(items)
        merged: dict[str, str] = {}
        for key, value in self._items:
            low = key.lower()
            merged[low] = f"{merged[low]}, {value}" if low in merged else value
        self._map = merged

    def __getitem__(self, key: str) -> str:
        return self._map[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def get_list(self, key: str) -> list[str]:
        low = key.lower()
        return [v for k, v in self._items if k.lower() == low]

    def raw(self) -> tuple[tuple[str, str], ...]:
        return self._items

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


@dataclasses.dataclass(frozen=True, slots=True)
class Rendering:
    """How a page was rendered in headless Chromium (:attr:`Page.rendering`).

    ``settled``: the page was done (load event, then no request for the quiet period, and
    ``wait_for`` matched); False when it was cut at the render timeout and scraped as it
    stood (``cut_reason`` says what it was still waiting for: ``load``, ``network`` or
    ``wait_for``). ``subrequests``: requests the page made that the crawler answered;
    ``refused``: those it refused, as ``"URL: why"`` (the first 100). ``navigations``:
    where a script tried to take the page (refused; the crawl follows the first like a
    redirect). ``errors``: the page's console errors and uncaught exceptions (the first 50).
    ``screenshot``: the PNG's path with ``screenshots`` set. ``elapsed``: seconds the render
    took, after the fetch.
    """

    settled: bool = True
    cut_reason: str | None = None
    subrequests: int = 0
    refused: tuple[str, ...] = ()
    navigations: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    screenshot: str | None = None
    elapsed: float = 0.0


class Page:
    """One fetched response, handed to ``Spider.scrape``.

    ``url`` is the URL this response came from (the last hop of a redirect chain);
    ``request.original_url`` the first. ``body`` holds at most ``max_body_size`` decoded
    bytes; ``truncated`` says whether more was sent. Text, the HTML tree and the links are
    computed on first use and cached.

    A rendered page (``rendering`` is not None) is the DOM the browser built, serialised as
    UTF-8 HTML: ``body`` and ``text`` are that DOM, ``url`` is the page's address as the
    browser last saw it (``location.href``, the base of its links), ``headers`` the
    response's with ``Content-Type: text/html; charset=utf-8``.
    """

    __slots__ = (
        "_extracted",
        "_html",
        "_link_text",
        "_max_links",
        "_obey_meta",
        "_obey_nofollow",
        "_text",
        "body",
        "content_type",
        "elapsed",
        "header_robots",
        "headers",
        "rendering",
        "request",
        "status",
        "truncated",
        "url",
    )

    def __init__(
        self,
        *,
        request: Request,
        url: str,
        status: int,
        headers: Headers,
        body: bytes,
        truncated: bool = False,
        elapsed: float = 0.0,
        header_robots: frozenset[str] = frozenset(),
        obey_meta_robots: bool = True,
        obey_nofollow: bool = True,
        max_links: int = 10_000,
        link_text: bool = False,
    ) -> None:
        self.request = request
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body
        self.truncated = truncated
        self.elapsed = elapsed
        self.header_robots = header_robots
        self._obey_meta = obey_meta_robots
        self._obey_nofollow = obey_nofollow
        self._max_links = max_links
        self._link_text = link_text
        self.content_type = _extract.media_type(headers.get("content-type"))
        self._text: str | None = None
        self._html: LexborHTMLParser | None = None
        self._extracted: _extract.Extracted | None = None
        self.rendering: Rendering | None = None

    def rendered(
        self, *, url: str, html: str, truncated: bool, rendering: Rendering, max_body: int
    ) -> Page:
        """This page as the browser rendered it at ``url``: the DOM ``html`` as its UTF-8
        body, cut at ``max_body`` bytes (``truncated``: the DOM was cut already)."""
        body = html.encode("utf-8", "replace")
        if len(body) > max_body:
            body, truncated = body[:max_body], True
        headers = [(k, v) for k, v in self.headers.raw() if k.lower() != "content-type"]
        headers.append(("content-type", "text/html; charset=utf-8"))
        page = Page(
            request=self.request,
            url=url,
            status=self.status,
            headers=Headers(headers),
            body=body,
            truncated=self.truncated or truncated,
            elapsed=self.elapsed,
            header_robots=self.header_robots,
            obey_meta_robots=self._obey_meta,
            obey_nofollow=self._obey_nofollow,
            max_links=self._max_links,
        )
        page.rendering = rendering
        return page

    @property
    def depth(self) -> int:
        return self.request.depth

    @property
    def is_html(self) -> bool:
        """True when the body is HTML by its Content-Type, or by sniffing when that is absent."""
        return _extract.sniff_is_html(self.headers.get("content-type"), self.body)

    @property
    def is_json(self) -> bool:
        ct = self.content_type
        return ct == "application/json" or ct.endswith("+json")

    @property
    def text(self) -> str:
        """The body decoded: BOM, then the charset header, then ``<meta charset>``, then a
        fallback (UTF-8 if it decodes, else windows-1252); never raises."""
        if self._text is None:
            self._text = _extract.decode_body(self.body, self.headers.get("content-type"))[0]
        return self._text

    def json(self) -> Any:
        import json

        return json.loads(self.text)

    @property
    def html(self) -> LexborHTMLParser:
        """The parsed HTML tree (selectolax's lexbor parser).

        Hostile-page guard: each ``<div>`` start tag makes the HTML parser scan the stack of
        open elements, so deeply nested divs cost quadratic time (100,000 take over 30 s). A
        page with more than :data:`MAX_DIV_TAGS` of them is parsed with its divs read as
        spans: the links, text and title are the same; div selectors no longer match there.
        """
        if self._html is None:
            from selectolax.lexbor import LexborHTMLParser

            text = self.text
            if len(text) > MAX_DIV_TAGS * 5 and text.count("<div") > MAX_DIV_TAGS:
                text = _DIV_TAG.sub(r"<\1span", text)
            self._html = LexborHTMLParser(text)
        return self._html

    def css(self, selector: str) -> list[LexborNode]:
        return list(self.html.css(selector))

    def extracted(self) -> _extract.Extracted:
        """Links (at most the crawl's ``max_links_per_page``), title, base href and robots
        directives of an HTML page (cached). The links carry their anchor text when the crawl
        keeps its link graph (``Settings.link_graph``)."""
        if self._extracted is None:
            self._extracted = _extract.extract(
                self.html, self.url, max_links=self._max_links, anchor_text=self._link_text
            )
        return self._extracted

    @property
    def robots(self) -> frozenset[str]:
        """Robots directives for this page: ``X-Robots-Tag`` plus ``<meta name="robots">``."""
        if not self.is_html:
            return self.header_robots
        return self.header_robots | self.extracted().meta_robots

    def _release(self) -> None:
        """Drop the parse tree and the decoded text (the engine calls this once ``scrape`` is
        done, before the page waits on the store). Both are rebuilt if asked for again; the
        lexbor tree is many times the body, and a fetcher's page can wait a while."""
        self._html = None
        self._text = None

    def extracted_if_done(self) -> _extract.Extracted | None:
        """The extraction result if something already asked for it, else None (no parse)."""
        return self._extracted

    def links(self) -> list[str]:
        """Absolute http(s) URLs of the page's followable links, in document order.

        Empty when the page says ``nofollow`` (meta robots or X-Robots-Tag) and the crawl obeys
        it; links with ``rel="nofollow"`` are left out unless the crawl ignores them.
        """
        if not self.is_html:
            return []
        extracted = self.extracted()
        if self._obey_meta and "nofollow" in (self.header_robots | extracted.meta_robots):
            return []
        if self._obey_nofollow:
            return [link.url for link in extracted.links if not link.nofollow]
        return [link.url for link in extracted.links]

    def follow(self, href: str, **kwargs: Any) -> Request:
        """A :class:`Request` for ``href`` resolved against the page (and its ``<base href>``)
        as a browser does (the URL Standard), fragment dropped. An href that does not resolve
        is kept as it is: the crawl drops it as unparsable."""
        from ._urls import resolve

        base = self.extracted().base_url if self.is_html else self.url
        try:
            url = resolve(href, base)
        except ValueError:
            url = href.strip()
        return Request(url=url, **kwargs)

    def __repr__(self) -> str:
        return f"<Page {self.status} {self.url}>"


@dataclasses.dataclass(frozen=True, slots=True)
class Follow:
    """Many URLs to follow with the same priority, headers and meta: what ``scrape`` yields
    instead of one :class:`Request` per link (``yield Follow(page.links())``). Cheaper: the
    engine builds a request only for the URLs it has not seen."""

    urls: Sequence[str]
    priority: int = 0
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Drop:
    """A hook's answer: drop this request (before it is sent) or this page (before scrape)."""

    reason: str = "dropped by a hook"


@dataclasses.dataclass(frozen=True, slots=True)
class Retry:
    """An ``after_response`` hook's answer: try this request again after ``delay`` seconds
    (counts as a retry; bounded by ``max_retries``)."""

    delay: float = 0.0
    reason: str = "retry asked by a hook"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """A request that ended without a page for ``scrape``: handed to ``Spider.failed``."""

    request: Request
    kind: FailureKind
    message: str
    status: int | None = None
    url: str = ""  # the last URL tried (a redirect hop), else the request's URL
    elapsed: float = 0.0
    #: What spider code raised (``kind`` is ``scrape_error``), else None.
    exception: BaseException | None = None


class Spider:
    """Base class for spiders. Subclass it, set ``name`` and ``start_urls``, write ``scrape``.

    Class attributes a spider may set:

    Responses that are not 2xx after retries and redirects do not reach ``scrape``: they are
    failures, handed to ``failed`` with their status.

    ``name``          registry key (``trio-crawler run NAME``)
    ``description``   one line shown by ``trio-crawler spiders``
    ``start_urls``    where the crawl starts (or override :meth:`start_requests`)
    ``accept``        ``"html"`` (default), ``"json"`` or ``"any"``: which responses reach scrape
    ``render``        True: render every HTML page in headless Chromium before ``scrape``;
                      ``"auto"``: only pages that look script-built; False (default): none
                      (``Request.render`` and the crawl's ``render`` setting come first)
    ``headers``       headers sent with every request of this spider (API token, Accept...)
    ``custom_settings`` overrides of :class:`~trio_crawler.Settings` fields this spider needs
                      (the user's explicit flags still win)
    ``args``          the ``--arg NAME=VALUE`` names this spider takes, with their help text
    ``item_types``    the classes of the items it yields (``run SPIDER --help`` lists their fields)

    Constructor keyword arguments are the ``--arg`` values (strings).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    start_urls: ClassVar[tuple[str, ...]] = ()
    accept: ClassVar[Accept] = "html"
    render: bool | Literal["auto"] = False
    headers: Mapping[str, str] = {}
    custom_settings: ClassVar[Mapping[str, Any]] = {}
    args: ClassVar[Mapping[str, str]] = {}
    item_types: ClassVar[tuple[type, ...]] = ()

    def __init__(self, **kwargs: str) -> None:
        unknown = sorted(set(kwargs) - set(self.args))
        if unknown:
            known = ", ".join(sorted(self.args)) or "none"
            raise SettingsError(
                f"spider {self.name!r} takes no argument {unknown[0]!r} (it takes: {known})"
            )
        self.arguments: dict[str, str] = dict(kwargs)

    def start_requests(self) -> Iterable[Request | str]:
        """Where the crawl starts. By default, ``start_urls``."""
        return self.start_urls

    def scrape(self, page: Page) -> ScrapeResult:
        """Return or yield items and :class:`Request` objects found on ``page``."""
        raise NotImplementedError(f"{type(self).__name__}.scrape")

    async def process(self, item: Item) -> None:
        """Do something with one item. Runs concurrently; at-least-once. Default: nothing."""

    async def before_request(self, request: Request) -> Request | Drop | None:
        """Hook run before each request is sent, after the settings' hooks.

        Return None to send it as it is, a changed :class:`Request` (a fresh token, a
        signature header) to send that instead, or :class:`Drop` to skip it. Default: None.
        """
        return None

    async def after_response(self, page: Page) -> Retry | Drop | None:
        """Hook run after each final (non-redirect) response, after the settings' hooks and
        before ``scrape``. Return None to go on, :class:`Retry` to fetch again later, or
        :class:`Drop` to skip the page (counted, not scraped). Default: None."""
        return None

    def rate_limit_delay(self, page: Page) -> float | None:
        """Seconds the server asks this spider to wait (an API's rate-limit headers), or None.

        Called for every response before ``scrape``. For a non-2xx answer the request goes back
        to the frontier and is tried again after the delay (not counted as a retry); for a 2xx
        answer the page is scraped and its host paused for the delay. The engine caps the delay
        at ``Settings.max_retry_after``. Default: None.
        """
        return None

    def failed(self, failure: Failure) -> ScrapeResult:
        """Called for a request that failed for good. May yield items. Default: nothing."""

        async def nothing() -> list[Any]:
            return []

        return nothing()


async def iterate_result(result: ScrapeResult) -> AsyncIterator[Any]:
    """Walk what ``scrape``/``failed`` produced, whichever form it took."""
    if inspect.isasyncgen(result) or hasattr(result, "__anext__"):
        async for value in result:  # type: ignore[union-attr]
            yield value
        return
    if inspect.isawaitable(result):
        produced = await result
    else:
        produced = result
    if produced is None:
        return
    for value in produced:
        yield value


# ---------------------------------------------------------------- registry

#: Built-in spiders by name. Filled lazily by :func:`spider_names` / :func:`load_spider`.
registry: dict[str, type[Spider]] = {}


def register(cls: type[Spider]) -> type[Spider]:
    """Class decorator: make a spider available by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    registry[cls.name] = cls
    return cls
