"""Rendering pages in headless Chromium, every byte the page sees answered by the crawler.

Theory of operation
-------------------
**Processes.** :func:`open_browser` gives a :class:`Browser` and owns a nursery; no browser
runs until the first :meth:`Browser.render`. Then :func:`.chromium.open_chromium` starts
Chromium (``chromium-headless-shell`` by default) in its own process group with a
throwaway profile directory, and speaks the DevTools protocol to it over two pipes
(``--remote-debugging-pipe``: no debugging port exists; if the crawler dies, even by
``kill -9``, the browser reads the end of its pipe and exits). Whatever way the browser's
task ends (the ``async with`` block closing, an error, cancellation, the browser retired
or crashed), its ``finally`` SIGKILLs the whole process group and every descendant,
reaps the browser and removes the profile directory. The browser's network is a dead end
(a proxy on a loopback port that refuses connections, no name resolving, no UDP), so a
request that escaped interception would fail, not leak.

**Tasks.** In the browser's nursery, per browser process: the pipe's reader and writer
(:class:`.cdp.CdpConnection`), a watcher of the process (its exit breaks the connection), a
drain of its stderr, and the instance task that holds them until the browser is to stop. The
renders run in the *callers'* tasks: ``render`` takes a tab token (a
``trio.CapacityLimiter`` of ``options.concurrency``, taken and released by that task), then
per page a nursery with the page's event task and one task per request in the crawler's
hands (at most ``fetch_concurrency`` at once in ``fetch``).

**Channels.** The reader puts each event on its session's unbounded channel
(``send_nowait``: the reader never waits for a page) and wakes the caller waiting on each
reply; commands go to the writer by ``send_nowait`` too, so a cancelled caller never leaves
half a message on the pipe. The page's session closes its channel when the render ends; the
connection closes every channel when it breaks.

**A render.** A tab in a browser context of its own (cookies, storage and cache apart from
every other tab's), set up once: ``Fetch.enable`` pauses every request of the page and of
its workers (auto-attached paused, then resumed with interception on); popups are closed as
soon as the browser reports them. A tab serves up to ``pages_per_tab`` pages in turn (a new
context and tab cost about 60 ms of Chromium's CPU, a reuse about 20): between two pages it
is navigated to ``about:blank`` and its cookies, cache and storage cleared; a tab whose page
failed or was cut is closed instead (``_Tab`` says what survives a reset;
``pages_per_tab=1`` gives every page a fresh context). The main frame's first document
request is answered from the response the crawler already has; later main-frame navigations
are refused and listed. Other requests: types in ``refused_types`` (images, media, fonts)
are refused without asking; the rest go to the ``fetch`` callback, whose
:class:`BrowserResponse` is given to the browser (``Fetch.fulfillRequest``; a 3xx sends the
browser to the next hop, which comes back through ``fetch``) and whose :class:`Refusal`
fails the request. Dialogs are dismissed. The page is done at its load event plus
``quiet_period`` seconds with no request in flight (and ``wait_for``'s selector matching);
at ``time_limit`` it is cut. Either way its DOM is read
(``document.documentElement.outerHTML``); a script still running after a short wait is
terminated; a page whose main thread still does not answer is :class:`PageStuck`.

**Who closes what.** The render that used a tab puts it back among its browser's idle tabs,
or closes its session (channel) and disposes of its context (the tab with it), in
``finally``, without waiting for the answer. A browser is *retired* after
``max_renders_per_browser`` pages, when its processes' memory (PSS) is over
``max_browser_rss``, or when it hung: the next render starts a new browser; the old one is
killed when its last page ends. A browser that died or whose pipe closed breaks its
connection: its pages in flight raise :class:`BrowserCrashed`, its task kills what is left,
and the next render starts a new one. A page's renderer crash (``Inspector.targetCrashed``,
e.g. the JS heap bound) fails that page (:class:`PageCrashed`) only.

**Cancellation.** Cancelling a render cancels its page nursery (its ``fetch`` calls
included); its tab is closed. Every render is bounded as a whole (its time limit, twice
``stuck_timeout``, and a few seconds): a browser that answers nothing within that, or that
does not answer ``Browser.getVersion`` when a page is stuck, is hung: the render raises
:class:`BrowserCrashed` and the browser is killed. Leaving ``open_browser``'s block cancels
the browser's nursery: every browser tree is killed at once (SIGKILL, no graceful close to
wait for) and reaped within a shielded, bounded wait.
"""

from .chromium import CHROMIUM_ENV as CHROMIUM_ENV
from .chromium import ProcessTreeUse as ProcessTreeUse
from .chromium import find_chromium as find_chromium
from .model import DEFAULT_REFUSED_TYPES as DEFAULT_REFUSED_TYPES
from .model import BrowserCrashed as BrowserCrashed
from .model import BrowserError as BrowserError
from .model import BrowserOptions as BrowserOptions
from .model import BrowserRequest as BrowserRequest
from .model import BrowserResponse as BrowserResponse
from .model import BrowserUnavailable as BrowserUnavailable
from .model import CdpError as CdpError
from .model import Fetch as Fetch
from .model import PageCrashed as PageCrashed
from .model import PageStuck as PageStuck
from .model import Refusal as Refusal
from .model import Rendered as Rendered
from .model import RenderError as RenderError
from .model import Subrequest as Subrequest
from .render import Browser as Browser
from .render import BrowserStatistics as BrowserStatistics
from .render import open_browser as open_browser

__all__ = [
    "CHROMIUM_ENV",
    "DEFAULT_REFUSED_TYPES",
    "Browser",
    "BrowserCrashed",
    "BrowserError",
    "BrowserOptions",
    "BrowserRequest",
    "BrowserResponse",
    "BrowserStatistics",
    "BrowserUnavailable",
    "CdpError",
    "Fetch",
    "PageCrashed",
    "PageStuck",
    "ProcessTreeUse",
    "Refusal",
    "RenderError",
    "Rendered",
    "Subrequest",
    "find_chromium",
    "open_browser",
]
