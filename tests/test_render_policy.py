"""The render stage's decisions without a browser: which pages are rendered (the request, the
setting, the spider; ``auto``'s rule on the pages it was measured on), which requests of a
rendered page the crawler answers, what they carry, how the settings make the browser's
options, and the settings and flags themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trio_crawler import Settings, SettingsError
from trio_crawler._cli import build_parser
from trio_crawler._cli.parser import settings_from
from trio_crawler._crawl.render_policy import (
    browser_options,
    forwarded_headers,
    looks_script_built,
    may_render,
    render_mode,
    render_share,
    subresource_refusal,
    wants_render,
)
from trio_crawler._spider import Headers, Page, Request, Spider
from trio_crawler._store.codec import decode_request, encode_request
from trio_crawler._urls import UrlRules
from trio_crawler.spiders.generic import GenericSpider

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import bench_gen
from spider_fixtures import SAMPLE_QUOTES, quotes_html_page, quotes_js_page

URL = "https://www.example.com/app/"


def html(text: str, url: str = URL) -> Page:
    return Page(
        request=Request(url=url),
        url=url,
        status=200,
        headers=Headers([("content-type", "text/html; charset=utf-8")]),
        body=text.encode(),
    )


# ---------------------------------------------------------------- which pages
class Plain(Spider):
    name = "plain"


class Renders(Spider):
    name = "renders"
    render = True


class Auto(Spider):
    name = "auto"
    render = "auto"


@pytest.mark.parametrize(
    ("request_render", "setting", "spider", "mode"),
    [
        (None, None, Plain(), "off"),
        (None, None, Renders(), "on"),
        (None, None, Auto(), "auto"),
        (None, "off", Renders(), "off"),  # the crawl's setting wins over the spider
        (None, "auto", Plain(), "auto"),
        (True, "off", Plain(), "on"),  # the request wins over both
        (False, "on", Renders(), "off"),
    ],
)
def test_who_decides_whether_a_page_is_rendered(
    request_render: bool | None, setting: str | None, spider: Spider, mode: str
) -> None:
    settings = Settings(render=setting)  # type: ignore[arg-type]
    assert render_mode(Request(url=URL, render=request_render), settings, spider) == mode


def test_a_crawl_may_render_when_the_setting_the_spider_or_a_start_request_says_so() -> None:
    assert not may_render(Settings(), Plain(), [URL])
    assert may_render(Settings(render="auto"), Plain(), [URL])
    assert not may_render(Settings(render="off"), Renders(), [URL])
    assert may_render(Settings(), Renders(), [URL])
    assert may_render(Settings(), Plain(), [Request(url=URL, render=True)])


def test_only_html_is_rendered() -> None:
    json_page = Page(
        request=Request(url=URL),
        url=URL,
        status=200,
        headers=Headers([("content-type", "application/json")]),
        body=b'{"a": 1}',
    )
    assert not wants_render("on", json_page)
    assert wants_render("on", html("<p>static</p>"))
    assert not wants_render("off", html("<div id=root></div><script src=a.js></script>"))


# ---------------------------------------------------------------- auto: script-built pages
CRA = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"/><title>React App</title>'
    '<script defer="defer" src="/static/js/main.1a2b3c.js"></script>'
    '<link href="/static/css/main.4d5e6f.css" rel="stylesheet"></head><body>'
    "<noscript>You need to enable JavaScript to run this app.</noscript>"
    '<div id="root"></div></body></html>'
)
VITE_VUE = (
    '<!doctype html><html lang="en"><head><meta charset="UTF-8" /><title>Vite + Vue</title>'
    '<script type="module" crossorigin src="/assets/index-4f3c2a1b.js"></script></head>'
    '<body><div id="app"></div></body></html>'
)
ANGULAR = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>MyApp</title>'
    '<base href="/"></head><body><app-root></app-root>'
    '<script src="runtime.8b5e1a.js" type="module"></script>'
    '<script src="main.9c1d.js" type="module"></script></body></html>'
)
NEXT_CLIENT = (
    "<!DOCTYPE html><html><head><title>Shop</title>"
    '<script src="/_next/static/chunks/main-3f2e.js" defer=""></script></head><body>'
    '<div id="__next"><div class="spinner">Loading…</div></div>'
    '<script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":{}},'
    '"page":"/","query":{},"buildId":"x"}</script></body></html>'
)
NUXT_SPA = (
    "<!doctype html><html><head><title>nuxt</title>"
    '<script type="module" src="/_nuxt/entry.8a7b.js" crossorigin></script></head>'
    '<body><div id="__nuxt"></div><script>window.__NUXT__={config:{public:{}}}</script>'
    "</body></html>"
)
EMBER = (
    "<!DOCTYPE html><html><head><title>Ember</title></head><body>"
    '<script src="/assets/vendor.js"></script><script src="/assets/app.js"></script>'
    "</body></html>"
)
SVELTEKIT = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8" /></head>'
    '<body data-sveltekit-preload-data="hover"><div style="display: contents">'
    "<script>{ __sveltekit_1 = { base: '' }; const element = document.currentScript"
    '.parentElement; Promise.all([import("./_app/immutable/entry/start.js")]).then(([kit]) =>'
    " { kit.start(element); }); }</script></div></body></html>"
)
NEXT_SSR = (
    "<!DOCTYPE html><html><head><title>Blog</title>"
    '<script src="/_next/static/chunks/main-3f2e.js" defer=""></script></head><body>'
    '<div id="__next"><header><a href="/">Home</a><a href="/about">About</a></header>'
    "<main><h1>Why crawlers need politeness</h1><p>"
    + "A server-rendered article with its text in the HTML and a few links. " * 12
    + '</p><a href="/posts/2">Next post</a></main></div></body></html>'
)
SHORT_WITH_ANALYTICS = (
    "<!doctype html><html><head><title>About us</title>"
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-XXXX"></script></head>'
    '<body><nav><a href="/">Home</a> <a href="/contact">Contact</a></nav><p>'
    + "We are a small company that makes hand-made furniture from reclaimed wood. " * 4
    + "</p></body></html>"
)
NO_SCRIPT = "<!doctype html><html><body><div id='root'></div></body></html>"


@pytest.mark.parametrize(
    ("name", "document", "rendered"),
    [
        ("create-react-app", CRA, True),
        ("vite-vue", VITE_VUE, True),
        ("angular", ANGULAR, True),
        ("next-client-only", NEXT_CLIENT, True),
        ("nuxt-spa", NUXT_SPA, True),
        ("ember", EMBER, True),
        ("sveltekit", SVELTEKIT, True),
        ("quotes-js", quotes_js_page(SAMPLE_QUOTES, next_href="/js/page/2/"), True),
        ("quotes-html", quotes_html_page(SAMPLE_QUOTES, next_href="/page/2/"), False),
        ("next-ssr", NEXT_SSR, False),
        ("short-with-analytics", SHORT_WITH_ANALYTICS, False),
        ("no-script", NO_SCRIPT, False),
    ],
)
def test_auto_renders_script_built_pages_only(name: str, document: str, rendered: bool) -> None:
    assert looks_script_built(html(document)) is rendered, name


@pytest.mark.parametrize("i", [0, 1, 7, 250, 4999])
def test_auto_leaves_the_bench_pages_and_renders_their_script_variant(i: int) -> None:
    n = 5000
    document, _ = bench_gen.public_page(i, n, bench_gen.n_private_for(n), "http://127.0.0.1:1")
    assert not looks_script_built(html(document))
    scripted = bench_gen.scripted_page(document)
    assert "<a href" not in scripted
    assert looks_script_built(html(scripted))


# ---------------------------------------------------------------- a rendered page's requests
def refusal(url: str, scope: str = "site", **settings: object) -> str | None:
    s = Settings(**settings)  # type: ignore[arg-type]
    crawl = UrlRules(s, [URL])
    anywhere = UrlRules(s.replace(scope="any"), [])
    return subresource_refusal(
        url, URL, scope=scope, crawl=crawl, anywhere=anywhere, max_length=s.max_url_length
    )


def test_a_rendered_page_loads_from_its_own_site_by_default() -> None:
    assert refusal("https://www.example.com/app.js") is None
    assert refusal("https://cdn.example.com/app.js") is None  # the same site
    assert refusal("http://static.example.com:8080/app.css") is None
    assert refusal("https://cdn.other.net/lib.js") == "another site (render_scope site)"
    # what the crawl's scope takes in is allowed too
    assert refusal("https://cdn.other.net/lib.js", allowed_domains=("other.net",)) is None


def test_render_scope_any_still_refuses_denied_domains_and_other_schemes() -> None:
    assert refusal("https://cdn.other.net/lib.js", scope="any") is None
    assert refusal("https://ads.bad.example/x.js", "any", denied_domains=("bad.example",)) == (
        "denied domain"
    )
    assert refusal("ftp://www.example.com/x.js", scope="any") == "scheme ftp"
    assert refusal("https://www.example.com/" + "a" * 3000, scope="any") == "URL too long"


def test_only_referer_accept_origin_and_content_type_are_passed_on() -> None:
    sent = forwarded_headers(
        [
            ("Referer", URL),
            ("Accept", "*/*"),
            ("User-Agent", "Mozilla/5.0 HeadlessChrome"),
            ("Cookie", "session=browser"),
            ("Origin", "https://www.example.com"),
            ("Content-Type", "text/plain"),
            ("Sec-Fetch-Mode", "cors"),
            ("Accept", "bad\r\nInjected: yes"),
        ]
    )
    assert sent == {
        "referer": URL,
        "accept": "*/*",
        "origin": "https://www.example.com",
        "content-type": "text/plain",
    }


# ---------------------------------------------------------------- settings
def test_browser_options_come_from_the_settings() -> None:
    s = Settings(
        render_concurrency=3,
        render_timeout=5.0,
        render_quiet=0.25,
        render_js_heap=128,
        render_pages_per_browser=50,
        user_agent="bot/1.0",
    )
    options = browser_options(s)
    assert options.concurrency == 3 and options.time_limit == 5.0
    assert options.quiet_period == 0.25 and options.js_heap_mb == 128
    assert options.max_renders_per_browser == 50 and options.user_agent == "bot/1.0"
    assert options.refused_types == frozenset({"Image", "Media", "Font"})


def test_with_processes_each_renders_its_share() -> None:
    s = Settings(render_concurrency=5)
    assert render_share(s, 1) is s
    assert render_share(s, 2).render_concurrency == 3
    assert render_share(Settings(render_concurrency=1), 4).render_concurrency == 1


def test_render_settings_are_checked() -> None:
    with pytest.raises(SettingsError, match="render_quiet"):
        Settings(render_timeout=1.0, render_quiet=1.0)
    with pytest.raises(SettingsError, match="render must be"):
        Settings(render="yes")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="render_concurrency"):
        Settings(render_concurrency=0)


@pytest.mark.parametrize(
    ("argv", "render"),
    [
        (["crawl", "https://example.com/"], None),
        (["crawl", "https://example.com/", "--render"], "on"),
        (["crawl", "https://example.com/", "--render", "auto"], "auto"),
        (["crawl", "--render=off", "https://example.com/"], "off"),
        # a bare --render before the URL renders it (argparse would read the URL as the value)
        (["crawl", "--render", "https://example.com/"], "on"),
        (["crawl", "--render", "-c", "4", "https://example.com/"], "on"),
        (["crawl", "--render", "off", "https://example.com/"], "off"),
    ],
)
def test_the_render_flag(argv: list[str], render: str | None) -> None:
    args = build_parser().parse_args(argv)
    assert settings_from(args, GenericSpider()).render == render


def test_render_and_wait_for_are_kept_with_the_frontier() -> None:
    request = Request(url=URL, render=True, wait_for="#list li")
    assert decode_request(encode_request(request)) == request
    plain = Request(url=URL)
    assert "render" not in encode_request(plain)
    assert decode_request(encode_request(plain)) == plain


def test_a_crawl_that_would_render_without_chromium_is_one_line_before_anything(
    tmp_path: Path,
) -> None:
    out, state = tmp_path / "out.jsonl", tmp_path / "crawl.db"
    env = {**os.environ, "TRIO_CRAWLER_CHROMIUM": str(tmp_path / "no-such-chromium")}
    command = [sys.executable, "-m", "trio_crawler", "crawl", "http://127.0.0.1:9/", "--render"]
    done = subprocess.run(
        [*command, "-o", str(out), "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Chromium binary" in done.stderr
    assert not out.exists() and not state.exists()
