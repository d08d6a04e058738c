"""One page's render in one tab: the tab (:class:`Tab`, reused for up to ``pages_per_tab``
pages) and the render itself (:class:`PageRender`: interception, the answers from the crawler,
the events, when the page is done, its DOM and screenshot). The browser that owns tabs and
the theory of operation: :mod:`.render` and the package docstring."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import trio

from .._exceptions import CrawlerError
from .cdp import CdpConnection, CdpSession
from .model import (
    BrowserCrashed,
    BrowserOptions,
    BrowserRequest,
    BrowserResponse,
    CdpError,
    Fetch,
    PageCrashed,
    PageStuck,
    Refusal,
    Rendered,
    RenderError,
    Subrequest,
)
from .protocol import (
    DOM_EXPRESSION,
    Event,
    browser_request,
    console_text,
    decide,
    exception_text,
    fulfil_params,
    wait_for_expression,
)

__all__ = ["PageRender", "Tab"]

#: How long a DOM read may wait before the page's running script is terminated.
_TERMINATE_AFTER = 0.5


#: Cleared in a page before its tab is reused: what the DevTools commands below do not clear.
_FORGET_EXPRESSION = """(() => { try { sessionStorage.clear(); } catch (e) {}
  try { localStorage.clear(); } catch (e) {} window.name = ""; })()"""


class Tab:
    """A tab in a browser context of its own, set up once (interception, events, popups
    and workers attached paused), used for up to ``pages_per_tab`` pages in turn.

    Between two pages :meth:`reset` navigates it to ``about:blank`` (the old page's scripts
    and requests end), drops the events the old page left, and clears the context's
    cookies, its cache, and the storage of every origin the page used. What survives a
    reset, for the next page in the same tab only: ``sessionStorage`` and ``window.name`` of
    origins other than the page's own (frames), and ``history.length``. A renderer process
    lives as long as its tab: starting a context and a tab costs about 60 ms of Chromium's
    CPU, reusing one about 20 (``scripts/bench_render.py``).
    """

    def __init__(self, connection: CdpConnection, context_id: str, session: CdpSession) -> None:
        self.connection = connection
        self.context_id = context_id
        self.session = session
        self.main_frame = ""
        self.renders = 0

    @classmethod
    async def open(cls, connection: CdpConnection, options: BrowserOptions) -> Tab:
        result = await connection.execute("Target.createBrowserContext", {"disposeOnDetach": True})
        context_id = str(result["browserContextId"])
        session: CdpSession | None = None
        try:
            result = await connection.execute(
                "Target.createTarget", {"url": "about:blank", "browserContextId": context_id}
            )
            result = await connection.execute(
                "Target.attachToTarget", {"targetId": result["targetId"], "flatten": True}
            )
            session = connection.session(str(result["sessionId"]))
            commands: list[tuple[str, Mapping[str, Any]]] = [
                ("Page.enable", {}),
                ("Runtime.enable", {}),
                ("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
                (
                    "Target.setAutoAttach",
                    {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
                ),
            ]
            if options.user_agent:
                commands.append(
                    ("Emulation.setUserAgentOverride", {"userAgent": options.user_agent})
                )
            commands.append(("Page.getFrameTree", {}))
            # sent together, answered together: one round trip's wait, not six
            results = await connection.execute_all(commands, session_id=session.session_id)
        except BaseException:
            if session is not None:
                session.close()
            connection.send_nowait("Target.disposeBrowserContext", {"browserContextId": context_id})
            raise
        tab = cls(connection, context_id, session)
        tab.main_frame = str(results[-1]["frameTree"]["frame"]["id"])
        return tab

    async def reset(self, rendered: Rendered, bound: float) -> bool:
        """Make the tab blank and forget the page; False if it could not (then close it)."""
        session = self.session
        origins = {_origin(rendered.url)}
        origins.update(_origin(s.url) for s in rendered.subrequests if s.outcome == "fulfilled")
        with trio.move_on_after(bound):
            try:
                forget = {"expression": _FORGET_EXPRESSION}
                await session.execute("Runtime.evaluate", forget)
                await session.execute("Page.navigate", {"url": "about:blank"})
                commands: list[tuple[str, Mapping[str, Any]]] = [
                    ("Network.clearBrowserCookies", {}),
                    ("Network.clearBrowserCache", {}),
                    *(
                        ("Storage.clearDataForOrigin", {"origin": o, "storageTypes": "all"})
                        for o in sorted(origins)
                        if o
                    ),
                    ("Page.getFrameTree", {}),
                ]
                results = await self.connection.execute_all(commands, session_id=session.session_id)
            except RenderError:
                return False
            # what the old page left: its events before about:blank committed
            while True:
                try:
                    session.events.receive_nowait()
                except trio.WouldBlock:
                    break
                except trio.EndOfChannel:
                    return False
            session.forget_children()
            self.main_frame = str(results[-1]["frameTree"]["frame"]["id"])
            return True
        return False

    def close(self) -> None:
        """Close the tab and its context; nobody waits for the answer."""
        self.session.close()
        self.connection.send_nowait(
            "Target.disposeBrowserContext", {"browserContextId": self.context_id}
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


class PageRender:
    """One page: a fresh browser context and tab, its events, its requests, its result."""

    def __init__(
        self,
        tab: Tab,
        options: BrowserOptions,
        url: str,
        document: BrowserResponse,
        fetch: Fetch,
        time_limit: float,
        wait_for: str | None,
        screenshot: bool,
    ) -> None:
        self.tab = tab
        self.connection = tab.connection
        self.session = tab.session
        self.main_frame = tab.main_frame
        self.options = options
        self.url = url
        self.document = document
        self.fetch = fetch
        self.time_limit = time_limit
        self.wait_for = wait_for
        self.want_screenshot = screenshot
        self.document_served = False
        self.loaded = trio.Event()
        self.found = trio.Event()
        # requests paused and not yet answered; an Event per quiet/busy edge
        self.inflight = 0
        self.idle = trio.Event()
        self.idle.set()
        self.activity = trio.Event()
        self.answered = 0
        self.fetch_limiter = trio.CapacityLimiter(options.fetch_concurrency)
        self.subrequests: list[Subrequest] = []
        self.subrequests_dropped = 0
        self.navigations: list[str] = []
        self.popups: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.errors_dropped = 0
        self.crashed = False
        self.failure: Exception | None = None
        self.scope: trio.CancelScope | None = None

    # ------------------------------------------------------------------ the whole render
    async def run(self) -> Rendered:
        return await self._render(self.session, trio.current_time())

    async def _render(self, session: CdpSession, started: float) -> Rendered:
        deadline = started + self.time_limit
        # The page's tasks do not raise into the nursery (that would wrap their error in an
        # ExceptionGroup): the first failure is kept in self.failure, the nursery cancelled,
        # and the failure raised here, alone.
        async with trio.open_nursery() as nursery:
            self.scope = nursery.cancel_scope
            self._start(nursery, self._events, session, nursery)
            try:
                settled, cut_reason = await self._settle(session, nursery, deadline)
                final_url, html, truncated = await self._read_dom(session, nursery, cut=not settled)
                shot = await self._screenshot(session) if self.want_screenshot else None
            except Exception as exc:
                self._fail_page(exc)
            nursery.cancel_scope.cancel()
        if self.failure is not None:
            raise self.failure
        return Rendered(
            url=self.url,
            final_url=final_url,
            status=self.document.status,
            html=html,
            html_truncated=truncated,
            settled=settled,
            cut_reason=cut_reason,
            navigations=tuple(self.navigations),
            popups=tuple(self.popups),
            subrequests=tuple(self.subrequests),
            subrequests_dropped=self.subrequests_dropped,
            dialogs=tuple(self.dialogs),
            errors=tuple(self.errors),
            errors_dropped=self.errors_dropped,
            screenshot=shot,
            elapsed=trio.current_time() - started,
        )

    def _start(self, nursery: trio.Nursery, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Start a task of the page whose failure fails the page (see :meth:`_render`)."""

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:
                self._fail_page(exc)

        nursery.start_soon(guarded, name=getattr(fn, "__name__", "page task"))

    def _fail_page(self, exc: Exception) -> None:
        if self.failure is None:
            self.failure = exc
        if self.scope is not None:
            self.scope.cancel()

    async def _settle(
        self, session: CdpSession, nursery: trio.Nursery, deadline: float
    ) -> tuple[bool, str | None]:
        """Navigate and wait for the page to be done; ``(settled, why not)``."""
        reason = "load"
        with trio.move_on_at(deadline):
            result = await session.execute("Page.navigate", {"url": self.url})
            if result.get("errorText"):
                raise RenderError(f"the page did not load: {result['errorText']} ({self.url})")
            await self.loaded.wait()
            reason = "network"
            if self.wait_for is not None:
                self._start(nursery, self._wait_for, session, self.wait_for)
            await self._quiet()
            if self.wait_for is not None:
                reason = "wait_for"
                await self.found.wait()
            return True, None
        return False, reason

    async def _quiet(self) -> None:
        """Return once no request has been in flight for ``quiet_period`` seconds."""
        while True:
            await self.idle.wait()
            self.activity = trio.Event()
            with trio.move_on_after(self.options.quiet_period) as quiet:
                await self.activity.wait()
            if quiet.cancelled_caught and self.inflight == 0:
                return

    async def _wait_for(self, session: CdpSession, selector: str) -> None:
        result = await session.execute(
            "Runtime.evaluate",
            {
                "expression": wait_for_expression(selector),
                "awaitPromise": True,
                "returnByValue": True,
            },
        )
        if "exceptionDetails" in result:
            raise RenderError(f"wait_for {selector!r} is not a valid CSS selector")
        self.found.set()

    async def _read_dom(
        self, session: CdpSession, nursery: trio.Nursery, *, cut: bool
    ) -> tuple[str, str, bool]:
        """``(location.href, outerHTML, cut?)``. A page cut at its time limit may be running a
        script that never ends: after a short wait the script is terminated; a page that still
        does not answer within ``stuck_timeout`` is :class:`PageStuck`."""
        params = {
            "expression": DOM_EXPRESSION.format(limit=self.options.max_dom_chars),
            "returnByValue": True,
        }
        value: Any = None
        with trio.move_on_after(self.options.stuck_timeout):
            for _ in range(2):
                terminator = trio.CancelScope()

                async def terminate(scope: trio.CancelScope = terminator) -> None:
                    with scope:
                        await trio.sleep(_TERMINATE_AFTER)
                        self.connection.send_nowait(
                            "Runtime.terminateExecution", session_id=session.session_id
                        )

                if cut:
                    self._start(nursery, terminate)
                try:
                    result = await session.execute("Runtime.evaluate", params)
                finally:
                    terminator.cancel()
                if "exceptionDetails" not in result:  # else terminated itself: once more
                    value = result.get("result", {}).get("value")
                    break
        if not (isinstance(value, list) and len(value) == 3):
            raise PageStuck(
                f"the page's main thread did not answer within "
                f"{self.options.stuck_timeout:g}s ({self.url})"
            )
        return str(value[0]), str(value[1]), bool(value[2])

    async def _screenshot(self, session: CdpSession) -> bytes:
        with trio.move_on_after(self.options.stuck_timeout):
            result = await session.execute("Page.captureScreenshot", {"format": "png"})
            return base64.b64decode(result["data"])
        raise PageStuck(f"no screenshot within {self.options.stuck_timeout:g}s ({self.url})")

    # ------------------------------------------------------------------ events
    async def _events(self, session: CdpSession, nursery: trio.Nursery) -> None:
        async for event in session.events:
            handler = _HANDLERS.get(event.method)
            if handler is not None:
                handler(self, event, nursery)
            if self.crashed:
                raise PageCrashed(f"the page's renderer crashed ({self.url})")
        # the channel closed: the browser broke, or the tab went away under us
        if self.connection.broken.is_set():
            raise BrowserCrashed(f"{self.connection.reason} (rendering {self.url})")
        raise PageCrashed(f"the page's tab was closed ({self.url})")

    def _on_paused(self, event: Event, nursery: trio.Nursery) -> None:
        params = event.params
        request_id = str(params.get("requestId"))
        request = params.get("request") or {}
        url = str(request.get("url", ""))
        resource_type = str(params.get("resourceType", "Other"))
        main_frame = event.session_id == self._page_session and params.get("frameId") == (
            self.main_frame
        )
        decision = decide(
            url=url,
            resource_type=resource_type,
            main_frame=main_frame,
            document_served=self.document_served,
            refused_types=self.options.refused_types,
            answered=self.answered,
            max_subrequests=self.options.max_subrequests,
        )
        if decision.action == "navigation":
            self.navigations.append(url)
            self._fail(event.session_id, request_id, "Aborted")
            return
        self._busy()
        if decision.action == "document":
            self.document_served = True
            self._start(nursery, self._answer, event.session_id, request_id, None, self.document)
            return
        if decision.action == "refuse":
            reason = decision.reason or "refused"
            self._record(Subrequest(url, resource_type, "refused", reason=reason))
            self._fail(event.session_id, request_id, "BlockedByClient")
            self._done()
            return
        self.answered += 1
        self._start(
            nursery,
            self._fetch_and_answer,
            event.session_id,
            request_id,
            browser_request(params),
        )

    @property
    def _page_session(self) -> str:
        return self.session.session_id

    async def _fetch_and_answer(
        self, session_id: str | None, request_id: str, request: BrowserRequest
    ) -> None:
        try:
            async with self.fetch_limiter:
                try:
                    answer = await self.fetch(request)
                except CrawlerError as exc:
                    answer = Refusal(str(exc))
        except BaseException:
            self._done()
            raise
        await self._answer(session_id, request_id, request, answer)

    async def _answer(
        self,
        session_id: str | None,
        request_id: str,
        request: BrowserRequest | None,
        answer: BrowserResponse | Refusal,
    ) -> None:
        """Give ``answer`` to the browser; record it (``request`` None: the document)."""
        try:
            if isinstance(answer, Refusal):
                self._fail(session_id, request_id, "BlockedByClient")
                rejected = None
            else:
                try:
                    await self.connection.execute(
                        "Fetch.fulfillRequest",
                        fulfil_params(request_id, answer),
                        session_id=session_id,
                    )
                    rejected = None
                except CdpError as exc:
                    self._fail(session_id, request_id, "Failed")
                    rejected = f"the browser refused the answer: {exc.message}"
            if request is None:
                if rejected is not None:
                    raise RenderError(f"{rejected} (the document of {self.url})")
                return
            if isinstance(answer, Refusal) or rejected is not None:
                reason = answer.reason if isinstance(answer, Refusal) else rejected
                outcome = Subrequest(request.url, request.resource_type, "refused", reason=reason)
            else:
                outcome = Subrequest(
                    request.url, request.resource_type, "fulfilled", status=answer.status
                )
            self._record(outcome)
        finally:
            self._done()

    def _fail(self, session_id: str | None, request_id: str, reason: str) -> None:
        self.connection.send_nowait(
            "Fetch.failRequest",
            {"requestId": request_id, "errorReason": reason},
            session_id=session_id,
        )

    def _record(self, outcome: Subrequest) -> None:
        if len(self.subrequests) < self.options.max_subrequests + 100:
            self.subrequests.append(outcome)
        else:
            self.subrequests_dropped += 1

    def _busy(self) -> None:
        self.inflight += 1
        if self.idle.is_set():
            self.idle = trio.Event()
        self.activity.set()

    def _done(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.idle.set()

    def _on_load(self, event: Event, nursery: trio.Nursery) -> None:
        if self.document_served and event.session_id == self._page_session:
            self.loaded.set()

    def _on_dialog(self, event: Event, nursery: trio.Nursery) -> None:
        params = event.params
        kind = str(params.get("type", "dialog"))
        self._message(self.dialogs, f"{kind}: {params.get('message', '')}"[:500])
        self.connection.send_nowait(
            "Page.handleJavaScriptDialog", {"accept": False}, session_id=event.session_id
        )

    def _on_console(self, event: Event, nursery: trio.Nursery) -> None:
        if event.params.get("type") in ("error", "assert"):
            self._message(self.errors, console_text(event.params))

    def _on_exception(self, event: Event, nursery: trio.Nursery) -> None:
        self._message(self.errors, exception_text(event.params))

    def _message(self, into: list[str], text: str) -> None:
        if len(into) < self.options.max_messages:
            into.append(text)
        elif into is self.errors:
            self.errors_dropped += 1

    def _on_window_open(self, event: Event, nursery: trio.Nursery) -> None:
        if len(self.popups) < self.options.max_messages:
            self.popups.append(str(event.params.get("url", "")))

    def _on_crash(self, event: Event, nursery: trio.Nursery) -> None:
        self.crashed = True

    def _on_attached(self, event: Event, nursery: trio.Nursery) -> None:
        """A target the page started: a popup is closed before it runs; a worker (or a
        frame in its own process) gets its requests paused like the page's, then runs."""
        params = event.params
        info = params.get("targetInfo") or {}
        child = str(params.get("sessionId"))
        if info.get("type") == "page":
            self.connection.send_nowait("Target.closeTarget", {"targetId": info.get("targetId")})
            return
        self.session.adopt(child)
        for method, extra in (
            ("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
            ("Runtime.runIfWaitingForDebugger", {}),
        ):
            self.connection.send_nowait(method, extra, session_id=child)


_HANDLERS = {
    "Fetch.requestPaused": PageRender._on_paused,
    "Page.loadEventFired": PageRender._on_load,
    "Page.javascriptDialogOpening": PageRender._on_dialog,
    "Runtime.consoleAPICalled": PageRender._on_console,
    "Runtime.exceptionThrown": PageRender._on_exception,
    "Inspector.targetCrashed": PageRender._on_crash,
    "Page.windowOpen": PageRender._on_window_open,
    "Target.attachedToTarget": PageRender._on_attached,
}
