"""The request the crawler sends is the browser's: the WHATWG URL test data, and issue 16's cases.

``tests/data/urltestdata.json`` is web-platform-tests' URL parsing data (``tests/data/README.md``).
Each case is met the way a crawl meets a URL:

* with an http(s) base: as a link on a page at that base -- the resolver link extraction uses
  (``_Resolver(base).resolve``), an empty or fragment-only href being the page itself;
* without one (or with a base no crawled page can have, ``about:blank``...): as a start URL
  or a spider's ``Request``;

then admitted by the engine (``Admission.admit``: rules, normalisation, fingerprint) and split for
the request (``split_target``). For every case whose result is an http(s) URL, the scheme, the
host dialled, the port, the request target and the Host header are the browser's; every case the
URL Standard refuses is refused (never sent); a case whose result is not http(s) is never sent.
Cases the crawler treats differently on purpose are listed in :data:`DEVIATIONS` with the reason.
No sockets: the engine's pure decisions only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from selectolax.lexbor import LexborHTMLParser

from trio_crawler import Request, Settings
from trio_crawler._crawl import Crawler
from trio_crawler._extract import _resolve_slow, _Resolver, _Skip, extract
from trio_crawler._http.transport import Target, split_target
from trio_crawler.spiders.generic import GenericSpider

DATA = Path(__file__).parent / "data" / "urltestdata.json"
CASES: list[dict[str, Any]] = [
    case for case in json.loads(DATA.read_text(encoding="utf-8")) if isinstance(case, dict)
]

#: Cases the crawler treats differently from a browser on purpose: (input, base) -> reason.
DEVIATIONS: dict[tuple[str, str | None], str] = {
    ("http://f:0/c", "http://example.org/foo/bar"): (
        "port 0 parses, but it is a 'bad port' that browsers refuse to fetch (Fetch Standard) "
        "and that no connection can reach: refused as unparsable, never sent"
    ),
    ("http://f:00000000000000/c", "http://example.org/foo/bar"): "port 0, as above",
}

_HTTP = ("http:", "https:")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_C0_OR_SPACE = "".join(map(chr, range(0x21)))


def _scheme(text: str | None) -> str | None:
    if text is None:
        return None
    stripped = text.strip(_C0_OR_SPACE).translate(str.maketrans("", "", "\t\n\r"))
    match = _SCHEME.match(stripped)
    return match.group(1).lower() if match else None


def _http_base(case: dict[str, Any]) -> str | None:
    base = case.get("base")
    return base if _scheme(base) in ("http", "https") else None


def _is_http_case(case: dict[str, Any]) -> bool:
    """A result that is an http(s) URL, or a failure of an input a crawl could meet as one."""
    if not case.get("failure"):
        return case["protocol"] in _HTTP
    scheme = _scheme(case["input"])
    return scheme in ("http", "https") or (scheme is None and _http_base(case) is not None)


def _id(case: dict[str, Any]) -> str:
    return f"{case['input']!r} on {case.get('base')!r}"


HTTP_CASES = [case for case in CASES if _is_http_case(case)]
SENT = [case for case in HTTP_CASES if not case.get("failure")]
REFUSED = [case for case in HTTP_CASES if case.get("failure")]
#: Results that are not http(s) URLs, from an input a crawl can meet: a link on an http(s) page,
#: or an absolute URL (a relative one with a base such as sc://x/ is no crawl's).
NOT_HTTP = [
    case
    for case in CASES
    if not case.get("failure")
    and case["protocol"] not in _HTTP
    and (_http_base(case) is not None or _scheme(case["input"]) is not None)
]


def _crawler() -> Crawler:
    settings = Settings(
        scope="any",  # every host is in scope: the question here is the request, not the scope
        max_url_length=100_000,
        max_repeated_segments=1_000,
        max_path_depth=1_000,
        max_query_variants=1_000_000,
    )
    return Crawler(GenericSpider(), settings, start_urls=[])


CRAWLER = _crawler()


def _met(case: dict[str, Any]) -> str | _Skip:
    """What the crawl makes of the case's input: the URL it hands to the engine, or a skip."""
    base = _http_base(case)
    if base is None:
        return str(case["input"])  # a start URL, a spider's Request
    found = _Resolver(base).resolve(case["input"])
    return base if found is _Skip.SELF else found  # the page itself: its own request


def _sent(case: dict[str, Any]) -> tuple[Target, int] | str:
    """The request sent for the case and the fingerprint it is recorded under, or why none."""
    met = _met(case)
    if isinstance(met, _Skip):
        return f"link skipped: {met.value}"
    before = dict(CRAWLER._counters.dropped)
    admitted = CRAWLER._admission.admit(Request(url=met))
    if admitted is None:
        after = CRAWLER._counters.dropped
        return "dropped: " + ",".join(k for k in after if after[k] != before.get(k, 0))
    try:
        return split_target(admitted.request.url), admitted.fingerprint
    except ValueError as exc:
        return f"bad_url: {exc}"


def _expected(case: dict[str, Any]) -> tuple[str, str, int | None, bytes, bytes]:
    """(scheme, host dialled, port, target, Host header) of the browser's request."""
    href: str = case["href"]
    after_slashes = len(case["protocol"]) + 2
    slash = href.index("/", after_slashes)  # an http(s) URL always has a path
    hostname: str = case["hostname"]
    return (
        case["protocol"][:-1],
        hostname[1:-1] if hostname.startswith("[") else hostname,
        int(case["port"]) if case["port"] else None,
        href[slash:].partition("#")[0].encode("ascii"),
        case["host"].encode("ascii"),
    )


def test_the_data_is_what_it_should_be() -> None:
    assert len(CASES) == 891
    assert (len(SENT), len(REFUSED)) == (247, 198)
    for key in DEVIATIONS:
        assert any((c["input"], c.get("base")) == key for c in HTTP_CASES), key


@pytest.mark.parametrize("case", SENT, ids=_id)
def test_the_request_sent_is_the_browsers(case: dict[str, Any]) -> None:
    got = _sent(case)
    reason = DEVIATIONS.get((case["input"], case.get("base")))
    if reason is not None:
        assert isinstance(got, str), reason  # refused: never sent
        return
    assert not isinstance(got, str), got
    target, _ = got
    assert (target.scheme, target.host, target.port, target.target, target.netloc) == (
        _expected(case)
    )
    assert target.url == case["href"].partition("#")[0]  # what is sent is what is recorded


@pytest.mark.parametrize("case", REFUSED, ids=_id)
def test_what_the_standard_refuses_is_never_sent(case: dict[str, Any]) -> None:
    got = _sent(case)
    assert isinstance(got, str), got
    assert got in ("link skipped: invalid", "dropped: unparsable"), got


@pytest.mark.parametrize("case", NOT_HTTP, ids=_id)
def test_what_is_not_http_is_never_sent(case: dict[str, Any]) -> None:
    got = _sent(case)
    assert isinstance(got, str), got
    assert got in ("link skipped: scheme", "dropped: bad_scheme"), got


def test_the_fingerprint_is_the_fingerprint_of_what_is_sent() -> None:
    """Over the whole file: a URL's fingerprint is that of the request sent for it, rebuilt
    from the request alone (scheme, Host header, target), and that request is the one sent
    for the rebuilt URL too."""
    rules = CRAWLER.rules
    checked = 0
    for case in CASES:
        got = _sent(case)
        if isinstance(got, str):
            continue
        target, fp = got
        sent_url = f"{target.scheme}://{target.netloc.decode()}{target.target.decode()}"
        assert fp == rules.fingerprint(sent_url), _id(case)
        assert fp == rules.fingerprint(target.url), _id(case)
        assert split_target(sent_url)[1:] == target[1:], _id(case)
        assert split_target(target.url) == target, _id(case)
        checked += 1
    assert checked >= len(SENT) - len(DEVIATIONS)


def test_the_resolver_fast_paths_agree_on_the_data() -> None:
    for case in CASES:
        base = _http_base(case)
        if base is not None:
            assert _Resolver(base).resolve(case["input"]) == _resolve_slow(case["input"], base)


# ------------------------------------------------------------------ issue 16, item by item

PAGE = "http://h.test:8000/dir/page.html"


def _link(href: str, page: str = PAGE) -> str:
    """The one link extraction finds in ``<a href=...>`` on ``page``."""
    escaped = href.replace("&", "&amp;").replace('"', "&quot;")
    links = extract(LexborHTMLParser(f'<a href="{escaped}">x</a>'), page).links
    assert len(links) == 1, links
    return links[0].url


def _request(url: str) -> tuple[Target, int]:
    admitted = CRAWLER._admission.admit(Request(url=url))
    assert admitted is not None, CRAWLER._counters.dropped
    return split_target(admitted.request.url), admitted.fingerprint


def _fp(url: str) -> int:
    return CRAWLER.rules.fingerprint(url)


@pytest.mark.parametrize(
    ("href", "url", "target"),
    [
        ("http://h.test:8000/a/b/..", "http://h.test:8000/a/", b"/a/"),
        ("http://h.test:8000/a/b/.", "http://h.test:8000/a/b/", b"/a/b/"),
        ("/a/b/..", "http://h.test:8000/a/", b"/a/"),
    ],
)
def test_a_trailing_dot_segment_is_sent_as_fingerprinted(
    href: str, url: str, target: bytes
) -> None:
    """http://h/a/b/.. was fingerprinted as /a/ and sent as GET /a: the real /a/ page was
    then taken as seen and never fetched."""
    assert _link(href) == url
    sent, fp = _request(_link(href))
    assert sent.target == target
    assert fp == _fp(url)


def test_a_full_width_host_is_fetched_as_its_ascii_form() -> None:
    """http://(full-width 127.0.0.1):P/x passed the scope check, was fingerprinted as the
    ASCII host, then refused as bad_url by the request layer: the ASCII URL was never fetched."""
    full_width = "http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11:8000/x"
    link = _link(full_width, "http://127.0.0.1:8000/")
    assert link == "http://127.0.0.1:8000/x"
    sent, fp = _request(link)
    assert (sent.host, sent.port, sent.target, sent.netloc) == (
        "127.0.0.1",
        8000,
        b"/x",
        b"127.0.0.1:8000",
    )
    assert fp == _fp("http://127.0.0.1:8000/x")
    # the start URL or spider Request spelled so is the same request
    assert _request(full_width)[0] == sent


def test_backslashes_are_slashes() -> None:
    """\\\\evil.example\\p stayed on the page's host; a browser goes to evil.example."""
    assert _link("\\\\evil.example\\p") == "http://evil.example/p"
    assert _link("\\a\\b") == "http://h.test:8000/a/b"
    sent, _ = _request(_link("\\\\evil.example\\p"))
    assert (sent.host, sent.target) == ("evil.example", b"/p")


@pytest.mark.parametrize("host", ["0x7f.1", "2130706433", "0177.0.0.1", "127.1", "0x7F000001"])
def test_ipv4_number_forms_are_one_address(host: str) -> None:
    """0x7f.1 and 2130706433 went out as the literal Host and got fingerprints of their own:
    the same page fetched twice."""
    link = _link(f"http://{host}:8000/p", "http://127.0.0.1:8000/")
    assert link == "http://127.0.0.1:8000/p"
    sent, fp = _request(f"http://{host}:8000/p")
    assert (sent.host, sent.netloc) == ("127.0.0.1", b"127.0.0.1:8000")
    assert fp == _fp("http://127.0.0.1:8000/p")


@pytest.mark.parametrize(
    "href", ["/a/%2e%2E/b", "/a/%2E/../b", "/a/.%2e/b", "http://h.test:8000/x/%2e%2e/b"]
)
def test_escaped_dot_segments_are_resolved_in_what_is_sent(href: str) -> None:
    """%2e segments were resolved for the fingerprint but sent literally."""
    assert _link(href) == "http://h.test:8000/b"
    sent, fp = _request(_link(href))
    assert sent.target == b"/b"
    assert fp == _fp("http://h.test:8000/b")


def test_an_empty_query_is_sent() -> None:
    """An empty '?' was dropped from the link; a browser sends it."""
    assert _link("p?") == "http://h.test:8000/dir/p?"
    assert _link("http://h.test:8000/q?#f") == "http://h.test:8000/q?"
    sent, fp = _request(_link("p?"))
    assert sent.target == b"/dir/p?"
    # the canonical form drops an empty query (project policy): one page, one fingerprint
    assert fp == _fp("http://h.test:8000/dir/p")


def test_a_same_scheme_href_without_slashes_is_relative() -> None:
    """https:example.com on an https page was skipped; a browser reads it as a relative path."""
    page = "https://h.test/dir/page.html"
    assert _link("https:example.com", page) == "https://h.test/dir/example.com"
    assert _link("https:/x", page) == "https://h.test/x"
    # on an http page it is another scheme: the host example.com
    assert _link("https:example.com") == "https://example.com/"


@pytest.mark.parametrize(
    ("href", "url"),
    [
        ("http://h.test:08000/x", "http://h.test:8000/x"),
        ("http://h.test:0080/x", "http://h.test/x"),
        ("http://h.test:000000000000000000008000/x", "http://h.test:8000/x"),
    ],
)
def test_leading_zero_ports(href: str, url: str) -> None:
    """Ports with leading zeros were skipped; a browser reads the number."""
    assert _link(href) == url
    sent, fp = _request(href)
    assert sent.url == url
    assert fp == _fp(url)


SIGMA, SMALL_SIGMA, ALPHA, SMALL_ALPHA = "\u03a3", "\u03c3", "\u0391", "\u03b1"


@pytest.mark.parametrize("label", [ALPHA + SIGMA, "a" + SIGMA, SIGMA + SIGMA, "x" + SIGMA + "y"])
def test_capital_sigma_maps_as_uts46_says(label: str) -> None:
    """lower() ran before IDNA mapping, making a final capital sigma a final small sigma
    (U+03C2): another host. UTS 46 maps it to U+03C3 wherever it stands."""
    host = f"{label}.test"
    label = label.replace(SIGMA, SMALL_SIGMA).replace(ALPHA, SMALL_ALPHA)
    ascii_host = f"xn--{label.encode('punycode').decode('ascii')}.test"
    assert _link(f"http://{host}/") == f"http://{ascii_host}/"
    sent, fp = _request(f"http://{host}/")
    assert (sent.host, sent.netloc) == (ascii_host, ascii_host.encode())
    assert fp == _fp(f"http://{ascii_host}/")
