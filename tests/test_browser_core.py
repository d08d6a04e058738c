"""The browser layer without a browser: its pure decisions, and the DevTools connection
over in-memory streams (a fake browser answering on the other end)."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
import trio
import trio.testing

from trio_crawler import CrawlerError, SettingsError
from trio_crawler._browser import (
    DEFAULT_REFUSED_TYPES,
    BrowserCrashed,
    BrowserOptions,
    BrowserRequest,
    BrowserResponse,
    BrowserUnavailable,
    CdpError,
    find_chromium,
    open_browser,
)
from trio_crawler._browser.cdp import CdpConnection
from trio_crawler._browser.chromium import process_tree, tree_use
from trio_crawler._browser.protocol import (
    Event,
    Framer,
    MessageTooLarge,
    Reply,
    browser_request,
    chromium_args,
    clean_headers,
    console_text,
    decide,
    encode_message,
    exception_text,
    fulfil_params,
    parse_message,
)


# --------------------------------------------------------------------------- framing
def test_framer_splits_messages_across_and_within_chunks() -> None:
    framer = Framer()
    assert framer.feed(b'{"a":') == []
    assert framer.pending == 5
    assert framer.feed(b'1}\0{"b":2}\0{"c"') == [b'{"a":1}', b'{"b":2}']
    assert framer.feed(b":3}\0") == [b'{"c":3}']
    assert framer.pending == 0
    assert framer.feed(b"\0\0") == [b"", b""]


def test_framer_refuses_a_message_over_its_bound() -> None:
    framer = Framer(max_message=10)
    framer.feed(b"12345")
    with pytest.raises(MessageTooLarge):
        framer.feed(b"678901")


def test_messages_are_parsed_into_replies_and_events() -> None:
    assert parse_message(b'{"id": 3, "result": {"x": 1}}') == Reply(3, {"x": 1}, None)
    assert parse_message(b'{"id": 4, "error": {"code": -32000, "message": "no"}}') == Reply(
        4, {}, (-32000, "no")
    )
    assert parse_message(b'{"method": "A.b", "params": {"k": 1}, "sessionId": "S"}') == Event(
        "A.b", {"k": 1}, "S"
    )
    assert parse_message(b'{"method": "A.b"}') == Event("A.b", {}, None)
    for junk in (b"not json", b"[1, 2]", b'{"neither": 1}', b'{"id": "x"}'):
        assert parse_message(junk) is None


def test_a_command_is_encoded_with_its_session() -> None:
    raw = encode_message(7, "Page.navigate", {"url": "http://x/"}, "S1")
    assert raw.endswith(b"\0")
    assert json.loads(raw[:-1]) == {
        "id": 7,
        "method": "Page.navigate",
        "params": {"url": "http://x/"},
        "sessionId": "S1",
    }
    assert json.loads(encode_message(8, "Browser.getVersion", None, None)[:-1]) == {
        "id": 8,
        "method": "Browser.getVersion",
    }


# --------------------------------------------------------------------------- decisions
def _decide(**overrides: Any) -> tuple[str, str | None]:
    args: dict[str, Any] = {
        "url": "http://example.com/x.js",
        "resource_type": "Script",
        "main_frame": False,
        "document_served": True,
        "refused_types": DEFAULT_REFUSED_TYPES,
        "answered": 0,
        "max_subrequests": 10,
    }
    args.update(overrides)
    decision = decide(**args)
    return decision.action, decision.reason


def test_the_main_frames_first_document_is_the_page_and_later_ones_navigations() -> None:
    assert _decide(resource_type="Document", main_frame=True, document_served=False) == (
        "document",
        None,
    )
    assert _decide(resource_type="Document", main_frame=True)[0] == "navigation"
    # a frame's document is an ordinary request for the crawler
    assert _decide(resource_type="Document", main_frame=False) == ("fetch", None)


def test_refused_types_schemes_and_the_request_cap() -> None:
    assert _decide(resource_type="Image") == ("refuse", "type Image")
    assert _decide(resource_type="Font") == ("refuse", "type Font")
    assert _decide(resource_type="Image", refused_types=frozenset()) == ("fetch", None)
    assert _decide(url="ftp://example.com/x") == ("refuse", "scheme not fetched")
    assert _decide(answered=10) == ("refuse", "over 10 subrequests")
    assert _decide(answered=9) == ("fetch", None)


def test_a_paused_request_becomes_a_browser_request() -> None:
    params = {
        "requestId": "R1",
        "resourceType": "XHR",
        "request": {
            "url": "http://example.com/api",
            "urlFragment": "#top",
            "method": "POST",
            "headers": {"Referer": "http://example.com/", "Content-Type": "text/plain"},
            "postData": "héllo",
        },
    }
    request = browser_request(params)
    assert request.url == "http://example.com/api#top"
    assert request.method == "POST"
    assert request.resource_type == "XHR"
    assert ("Referer", "http://example.com/") in request.headers
    assert request.post_data == "héllo".encode()
    chunks = [b"\x00\x01", b"2"]
    entries = {
        "request": {
            "url": "http://e/",
            "postDataEntries": [{"bytes": base64.b64encode(c).decode()} for c in chunks],
        }
    }
    assert browser_request(entries).post_data == b"\x00\x012"
    assert browser_request({"request": {"url": "http://e/"}}).post_data is None


def test_framing_headers_and_invalid_headers_are_not_given_to_the_browser() -> None:
    headers = [
        ("Content-Type", "text/html"),
        ("Content-Encoding", "gzip"),
        ("content-length", "12"),
        ("Transfer-Encoding", "chunked"),
        ("Set-Cookie", "a=1"),
        ("Bad Name", "x"),
        ("X-Split", "a\r\nInjected: yes"),
    ]
    assert clean_headers(headers) == [
        {"name": "Content-Type", "value": "text/html"},
        {"name": "Set-Cookie", "value": "a=1"},
    ]


def test_fulfil_params_encode_the_body_and_bound_the_status() -> None:
    params = fulfil_params("R", BrowserResponse(404, (("X-A", "1"),), b"\xff\x00body"))
    assert params["requestId"] == "R"
    assert params["responseCode"] == 404
    assert base64.b64decode(params["body"]) == b"\xff\x00body"
    assert fulfil_params("R", BrowserResponse(999, (), b""))["responseCode"] == 502
    assert fulfil_params("R", BrowserResponse(42, (), b""))["responseCode"] == 502


def test_console_and_exception_lines() -> None:
    event = {
        "type": "error",
        "args": [
            {"type": "string", "value": "bad\nthing"},
            {"type": "number", "value": 4},
            {"type": "object", "description": "Object"},
        ],
    }
    assert console_text(event) == "console.error: bad thing 4 Object"
    assert len(console_text({"type": "error", "args": [{"value": "x" * 2000}]})) == 500
    details = {
        "exceptionDetails": {
            "text": "Uncaught",
            "exception": {"description": "TypeError: no\n    at x"},
        }
    }
    assert exception_text(details) == "uncaught: TypeError: no at x"
    assert exception_text({"exceptionDetails": {"text": "Uncaught"}}) == "uncaught: Uncaught"


def test_the_command_line_closes_every_way_out() -> None:
    options = BrowserOptions(js_heap_mb=64, extra_args=("--lang=fr",), viewport=(800, 600))
    args = chromium_args(
        options, profile_dir="/p", sink_proxy="http://127.0.0.1:9", run_as_root=True
    )
    assert "--remote-debugging-pipe" in args
    assert "--user-data-dir=/p" in args
    assert "--proxy-server=http://127.0.0.1:9" in args
    assert "--proxy-bypass-list=<-loopback>" in args
    assert "--host-resolver-rules=MAP * ~NOTFOUND" in args
    assert "--js-flags=--max-old-space-size=64" in args
    assert "--window-size=800,600" in args
    assert "--no-sandbox" in args
    assert args[-2:] == ["--lang=fr", "about:blank"]
    assert not any(a.startswith("--remote-debugging-port") for a in args)
    as_user = chromium_args(options, profile_dir="/p", sink_proxy="x", run_as_root=False)
    assert "--no-sandbox" not in as_user
    forced = chromium_args(
        BrowserOptions(sandbox=False), profile_dir="/p", sink_proxy="x", run_as_root=False
    )
    assert "--no-sandbox" in forced


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("concurrency", 0),
        ("time_limit", 0.0),
        ("quiet_period", -1.0),
        ("quiet_period", 20.0),
        ("js_heap_mb", 0),
        ("max_subrequests", -1),
        ("viewport", (0, 10)),
        ("stuck_timeout", float("nan")),
    ],
)
def test_nonsense_options_are_one_line_errors(field: str, value: object) -> None:
    with pytest.raises(SettingsError) as err:
        BrowserOptions(**{field: value})  # type: ignore[arg-type]
    assert field.split("_")[0] in str(err.value)
    assert "\n" not in str(err.value)


def test_errors_are_crawler_errors() -> None:
    assert issubclass(BrowserCrashed, CrawlerError)
    assert issubclass(BrowserUnavailable, CrawlerError)
    assert str(CdpError("Page.navigate", -32000, "boom")) == "Page.navigate: boom (-32000)"


def test_finding_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_CRAWLER_CHROMIUM", "/nonexistent/chrome")
    with pytest.raises(BrowserUnavailable, match="not an executable"):
        find_chromium()
    assert find_chromium("/bin/sh") == "/bin/sh"  # an explicit binary wins over the variable
    monkeypatch.setenv("TRIO_CRAWLER_CHROMIUM", "/bin/sh")
    assert find_chromium() == "/bin/sh"
    monkeypatch.delenv("TRIO_CRAWLER_CHROMIUM")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BrowserUnavailable, match="no Chromium found"):
        find_chromium()


def test_process_tree_use_of_this_process() -> None:
    tree = process_tree(os.getpid())
    assert os.getpid() in tree
    use = tree_use([os.getpid()])
    assert use.processes == 1 and use.rss > 0 and use.pss > 0 and use.cpu > 0
    assert tree_use([2**22 + 12345]).processes == 0  # a process that is not there


async def test_no_browser_starts_before_the_first_render() -> None:
    async with open_browser(BrowserOptions(executable="/nonexistent/chromium")) as browser:
        assert browser.chromium_pids() == []
        assert browser.statistics().browsers_started == 0
    with pytest.raises(RuntimeError, match="after its 'async with' block"):
        await browser.render("http://x/", document=BrowserResponse(200, (), b""), fetch=_never)


async def _never(request: BrowserRequest) -> BrowserResponse:
    raise AssertionError("not called")


# --------------------------------------------------------------------------- the connection
class FakeBrowser:
    """The browser's end of the pipe: reads commands, answers by a table, sends events."""

    def __init__(self, to_crawler: trio.abc.SendStream, from_crawler: trio.abc.ReceiveStream):
        self.out = to_crawler
        self.inp = from_crawler
        self.commands: list[dict[str, Any]] = []
        self.held: list[int] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.out.send_all(json.dumps(message).encode() + b"\0")

    async def serve(self) -> None:
        framer = Framer()
        while data := await self.inp.receive_some(65536):
            for raw in framer.feed(data):
                command = json.loads(raw)
                self.commands.append(command)
                method = command["method"]
                if method == "Hold":
                    self.held.append(command["id"])
                elif method == "Fail":
                    await self.send(
                        {"id": command["id"], "error": {"code": -32000, "message": "no such thing"}}
                    )
                else:
                    await self.send({"id": command["id"], "result": {"echo": method}})


async def _connected(
    nursery: trio.Nursery, *, exit_grace: float = 0.0
) -> tuple[CdpConnection, FakeBrowser]:
    to_browser_send, to_browser_receive = trio.testing.memory_stream_one_way_pair()
    to_crawler_send, to_crawler_receive = trio.testing.memory_stream_one_way_pair()
    connection = CdpConnection(to_browser_send, to_crawler_receive, exit_grace=exit_grace)
    fake = FakeBrowser(to_crawler_send, to_browser_receive)
    nursery.start_soon(fake.serve)
    await nursery.start(connection.run)
    return connection, fake


async def test_commands_get_their_own_answers() -> None:
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            connection, fake = await _connected(nursery)
            results: dict[str, Any] = {}

            async def one(name: str) -> None:
                results[name] = await connection.execute(name, {"n": 1}, session_id="S")

            async with trio.open_nursery() as inner:
                for name in ("A.a", "B.b", "C.c"):
                    inner.start_soon(one, name)
            assert results == {n: {"echo": n} for n in ("A.a", "B.b", "C.c")}
            assert all(c["sessionId"] == "S" for c in fake.commands)
            with pytest.raises(CdpError, match="no such thing"):
                await connection.execute("Fail")
            assert await connection.execute_all([("X.x", {}), ("Y.y", {})]) == [
                {"echo": "X.x"},
                {"echo": "Y.y"},
            ]
            with pytest.raises(CdpError):
                await connection.execute_all([("X.x", {}), ("Fail", {})])
            nursery.cancel_scope.cancel()


async def test_events_go_to_their_session_and_unknown_ones_are_dropped() -> None:
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            connection, fake = await _connected(nursery)
            session = connection.session("S1")
            session.adopt("W1")  # a worker of that page
            await fake.send({"method": "Page.loadEventFired", "params": {}, "sessionId": "S1"})
            await fake.send({"method": "Other.event", "params": {}, "sessionId": "nobody"})
            await fake.send(
                {"method": "Fetch.requestPaused", "params": {"requestId": "r"}, "sessionId": "W1"}
            )
            await fake.send({"method": "Target.targetCreated", "params": {}})
            first = await session.events.receive()
            second = await session.events.receive()
            assert (first.method, first.session_id) == ("Page.loadEventFired", "S1")
            assert (second.method, second.session_id) == ("Fetch.requestPaused", "W1")
            assert (await connection.browser_events.receive()).method == "Target.targetCreated"
            # the worker going away leaves the page's session open; the page going, closes it
            await fake.send({"method": "Target.detachedFromTarget", "params": {"sessionId": "W1"}})
            await fake.send({"method": "Target.detachedFromTarget", "params": {"sessionId": "S1"}})
            with pytest.raises(trio.EndOfChannel):
                await session.events.receive()
            assert session.closed
            nursery.cancel_scope.cancel()


async def _holding(
    nursery: trio.Nursery, connection: CdpConnection, fake: FakeBrowser
) -> list[BaseException]:
    """A command the fake browser holds unanswered; what it raises, once it does."""
    caught: list[BaseException] = []

    async def waiting() -> None:
        try:
            await connection.execute("Hold")
        except BrowserCrashed as exc:
            caught.append(exc)

    nursery.start_soon(waiting)
    while not fake.held:
        await trio.testing.wait_all_tasks_blocked()
    return caught


@pytest.mark.parametrize("exited", [True, False])
async def test_a_closed_pipe_waits_a_moment_for_the_exit_code(
    autojump_clock: trio.testing.MockClock, exited: bool
) -> None:
    # the browser's pipe and its process end together; which one the crawl notices first is
    # a race, and the exit code is the better reason: it gets the grace to win it
    async with trio.open_nursery() as nursery:
        connection, fake = await _connected(nursery, exit_grace=1.0)
        caught = await _holding(nursery, connection, fake)
        await fake.out.aclose()
        start = trio.current_time()
        if exited:
            await trio.sleep(0.5)
            assert not connection.broken.is_set() and not caught
            connection.fail("the browser exited (code -9)")  # what its process watcher says
        await connection.broken.wait()
        await trio.testing.wait_all_tasks_blocked()
        waited = trio.current_time() - start
        if exited:
            assert waited == pytest.approx(0.5) and "exited (code -9)" in str(caught[0])
        else:
            assert waited == pytest.approx(1.0) and "closed its DevTools pipe" in str(caught[0])
        nursery.cancel_scope.cancel()


async def test_a_closed_pipe_breaks_every_waiter_and_session() -> None:
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            connection, fake = await _connected(nursery)
            session = connection.session("S")
            caught = await _holding(nursery, connection, fake)
            await fake.out.aclose()  # the browser died
            await connection.broken.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert len(caught) == 1 and "closed its DevTools pipe" in str(caught[0])
            with pytest.raises(trio.EndOfChannel):
                await session.events.receive()
            with pytest.raises(BrowserCrashed):
                await connection.execute("After")
            with pytest.raises(BrowserCrashed):
                connection.session("T")
            connection.send_nowait("Ignored")  # no error: nobody waits for it
            nursery.cancel_scope.cancel()


async def test_a_caller_that_gives_up_leaves_no_waiter_behind() -> None:
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            connection, fake = await _connected(nursery)
            with trio.move_on_after(0.01):
                await connection.execute("Hold")
            assert connection._waiters == {}
            # a late answer for it is dropped, the next command works
            await fake.send({"id": fake.held[0], "result": {}})
            assert await connection.execute("Next") == {"echo": "Next"}
            nursery.cancel_scope.cancel()
