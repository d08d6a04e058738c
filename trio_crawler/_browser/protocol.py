"""The pure part of the browser layer: no I/O, no Trio, tested without a browser.

* :class:`Framer` splits the DevTools pipe's byte stream into messages (JSON, each ended by
  a NUL byte) without copying a large message more than once;
* :func:`parse_message` sorts a decoded message into a :class:`Reply` or an :class:`Event`;
* :func:`chromium_args` is the command line (what is switched off, and why);
* :func:`decide` says what to do with a paused request (fulfil it from the document, refuse
  it, or ask the crawler), :func:`browser_request` and :func:`fulfil_params` translate
  between DevTools' dictionaries and :mod:`.model`'s values;
* :func:`console_text`, :func:`exception_text`: one line for a console error or an
  uncaught exception.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

from .model import BrowserOptions, BrowserRequest, BrowserResponse

__all__ = [
    "DOM_EXPRESSION",
    "Decision",
    "Event",
    "Framer",
    "MessageTooLarge",
    "Reply",
    "browser_request",
    "chromium_args",
    "console_text",
    "decide",
    "encode_message",
    "exception_text",
    "fulfil_params",
    "parse_message",
    "wait_for_expression",
]

#: A message from the browser larger than this ends the connection (the browser is killed):
#: the DOM is cut in the page (``max_dom_chars``) and a screenshot covers the viewport only,
#: so only a broken or hostile browser sends more.
MAX_MESSAGE = 512 * 1024 * 1024


class MessageTooLarge(Exception):
    """The browser sent a message over :data:`MAX_MESSAGE` bytes."""


class Framer:
    """Splits a byte stream into NUL-terminated messages.

    Chunks are kept in a list until the NUL arrives, then joined once: a 20 MB message read
    64 KiB at a time costs one join, not 300 growing copies.
    """

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._max = max_message

    def feed(self, data: bytes) -> list[bytes]:
        """The messages completed by ``data`` (without their NUL), in order."""
        out: list[bytes] = []
        start = 0
        while True:
            end = data.find(b"\0", start)
            if end < 0:
                break
            piece = data[start:end]
            if self._parts:
                self._parts.append(piece)
                piece = b"".join(self._parts)
                self._parts = []
                self._size = 0
            out.append(piece)
            start = end + 1
        rest = data[start:]
        if rest:
            self._size += len(rest)
            if self._size > self._max:
                raise MessageTooLarge(f"a message from the browser is over {self._max} bytes")
            self._parts.append(rest)
        return out

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message held."""
        return self._size


def encode_message(
    command_id: int, method: str, params: Mapping[str, Any] | None, session_id: str | None
) -> bytes:
    message: dict[str, Any] = {"id": command_id, "method": method}
    if params:
        message["params"] = params
    if session_id is not None:
        message["sessionId"] = session_id
    return json.dumps(message, separators=(",", ":")).encode() + b"\0"


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """The answer to command ``id``: ``result``, or ``error`` (code, message)."""

    id: int
    result: dict[str, Any]
    error: tuple[int, str] | None


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """An event; ``session_id`` None for the browser's own session."""

    method: str
    params: dict[str, Any]
    session_id: str | None


def parse_message(raw: bytes) -> Reply | Event | None:
    """Decode one message; None for one that is neither a reply nor an event."""
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    if isinstance(message.get("id"), int):
        error = message.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            return Reply(
                message["id"],
                {},
                (code if isinstance(code, int) else 0, str(error.get("message", ""))),
            )
        result = message.get("result")
        return Reply(message["id"], result if isinstance(result, dict) else {}, None)
    method = message.get("method")
    if isinstance(method, str):
        params = message.get("params")
        session = message.get("sessionId")
        return Event(
            method,
            params if isinstance(params, dict) else {},
            session if isinstance(session, str) else None,
        )
    return None


def chromium_args(
    options: BrowserOptions, *, profile_dir: str, sink_proxy: str, run_as_root: bool
) -> list[str]:
    """The command line after the binary.

    Every request a page makes is paused and answered by the crawler (``Fetch.enable``); a
    request that escapes interception anyway (a WebSocket, a service worker's fetch, a
    prefetch) must fail, not reach the network: it goes to ``sink_proxy``, a loopback port
    that refuses connections (loopback too: ``<-loopback>``), and no host name resolves.
    Chromium's own traffic to its vendor's services is switched off.
    """
    width, height = options.viewport
    sandbox = options.sandbox if options.sandbox is not None else not run_as_root
    args = [
        "--headless",
        "--remote-debugging-pipe",
        f"--user-data-dir={profile_dir}",
        # nothing but the crawler's answers reaches a page
        f"--proxy-server={sink_proxy}",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--dns-prefetch-disable",
        # Chromium's own traffic and chores
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-breakpad",
        "--disable-crash-reporter",
        "--disable-client-side-phishing-detection",
        "--disable-domain-reliability",
        "--metrics-recording-only",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-pings",
        "--password-store=basic",
        "--use-mock-keychain",
        # one renderer process per page (frames of other sites in it: no extra targets to
        # intercept), pages in background tabs at full speed
        "--disable-features=IsolateOrigins,site-per-process,Translate,MediaRouter,"
        "OptimizationHints,AutofillServerCommunication,InterestFeedContentSuggestions",
        "--disable-site-isolation-trials",
        "--disable-renderer-backgrounding",
        "--disable-background-timer-throttling",
        "--disable-backgrounding-occluded-windows",
        "--disable-ipc-flooding-protection",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--mute-audio",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--js-flags=--max-old-space-size={options.js_heap_mb}",
    ]
    if not sandbox:
        args.append("--no-sandbox")
    args.extend(options.extra_args)
    args.append("about:blank")
    return args


Action: TypeAlias = Literal["document", "navigation", "refuse", "fetch"]


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a paused request: ``document`` (fulfil it from the document given),
    ``navigation`` (a main-frame navigation away: refuse and record), ``refuse`` (with
    ``reason``, without asking the crawler) or ``fetch`` (ask the crawler)."""

    action: Action
    reason: str | None = None


def decide(
    *,
    url: str,
    resource_type: str,
    main_frame: bool,
    document_served: bool,
    refused_types: frozenset[str],
    answered: int,
    max_subrequests: int,
) -> Decision:
    """Decide for one paused request. ``answered``: subrequests answered so far.

    The main frame's first document request is the page's own (its URL as the browser
    normalised it): it is answered from the document given; any later one is a navigation
    away."""
    if main_frame and resource_type == "Document":
        if not document_served:
            return Decision("document")
        return Decision("navigation", "navigation away refused")
    if resource_type in refused_types:
        return Decision("refuse", f"type {resource_type}")
    if not url.startswith(("http://", "https://")):
        return Decision("refuse", "scheme not fetched")
    if answered >= max_subrequests:
        return Decision("refuse", f"over {max_subrequests} subrequests")
    return Decision("fetch")


def browser_request(params: Mapping[str, Any]) -> BrowserRequest:
    """The :class:`BrowserRequest` of a ``Fetch.requestPaused`` event."""
    request = params.get("request") or {}
    headers = request.get("headers") or {}
    post = request.get("postData")
    if post is None:
        entries = request.get("postDataEntries") or ()
        chunks = [base64.b64decode(e["bytes"]) for e in entries if "bytes" in e]
        body = b"".join(chunks) if chunks else None
    else:
        body = str(post).encode("utf-8", "surrogatepass")
    return BrowserRequest(
        url=str(request.get("url", "")) + str(request.get("urlFragment", "")),
        method=str(request.get("method", "GET")),
        headers=tuple((str(k), str(v)) for k, v in headers.items()),
        resource_type=str(params.get("resourceType", "Other")),
        post_data=body,
    )


#: Headers about the body's transfer, not its content: the body given is already decoded and
#: whole, so these would make the browser decode it again or wait for more.
_FRAMING = frozenset(
    {
        "content-encoding",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "trailer",
        "upgrade",
    }
)


def clean_headers(headers: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """DevTools' header list, without framing headers or headers it would refuse (a name
    that is not a token, a value with a line break or NUL)."""
    out: list[dict[str, str]] = []
    for name, value in headers:
        low = name.lower()
        if low in _FRAMING or not _is_token(name):
            continue
        if any(c in value for c in "\r\n\0"):
            continue
        out.append({"name": name, "value": value})
    return out


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _is_token(name: str) -> bool:
    return bool(name) and all(c in _TOKEN_CHARS for c in name)


def fulfil_params(request_id: str, response: BrowserResponse) -> dict[str, Any]:
    """``Fetch.fulfillRequest``'s parameters for ``response``. A status the browser would
    not take (outside 100-599) becomes 502."""
    status = response.status if 100 <= response.status <= 599 else 502
    return {
        "requestId": request_id,
        "responseCode": status,
        "responseHeaders": clean_headers(response.headers),
        "body": base64.b64encode(response.body).decode("ascii"),
    }


def _remote_text(arg: Mapping[str, Any]) -> str:
    if "value" in arg:
        value = arg["value"]
        return value if isinstance(value, str) else json.dumps(value)
    text = arg.get("description") or arg.get("unserializableValue") or arg.get("type", "")
    return str(text)


def console_text(params: Mapping[str, Any], limit: int = 500) -> str:
    """One line for a ``Runtime.consoleAPICalled`` event."""
    args: Sequence[Mapping[str, Any]] = params.get("args") or ()
    text = " ".join(_remote_text(a) for a in args)
    return _one_line(f"console.{params.get('type', 'log')}: {text}", limit)


def exception_text(params: Mapping[str, Any], limit: int = 500) -> str:
    """One line for a ``Runtime.exceptionThrown`` event."""
    details = params.get("exceptionDetails") or {}
    exception = details.get("exception") or {}
    text = exception.get("description") or details.get("text") or "exception"
    return _one_line(f"uncaught: {text}", limit)


def _one_line(text: str, limit: int) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


#: Reads the page: ``[location.href, outerHTML (cut), cut?]``, in one evaluation.
DOM_EXPRESSION = """(() => {{
  const e = document.documentElement;
  const h = e ? e.outerHTML : "";
  return [String(location.href), h.length > {limit} ? h.slice(0, {limit}) : h, h.length > {limit}];
}})()"""


def wait_for_expression(selector: str) -> str:
    """A promise that resolves once ``selector`` matches an element (a MutationObserver,
    no polling); it rejects for a selector that is not valid CSS."""
    quoted = json.dumps(selector)
    return f"""new Promise((resolve) => {{
  const sel = {quoted};
  if (document.querySelector(sel)) {{ resolve(true); return; }}
  const seen = new MutationObserver(() => {{
    if (document.querySelector(sel)) {{ seen.disconnect(); resolve(true); }}
  }});
  seen.observe(document, {{childList: true, subtree: true, attributes: true}});
}})"""
