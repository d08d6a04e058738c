"""Cookies and credentials stay with their origin, redirects included."""

from __future__ import annotations

import pytest
import trio

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
