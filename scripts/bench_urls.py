"""Micro-benchmark of the URL module: microseconds per link for ``check`` + ``fingerprint``.

Run: ``.venv/bin/python scripts/bench_urls.py [--pages N] [--repeat R]``

The link set imitates a crawl of one site: each page has ~30 links, resolved against the page
URL the way link extraction does (``urljoin``) before timing: navigation links repeated on every
page, relative and absolute article links, fragments, query variants with tracking parameters,
upper-case hosts, percent-escapes, off-site links, ``mailto:``/``javascript:``. Three figures:

* crawl order -- a fresh :class:`UrlRules` (empty caches) per pass over the pages: the
  navigation links hit its caches from the second page on, the rest are met for the first time.
  This is what a crawl sees;
* every URL distinct -- a unique query parameter added to each link: no cache hit (worst case);
* every URL in the cache -- the same pass again on a filled cache (best case).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import random
import time
from collections.abc import Callable
from urllib.parse import urljoin

from trio_crawler._settings import Settings
from trio_crawler._urls import UrlRules, canonicalize, fingerprint

SITE = "https://www.example.com"
NAV = ["/", "/about", "/blog/", "/contact", "/products/", "/login?next=%2F", "/#top", "/feed.xml"]


def page_links(rng: random.Random, page: int) -> tuple[str, list[str]]:
    """One page's URL and its ~30 links, absolute (as extraction hands them over)."""
    base = f"{SITE}/blog/{2020 + page % 5}/{page % 12 + 1:02d}/post-{page}.html"
    hrefs = list(NAV)
    for _ in range(22):
        n = rng.randrange(100_000)
        kind = rng.randrange(12)
        if kind == 0:
            hrefs.append(f"post-{n}.html")  # relative
        elif kind == 1:
            hrefs.append(f"../../{n % 5 + 2020}/01/post-{n}.html")  # dot segments
        elif kind == 2:
            hrefs.append(f"/blog/tag/python?page={n % 40}")  # query variants
        elif kind == 3:
            hrefs.append(f"/products/item-{n}?utm_source=news&utm_medium=email&ref={n % 7}")
        elif kind == 4:
            hrefs.append(f"#comment-{n}")  # fragment of the page itself
        elif kind == 5:
            hrefs.append(f"https://WWW.Example.com/Blog/Post-{n}.html#top")  # case
        elif kind == 6:
            hrefs.append(f"/search?q=caf%c3%a9+{n}&sort=date&lang=en")  # escapes, unsorted
        elif kind == 7:
            hrefs.append(f"https://cdn.other-site.org/assets/{n}.js")  # off-site
        elif kind == 8:
            hrefs.append(rng.choice(["mailto:info@example.com", "javascript:void(0)"]))
        elif kind == 9:
            hrefs.append(f"http://www.example.com:443/p/{n}")  # another origin
        else:
            hrefs.append(f"/blog/{n % 5 + 2020}/{n % 12 + 1:02d}/post-{n}.html")
    return base, [urljoin(base, href) for href in hrefs]


def run(rules: UrlRules, links: list[str]) -> int:
    kept = 0
    for url in links:
        if rules.check(url) is None:
            rules.fingerprint(url)
            kept += 1
    return kept


def us_per_link(pages: list[list[str]], repeat: int, *, fresh: bool = True) -> float:
    """Best of ``repeat`` passes over ``pages``; ``fresh``: new UrlRules (empty caches) per pass."""
    settings = Settings()
    n = sum(len(links) for links in pages)
    rules = UrlRules(settings, [SITE + "/"])
    run(rules, [url for links in pages for url in links])  # warm-up (and fill, if not fresh)
    times = []
    for _ in range(repeat):
        if fresh:
            rules = UrlRules(settings, [SITE + "/"])
        gc.collect()  # the previous pass's caches are garbage: not on this pass's clock
        start = time.perf_counter_ns()
        for links in pages:
            run(rules, links)
        times.append(time.perf_counter_ns() - start)
    return min(times) / n / 1000


def us_per_call(fn: Callable[[str], object], urls: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for url in urls:
            fn(url)
        times.append(time.perf_counter_ns() - start)
    return min(times) / len(urls) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(1234)
    pages = [page_links(rng, i)[1] for i in range(args.pages)]
    flat = [url for links in pages for url in links]
    n = len(flat)
    followed = sum(UrlRules(Settings(), [SITE + "/"]).check(url) is None for url in flat)
    distinct = len(set(flat))
    print(
        f"{args.pages} pages, {n} links ({n / args.pages:.1f}/page), "
        f"{distinct} distinct, {followed} followed (check + fingerprint), {n - followed} dropped"
    )
    calibration = us_per_call(lambda _: sum(range(1000)), ["x"] * 2000, args.repeat)
    print(f"machine: sum(range(1000)) takes {calibration:.1f} us (a recent laptop: ~6-8 us)")

    unique = [
        [f"{url}{'&' if '?' in url else '?'}u={i}" for url in links]
        for i, links in enumerate(pages)
    ]
    print(
        f"check + fingerprint, crawl order, fresh caches : "
        f"{us_per_link(pages, args.repeat):6.2f} us/link"
    )
    print(
        f"check + fingerprint, every URL distinct        : "
        f"{us_per_link(unique, args.repeat):6.2f} us/link"
    )
    print(
        f"check + fingerprint, every URL in the cache    : "
        f"{us_per_link(pages, args.repeat, fresh=False):6.2f} us/link"
    )

    # The uncached pieces, on the distinct URLs.
    strip = Settings().strip_params
    rules = UrlRules(Settings(), [SITE + "/"])
    distinct_urls = list(dict.fromkeys(flat))

    def canonical(url: str) -> None:
        with contextlib.suppress(ValueError):
            canonicalize(url, strip_params=strip)

    canon = [canonicalize(u, strip_params=strip) for u in distinct_urls if rules.check(u) is None]
    print(
        f"  uncached check (UrlRules._check)             : "
        f"{us_per_call(rules._check, distinct_urls, args.repeat):6.2f} us/link"
    )
    print(
        f"  canonicalize()                               : "
        f"{us_per_call(canonical, distinct_urls, args.repeat):6.2f} us/link"
    )
    print(
        f"  fingerprint() of a canonical URL             : "
        f"{us_per_call(fingerprint, canon, args.repeat):6.2f} us/link"
    )


if __name__ == "__main__":
    main()
