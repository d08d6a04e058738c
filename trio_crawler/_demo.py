"""The demo site the package serves itself (``trio-crawler demo``): no internet needed.

A deterministic site of ``pages`` HTML pages in sections, each linking to a handful of others,
with some broken links (404), a redirect, a robots.txt that disallows ``/private/`` and a
non-HTML file.
"""

from __future__ import annotations

import random

from .testing import Response, Site, html_page, redirect

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
    nav = "".join(f'<a href="/{s}/page-{i}.html">{s}</a> ' for i, s in enumerate(SECTIONS))
    site.add(
        "/",
        html_page(
            f"<h1>Demo</h1><nav>{nav}</nav><a href='/report.pdf'>report</a>"
            "<a href='/private/secret.html'>secret</a><a href='/old-home'>old home</a>",
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
        body = "".join(f'<a href="{href}">{href}</a> ' for href in links)
        site.add(path, html_page(f"<p>Page {i}</p>{body}", title=f"Page {i}"))
    return site
