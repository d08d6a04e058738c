"""What goes into a render and what comes out of it: plain frozen values and the errors.

Errors (all :class:`~trio_crawler.CrawlerError`)::

    RenderError             one render failed; the browser may still be fine
    ├── PageCrashed         the page's renderer process died (out of memory, Page.crash)
    ├── PageStuck           the page's main thread never answered: no DOM to return
    └── BrowserError        the browser itself is unusable
        ├── BrowserUnavailable   no binary, or it would not start
        └── BrowserCrashed       the browser process died or its pipe closed mid-render

:class:`CdpError` (the browser answered one command with an error) is a ``RenderError`` too;
the renderer turns the few it expects into a decision and lets the others fail the render.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable
from typing import Literal, TypeAlias

from .._exceptions import CrawlerError, SettingsError

__all__ = [
    "DEFAULT_REFUSED_TYPES",
    "BrowserCrashed",
    "BrowserError",
    "BrowserOptions",
    "BrowserRequest",
    "BrowserResponse",
    "BrowserUnavailable",
    "CdpError",
    "Fetch",
    "PageCrashed",
    "PageStuck",
    "Refusal",
    "RenderError",
    "Rendered",
    "Subrequest",
]


class RenderError(CrawlerError):
    """One render failed (the stage records failure kind ``render``)."""


class PageCrashed(RenderError):
    """The page's renderer process crashed (``Inspector.targetCrashed``)."""


class PageStuck(RenderError):
    """The page's main thread did not answer within the bound: its DOM cannot be read."""


class BrowserError(RenderError):
    """The browser as a whole failed; the next render starts a new one."""


class BrowserUnavailable(BrowserError):
    """No Chromium binary was found, or it did not start and answer."""


class BrowserCrashed(BrowserError):
    """The browser process died, or its DevTools pipe closed, while this render used it."""


class CdpError(RenderError):
    """The browser answered a DevTools command with an error."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {message} ({code})")
        self.method = method
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True)
class BrowserRequest:
    """A request the page made, paused in the browser until the crawler answers it.

    ``headers`` are those the browser would send (``Referer``, ``Accept``, ``Origin``...);
    the crawler's fetcher adds its own (User-Agent, cookies, credentials). ``post_data`` is
    the body of a POST as the browser gave it (None without one; very large bodies are not
    included by the browser). ``resource_type`` is the DevTools name (``Document`` for a
    frame's document, ``Script``, ``XHR``, ``Fetch``, ``Stylesheet``...). The main frame's
    own navigations never reach ``fetch``: the first is answered from the document given
    to :meth:`~.render.Browser.render`, later ones are refused and listed in
    :attr:`Rendered.navigations` (the stage treats them like redirects).
    """

    url: str
    method: str
    headers: tuple[tuple[str, str], ...]
    resource_type: str
    post_data: bytes | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class BrowserResponse:
    """An answer for the browser: the body is the *decoded* payload (what the crawler's
    fetcher returns); framing headers (Content-Encoding, Content-Length, Transfer-Encoding,
    Connection...) are dropped before the browser sees it. A 3xx with ``Location`` sends the
    browser to the next hop, whose request comes through ``fetch`` again."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """The crawler will not answer this request (robots.txt, the address guard, out of
    scope, a failed fetch...). The browser sees a failed request; ``reason`` is recorded."""

    reason: str


#: The crawler's side of every request the page makes.
Fetch: TypeAlias = Callable[[BrowserRequest], Awaitable[BrowserResponse | Refusal]]

Outcome: TypeAlias = Literal["fulfilled", "refused"]


@dataclasses.dataclass(frozen=True, slots=True)
class Subrequest:
    """One request of the page other than its document: what happened to it.

    ``status`` is the answer's status when fulfilled; ``reason`` why it was refused
    (the :class:`Refusal`'s reason, ``"type Image"`` for a refused resource type...)."""

    url: str
    resource_type: str
    outcome: Outcome
    status: int | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered page.

    ``html`` is ``document.documentElement.outerHTML`` (cut at ``max_dom_chars``:
    ``html_truncated``); ``final_url`` is ``location.href`` (it differs from ``url`` only by
    a fragment or a ``history.pushState``: navigations away are refused). ``settled`` is
    False when the page was cut at its time limit (``cut_reason`` says what it was still
    waiting for). ``navigations`` lists the main-frame navigations refused, ``popups`` the
    windows a script tried to open, ``dialogs`` the alert/confirm/prompt/beforeunload
    dialogs dismissed (``"alert: text"``), ``errors`` console errors and uncaught exceptions
    (the first ``max_messages``; ``errors_dropped`` counts the rest). ``subrequests`` keeps
    the first ``max_subrequests`` + 100 requests; ``subrequests_dropped`` counts the rest.
    """

    url: str
    final_url: str
    status: int
    html: str
    html_truncated: bool
    settled: bool
    cut_reason: str | None
    navigations: tuple[str, ...]
    popups: tuple[str, ...]
    subrequests: tuple[Subrequest, ...]
    subrequests_dropped: int
    dialogs: tuple[str, ...]
    errors: tuple[str, ...]
    errors_dropped: int
    screenshot: bytes | None
    elapsed: float


#: Subresources a crawl does not need: refused without calling ``fetch``.
DEFAULT_REFUSED_TYPES: frozenset[str] = frozenset({"Image", "Media", "Font"})


def _default_concurrency() -> int:
    return 2 * (os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True, slots=True)
class BrowserOptions:
    """How the browser is started and how pages are rendered. Validated on creation
    (:class:`~trio_crawler.SettingsError`, one line).

    * ``executable``: the Chromium binary; None looks at ``$TRIO_CRAWLER_CHROMIUM``, then for
      ``chromium-headless-shell``, ``chromium``, ``chromium-browser``, ``google-chrome`` on
      ``PATH``.
    * ``concurrency``: pages rendering at once (a ``trio.CapacityLimiter``; 2 per core).
    * ``time_limit``: a page's budget in seconds, from its tab's creation; at the end the page
      is cut (its DOM still returned), not failed. ``render(time_limit=...)`` overrides it.
    * ``quiet_period``: after the load event, the page is settled once no request has been
      paused or in the crawler's hands for this long.
    * ``refused_types``: DevTools resource types refused without calling ``fetch``.
    * ``fetch_concurrency``: one page's requests in the crawler's hands at once.
    * ``max_subrequests``: requests of one page answered; later ones are refused.
    * ``max_dom_chars``: the DOM is cut at this many characters.
    * ``js_heap_mb``: V8's old-space limit per renderer (``--max-old-space-size``); a page
      over it crashes its renderer (:class:`PageCrashed`), not the browser.
    * ``pages_per_tab``: pages rendered in turn in one tab (its browser context and renderer
      process) before a new one: 1 gives every page a fresh context (full isolation, about
      40 ms more of Chromium's CPU per page); above 1, a tab is reset between pages (what
      survives a reset: :class:`~.render._Tab`). A tab whose page failed or was cut is
      closed, not reused.
    * ``max_renders_per_browser``, ``max_browser_rss``: the browser is retired (a new one
      started for the next page, the old one closed when its last page ends) after this
      many pages, or when its process tree's resident memory exceeds this many bytes.
    * ``stuck_timeout``: how long a page that could not settle gets to hand over its DOM
      (after its scripts are terminated) before it is a :class:`PageStuck` failure.
    * ``launch_timeout``: the browser's start, up to its first answer.
    * ``sandbox``: Chromium's sandbox; None keeps it on except as root (where Chromium
      refuses to start with it).
    * ``user_agent``: what ``navigator.userAgent`` says (requests themselves carry the
      crawler's User-Agent: they go through its fetcher).
    * ``viewport``: the window size (and the screenshot's).
    * ``extra_args``: more command-line flags, appended.
    * ``max_messages``: console errors and dialogs kept per page.
    """

    executable: str | None = None
    concurrency: int = dataclasses.field(default_factory=_default_concurrency)
    time_limit: float = 15.0
    quiet_period: float = 0.5
    refused_types: frozenset[str] = DEFAULT_REFUSED_TYPES
    fetch_concurrency: int = 6
    max_subrequests: int = 500
    max_dom_chars: int = 10 * 1024 * 1024
    js_heap_mb: int = 256
    pages_per_tab: int = 20
    max_renders_per_browser: int = 1000
    max_browser_rss: int = 2 * 1024 * 1024 * 1024
    stuck_timeout: float = 3.0
    launch_timeout: float = 30.0
    sandbox: bool | None = None
    user_agent: str | None = None
    viewport: tuple[int, int] = (1280, 800)
    extra_args: tuple[str, ...] = ()
    max_messages: int = 50

    def __post_init__(self) -> None:
        positive_ints = {
            "concurrency": self.concurrency,
            "fetch_concurrency": self.fetch_concurrency,
            "max_dom_chars": self.max_dom_chars,
            "js_heap_mb": self.js_heap_mb,
            "pages_per_tab": self.pages_per_tab,
            "max_renders_per_browser": self.max_renders_per_browser,
            "max_browser_rss": self.max_browser_rss,
        }
        for name, value in positive_ints.items():
            if value < 1:
                raise SettingsError(f"browser {name} must be at least 1, not {value}")
        for name, number in {
            "time_limit": self.time_limit,
            "stuck_timeout": self.stuck_timeout,
            "launch_timeout": self.launch_timeout,
        }.items():
            if not number > 0:
                raise SettingsError(f"browser {name} must be a positive number, not {number}")
        if not 0 <= self.quiet_period < self.time_limit:
            raise SettingsError(
                f"browser quiet_period must be at least 0 and below time_limit "
                f"({self.time_limit:g}), not {self.quiet_period}"
            )
        for name, count in {
            "max_subrequests": self.max_subrequests,
            "max_messages": self.max_messages,
        }.items():
            if count < 0:
                raise SettingsError(f"browser {name} must be at least 0, not {count}")
        width, height = self.viewport
        if not (0 < width <= 10_000 and 0 < height <= 10_000):
            raise SettingsError(f"browser viewport must be within 1..10000, not {self.viewport}")
