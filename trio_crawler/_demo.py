"""The demo site the package serves itself (``trio-crawler demo``): no internet needed.

A deterministic site of ``pages`` HTML pages in sections, each linking to a handful of others,
with some broken links (404, a 500), redirects (one hop, a chain, a loop, one out of scope), a
robots.txt that disallows ``/private/``, a non-HTML file, pages of many sizes, a few slow
pages, pages sharing a title and pages with none: something for each part of the report.
"""

from __future__ import annotations

import dataclasses
import random

from .testing import RecordedRequest, Response, Site, html_page, redirect

SECTIONS = ("news", "docs", "blog", "shop", "wiki")


def demo_site(pages: int = 2000, *, seed: int = 7) -> Site:
    rng = random.Random(seed)
    site = Site()
    paths = [f"/{SECTIONS[i % len(SECTIONS)]}/page-{i}.html" for i in range(pages)]
    site.add(
        "/robots.txt",
        Response(
            body=b"User-agent: *\nDisallow: /private/\n",
            headers=(("content-type", "text/plain"),),
        ),
    )
    site.add("/old-home", redirect("/"))
    site.add(
        "/report.pdf",
        Response(body=b"%PDF-1.4 demo\n", headers=(("content-type", "application/pdf"),)),
    )
    site.add("/private/secret.html", html_page("robots.txt keeps crawlers out of here"))
    # a chain of three hops to a page of its own, a loop, and a hop to another host name for
    # this same server (out of the crawl's scope: refused before any connection)
    site.add("/promo", redirect("/promo/"))
    site.add("/promo/", redirect("/promo/2024", status=302))
    site.add("/promo/2024", redirect("/offers.html"))
    site.add("/offers.html", html_page("<p>Offers</p>", title="Offers"))
    site.add("/loop-a", redirect("/loop-b"))
    site.add("/loop-b", redirect("/loop-a"))
    site.add("/elsewhere", _to_localhost)
    site.add("/shop/checkout", html_page("<p>oops</p>", title="Error", status=500))
    nav = "".join(f'<a href="/{s}/page-{i}.html">{s}</a> ' for i, s in enumerate(SECTIONS))
    site.add(
        "/",
        html_page(
            f"<h1>Demo</h1><nav>{nav}</nav><a href='/report.pdf'>report</a>"
            "<a href='/private/secret.html'>secret</a><a href='/old-home'>old home</a>"
            "<a href='/promo'>promo</a><a href='/loop-a'>loop</a>"
            "<a href='/elsewhere'>elsewhere</a>",
            title="trio-crawler demo",
        ),
    )
    for i, path in enumerate(paths):
        links = [paths[(i + 1) % pages], paths[(i * 7 + 3) % pages]]
        links += [paths[rng.randrange(pages)] for _ in range(3)]
        if i % 97 == 0:
            links.append(f"/missing/page-{i}.html")  # broken link
        if i % 50 == 0:
            links.append("/old-home")
        if i % 150 == 7:
            links.append("/shop/checkout")  # answers 500
        body = "".join(f'<a href="{href}">{href}</a> ' for href in links)
        # sizes spread over two decades or so, as on a real site
        filler = "lorem ipsum " * min(4000, int(rng.lognormvariate(3.5, 1.2)))
        title: str | None = f"Page {i}"
        if i % 41 == 5:
            title = "Demo page"  # shared by several pages
        elif i % 53 == 9:
            title = None
        page = html_page(f"<p>Page {i}</p>{body}<p>{filler}</p>", title=title)
        if i % 37 == 11:
            page = dataclasses.replace(page, delay=rng.uniform(0.05, 0.4))  # a slow page
        site.add(path, page)
    return site


def _to_localhost(request: RecordedRequest) -> Response:
    host = request.header("host") or "127.0.0.1"
    port = host.rpartition(":")[2]
    return redirect(f"http://localhost:{port}/")
