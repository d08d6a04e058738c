"""Cookies and credentials stay with their origin, redirects included."""

from __future__ import annotations

import pytest
import trio
from hostile import head, raw

from trio_crawler import SettingsError, crawl
from trio_crawler._session import CookieJar, Credentials, parse_set_cookie
from trio_crawler.spiders.generic import GenericSpider
from trio_crawler.testing import Response, Site, html_page, loopback_settings, open_site_server


def test_cookie_jar_scopes_by_origin_path_secure_and_expiry() -> None:
    jar = CookieJar()
    jar.store(
        "http://a.test/shop/cart",
        ["sid=1; Path=/", "cart=2", "tok=3; Secure", "gone=4; Max-Age=0", "wide=5; Domain=test"],
        now=1000.0,
    )
    assert jar.header("http://a.test/", now=1000.0) == "sid=1"
    # the default path of a cookie set at /shop/cart is /shop; longer paths first
    assert jar.header("http://a.test/shop/x", now=1000.0) == "cart=2; wide=5; sid=1"
    assert jar.header("http://b.test/", now=1000.0) is None  # Domain= never widens
    assert jar.header("http://a.test:8080/", now=1000.0) is None  # another port, another site
    assert jar.header("https://a.test/", now=1000.0) is None  # another scheme, another origin
    jar.store("https://a.test/", ["tok=3; Secure; Max-Age=10"], now=1000.0)
    assert jar.header("https://a.test/", now=1005.0) == "tok=3"
    assert jar.header("https://a.test/", now=1011.0) is None


def test_set_cookie_parsing_is_lenient() -> None:
    assert parse_set_cookie("novalue", request_path="/", now=0) is None
    cookie = parse_set_cookie(
        "a=b; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/x", request_path="/", now=0
    )
    assert cookie is not None and cookie.path == "/x" and cookie.expires == 1445412480.0
    bad = parse_set_cookie("a=b; Max-Age=soon; Expires=never", request_path="/d/e", now=0)
    assert bad is not None and bad.expires is None and bad.path == "/d"


@pytest.mark.parametrize("value", ["a=b\x01c", "a=\x7f", "a\x00=b", "a=b\nc", "a=b\x1fc"])
def test_a_cookie_with_a_control_character_is_ignored(value: str) -> None:
    assert parse_set_cookie(value, request_path="/", now=0) is None


def test_cookie_bytes_are_kept_as_they_came() -> None:
    # header bytes are read as Latin-1: UTF-8 "à" (C3 A0) is "Ã" and U+00A0, which a plain
    # str.strip() would take for whitespace; only spaces and tabs are trimmed
    raw_value = "name=voil\xc3\xa0; Path=/"
    jar = CookieJar()
    jar.store("http://a.test/", [raw_value, " tab\t=\tvalue\t"], now=0)
    assert jar.header("http://a.test/", now=0) == "name=voil\xc3\xa0; tab=value"


def test_credentials_bound_to_hosts() -> None:
    creds = Credentials([("a.test", "user:pw"), ("api.test:8443", "bearer:T")])
    assert creds.header("http://a.test/x") == "Basic dXNlcjpwdw=="
    assert creds.header("http://b.test/x") is None
    assert creds.header("https://api.test:8443/v1") == "Bearer T"
    assert creds.header("https://api.test/v1") is None
    with pytest.raises(SettingsError):
        Credentials([("a.test", "no-colon")])


async def test_cookies_and_credentials_never_cross_to_another_host() -> None:
    site_b = Site({"/": html_page("<a href='/b2'>b2</a>"), "/b2": html_page("b2")})
    async with open_site_server(site_b) as b:
        site_a = Site(
            {
                "/": Response(
                    body=b"<a href='/login'>login</a><a href='/away'>away</a>",
                    headers=(("content-type", "text/html"), ("set-cookie", "sid=secret; Path=/")),
                ),
                "/login": html_page("<a href='/private'>p</a>"),
                "/private": html_page("ok"),
                "/away": Response(status=302, headers=(("location", b.url("/")),)),
            }
        )
        async with open_site_server(site_a) as a:
            settings = loopback_settings(
                a,
                b,
                scope="any",
                credentials=((f"127.0.0.1:{a.port}", "user:pw"),),
                concurrency=1,
            )
            with trio.fail_after(20):
                stats = await crawl(GenericSpider(start_urls=(a.url("/"),)), settings)
    assert stats.pages_ok == 5
    a_pages = [r for r in a.requests if r.target != "/robots.txt"]
    assert all(r.header("authorization") == "Basic dXNlcjpwdw==" for r in a_pages)
    after_cookie = [r for r in a_pages if r.target != "/"]
    assert after_cookie and all(r.header("cookie") == "sid=secret" for r in after_cookie)
    assert b.requests and all(
        r.header("authorization") is None and r.header("cookie") is None for r in b.requests
    )


async def test_no_cookies_flag_keeps_none() -> None:
    site = Site(
        {
            "/": Response(
                body=b"<a href='/x'>x</a>",
                headers=(("content-type", "text/html"), ("set-cookie", "sid=1")),
            ),
            "/x": html_page("x"),
        }
    )
    async with open_site_server(site) as server:
        with trio.fail_after(20):
            await crawl(
                GenericSpider(start_urls=(server.url("/"),)),
                loopback_settings(server, cookies=False),
            )
    assert all(r.header("cookie") is None for r in server.requests)


async def test_a_non_ascii_cookie_goes_back_as_its_bytes_and_fails_nothing() -> None:
    # once: every later request of the origin failed as bad_url ("'ascii' codec can't encode")
    page = b"<a href='/a'>a</a><a href='/b'>b</a>"
    cookie = "Set-Cookie: name=caf\xc3\xa9 \xe2\x98\x95; Path=/\r\n".encode("latin-1")
    answer = head(content_type="text/html", content_length=str(len(page)))
    site = Site({"/a": html_page("a"), "/b": html_page("b")})
    site.add_raw("/", raw(answer[:-2] + cookie + b"\r\n" + page))
    async with open_site_server(site) as server:
        with trio.fail_after(20):
            stats = await crawl(
                GenericSpider(start_urls=(server.url("/"),)), loopback_settings(server)
            )
    assert stats.failures == {} and stats.pages_ok == 3
    later = [r for r in server.requests if r.target in ("/a", "/b")]
    assert len(later) == 2
    # the test server reads header bytes as Latin-1: these are the UTF-8 bytes, unchanged
    sent = "name=caf\xc3\xa9 \xe2\x98\x95".encode("latin-1")
    assert all(r.header("cookie") == sent.decode("latin-1") for r in later)
