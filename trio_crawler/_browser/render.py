"""The renderer: :func:`open_browser`, :class:`Browser` and one page's render.

See the package docstring (:mod:`trio_crawler._browser`) for the theory of operation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import AsyncIterator

import trio

from .cdp import CdpConnection
from .chromium import Chromium, open_chromium
from .model import (
    BrowserCrashed,
    BrowserError,
    BrowserOptions,
    BrowserResponse,
    Fetch,
    PageStuck,
    Rendered,
    RenderError,
)
from .page import PageRender, Tab

__all__ = ["Browser", "BrowserStatistics", "open_browser"]

#: Extra time a render may take past its time limit and the stuck bound (closing the page,
#: a screenshot) before the browser is deemed hung: the render fails, the browser is retired.
_SLACK = 5.0
#: How often at most the browser's memory is measured (it walks /proc).
_MEMORY_CHECK_INTERVAL = 1.0
#: How long the browser process gets to answer when a page is stuck (else it is hung).
_PROBE_TIMEOUT = 2.0


@dataclasses.dataclass(frozen=True, slots=True)
class BrowserStatistics:
    """Counts since :func:`open_browser`: pages rendered (settled or cut), failed renders,
    browsers started, browsers that crashed (or hung), browsers retired (page count or
    memory), tabs opened (each with its browser context); the running browsers' PIDs."""

    rendered: int
    failed: int
    browsers_started: int
    browsers_crashed: int
    browsers_retired: int
    tabs_opened: int
    pids: tuple[int, ...]


class _Instance:
    """One browser process and the pages using it; :meth:`run` is its task."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser
        self.chromium: Chromium | None = None
        self.active = 0
        self.renders = 0
        self.retired = False
        self.stop = trio.Event()  # set: close this browser (retired and idle, or broken)
        self.memory_checked = -math.inf
        self.idle: list[Tab] = []  # tabs set up and reset, waiting for a page

    @property
    def connection(self) -> CdpConnection:
        assert self.chromium is not None
        return self.chromium.connection

    @property
    def usable(self) -> bool:
        return not self.retired and not self.connection.broken.is_set()

    async def run(self, *, task_status: trio.TaskStatus[_Instance]) -> None:
        """Start the browser, report it started, keep it until :attr:`stop` is set or it
        breaks, then kill it (:func:`.chromium.open_chromium`'s exit)."""
        browser = self._browser
        async with open_chromium(browser.options) as chromium:
            self.chromium = chromium
            browser._instances.add(self)
            try:
                # the popups pages open are reported here, to be closed at once; nothing a
                # page offers for download is written to disk
                await chromium.connection.execute_all(
                    [
                        ("Target.setDiscoverTargets", {"discover": True}),
                        ("Browser.setDownloadBehavior", {"behavior": "deny"}),
                    ]
                )
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch, name="browser watch")
                    nursery.start_soon(_close_popups, chromium.connection, name="popup closer")
                    browser._started += 1
                    task_status.started(self)
                    await self.stop.wait()
                    nursery.cancel_scope.cancel()
            finally:
                browser._instances.discard(self)
                if browser._current is self:
                    browser._current = None

    async def _watch(self) -> None:
        await self.connection.broken.wait()
        self.stop.set()


class Browser:
    """Renders pages in headless Chromium, every request answered by a ``fetch`` callback.

    Made by :func:`open_browser`, which owns the nursery its browser processes live in.
    """

    def __init__(self, nursery: trio.Nursery, options: BrowserOptions) -> None:
        self.options = options
        self._nursery = nursery
        self._tabs = trio.CapacityLimiter(options.concurrency)
        self._launch = trio.Lock()
        self._current: _Instance | None = None
        self._instances: set[_Instance] = set()
        self._closed = False
        self._rendered = 0
        self._failed = 0
        self._started = 0
        self._crashed = 0
        self._retired = 0
        self._tabs_opened = 0

    def statistics(self) -> BrowserStatistics:
        pids = tuple(i.chromium.pid for i in self._instances if i.chromium is not None)
        return BrowserStatistics(
            self._rendered,
            self._failed,
            self._started,
            self._crashed,
            self._retired,
            self._tabs_opened,
            pids,
        )

    def chromium_pids(self) -> list[int]:
        """Every live process of every browser this object runs (for tests and measures)."""
        return sorted(
            {pid for i in self._instances if i.chromium is not None for pid in i.chromium.pids()}
        )

    async def render(
        self,
        url: str,
        *,
        document: BrowserResponse,
        fetch: Fetch,
        time_limit: float | None = None,
        wait_for: str | None = None,
        screenshot: bool = False,
    ) -> Rendered:
        """Render ``url`` whose response the crawler already has (``document``: the browser's
        own request for it is answered from it, not fetched again); every other request of
        the page goes to ``fetch`` (which returns a :class:`BrowserResponse` or a
        :class:`Refusal`; a :class:`~trio_crawler.CrawlerError` it raises counts as a
        refusal, anything else fails the render).

        The page is done at its load event followed by ``quiet_period`` seconds without a
        request in flight, and (with ``wait_for``, a CSS selector) once an element matches;
        at ``time_limit`` (default ``options.time_limit``) it is cut: its DOM is still
        returned, with ``settled=False``. Waits for a free tab first (``concurrency``).

        Raises :class:`PageCrashed`, :class:`PageStuck`, :class:`BrowserCrashed` (the next
        render starts a new browser), :class:`BrowserUnavailable` or :class:`RenderError`;
        cancellation closes the page.
        """
        if not url.startswith(("http://", "https://")):
            raise RenderError(f"only http and https pages are rendered, not {url!r}")
        if self._closed:
            raise RuntimeError("Browser used after its 'async with' block")
        limit = self.options.time_limit if time_limit is None else time_limit
        if not limit > 0:
            raise ValueError(f"time_limit must be positive, not {limit}")
        async with self._tabs:
            try:
                instance = await self._instance()
            except RenderError:
                self._failed += 1
                raise
            instance.active += 1
            try:
                rendered = await self._render_in(
                    instance, url, document, fetch, limit, wait_for, screenshot
                )
            except BaseException as exc:
                if not isinstance(exc, trio.Cancelled):
                    self._failed += 1
                if isinstance(exc, BrowserError):
                    # a browser that crashed, or hung, is not used again
                    self._retire(instance, crashed=isinstance(exc, BrowserCrashed))
                raise
            finally:
                instance.active -= 1
                instance.renders += 1
                self._check(instance)
            self._rendered += 1
            return rendered

    async def _render_in(
        self,
        instance: _Instance,
        url: str,
        document: BrowserResponse,
        fetch: Fetch,
        limit: float,
        wait_for: str | None,
        screenshot: bool,
    ) -> Rendered:
        """One page in a tab of ``instance``: an idle tab or a new one; the tab goes back to
        the idle ones, reset, when the page ended well and it has pages left, else it is
        closed. The whole is bounded: a browser that does not answer is hung."""
        options = self.options
        bound = limit + options.stuck_timeout * 2 + _SLACK
        tab: Tab | None = None
        keep = False
        try:
            with trio.fail_after(bound):
                if instance.idle:
                    tab = instance.idle.pop()
                else:
                    tab = await Tab.open(instance.connection, options)
                    self._tabs_opened += 1
                rendered = await PageRender(
                    tab, options, url, document, fetch, limit, wait_for, screenshot
                ).run()
                tab.renders += 1
                if rendered.settled and tab.renders < options.pages_per_tab:
                    keep = await tab.reset(rendered, options.stuck_timeout)
                return rendered
        except trio.TooSlowError:
            raise BrowserCrashed(
                f"the browser did not finish {url} within {bound:g}s: it is hung"
            ) from None
        except PageStuck as exc:
            stuck = exc
        finally:
            if tab is not None:
                if keep and instance.usable:
                    instance.idle.append(tab)
                else:
                    tab.close()
        # the page's renderer is stuck, or the whole browser? The browser process answers
        # this itself, whatever its pages do.
        with trio.move_on_after(_PROBE_TIMEOUT):
            await instance.connection.execute("Browser.getVersion")
            raise stuck
        raise BrowserCrashed(f"the browser is hung: {stuck}") from stuck

    async def _instance(self) -> _Instance:
        async with self._launch:
            current = self._current
            if current is None or not current.usable:
                if current is not None:
                    self._retire(current, crashed=current.connection.broken.is_set())
                current = await self._nursery.start(_Instance(self).run)
                self._current = current
            return current

    def _retire(self, instance: _Instance, *, crashed: bool = False) -> None:
        if not instance.retired:
            instance.retired = True
            if crashed:
                self._crashed += 1
            else:
                self._retired += 1
        if instance.active == 0 or instance.connection.broken.is_set():
            instance.stop.set()

    def _check(self, instance: _Instance) -> None:
        """Retire the browser after its page quota, or when its memory is over the bound."""
        if instance.retired:
            self._retire(instance)
            return
        if instance.renders >= self.options.max_renders_per_browser:
            self._retire(instance)
            return
        now = trio.current_time()
        if now - instance.memory_checked >= _MEMORY_CHECK_INTERVAL:
            instance.memory_checked = now
            if instance.chromium is not None and (
                instance.chromium.use().pss > self.options.max_browser_rss
            ):
                self._retire(instance)

    def _close(self) -> None:
        self._closed = True
        for instance in list(self._instances):
            instance.retired = True
            instance.stop.set()


async def _close_popups(connection: CdpConnection) -> None:
    """Close every window a page opens (``window.open``, ``target=_blank``) as soon as the
    browser reports it. Its page records it (``Page.windowOpen``); a request it made in
    between was not intercepted, so it went to the dead-end proxy and failed."""
    async for event in connection.browser_events:
        if event.method == "Target.targetCreated":
            info = event.params.get("targetInfo") or {}
            if info.get("openerId") and info.get("type") == "page":
                connection.send_nowait("Target.closeTarget", {"targetId": info.get("targetId")})


@contextlib.asynccontextmanager
async def open_browser(options: BrowserOptions | None = None) -> AsyncIterator[Browser]:
    """A :class:`Browser` for the ``async with`` block. Chromium starts at the first render
    (so a crawl that renders nothing starts none); every browser process is killed, and
    its profile directory removed, when the block ends, however it ends."""
    async with trio.open_nursery() as nursery:
        browser = Browser(nursery, options or BrowserOptions())
        try:
            yield browser
        finally:
            browser._close()
            nursery.cancel_scope.cancel()
