"""Micro-benchmark of a crawl's work per link: resolve + check + canonicalise + fingerprint.

Run: ``.venv/bin/python scripts/bench_urls.py [--pages N] [--repeat R]``
Compare with another checkout, interleaved (old, new, old, new...: a shared machine drifts):
``.venv/bin/python scripts/bench_urls.py --compare ../base [--rounds 3]``

The link set imitates a crawl of one site: each page has ~30 hrefs as they stand in the HTML --
navigation links repeated on every page, relative and absolute article links, ``../`` links,
fragments, query variants with tracking parameters, upper-case hosts, percent-escapes, off-site
links, ``mailto:``/``javascript:``. Per link, what the crawl does: the page's resolver
(``_extract._Resolver``, one per page) resolves the href; ``UrlRules.check`` decides; a followed
link is fingerprinted (``UrlRules.fingerprint``: canonical form + hash). Figures, each the best
of ``--repeat`` passes:

* crawl order -- a fresh :class:`UrlRules` (empty caches) per pass: navigation links hit its
  caches from the second page on, the rest are met for the first time. What a crawl sees;
* every URL distinct -- a unique query parameter added to each href: no cache hit;
* hrefs that miss the fast paths -- distinct hrefs that need the full parser (upper-case hosts,
  non-ASCII, dot segments in absolute URLs, backslashes, ``%2e``, spaces, IPv4 number forms);
* the pieces on distinct hrefs: resolution alone, and check + fingerprint of resolved URLs.

Times are CPU time of the process (``time.process_time``), not wall time: on a shared machine a
pass that waits for a core is not slower code.

Measured (``--compare`` against the checkout before ada, 7 rounds, a shared 2-core machine whose
``sum(range(1000))`` took 10.8 us): crawl order 4.57 -> 4.46 us per link, every URL distinct
8.30 -> 7.50, hrefs missing the fast paths 19.17 -> 11.62; resolution alone 1.67 -> 1.52,
check + fingerprint 5.56 -> 5.55.

The script imports ``trio_crawler`` from wherever Python finds it, so the same file measures an
older checkout (``--compare DIR`` runs it there, with this interpreter and its packages).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable

SITE = "https://www.example.com"
NAV = ["/", "/about", "/blog/", "/contact", "/products/", "/login?next=%2F", "/#top", "/feed.xml"]
HARD = [
    "HTTPS://WWW.Example.com/Blog/Post-{n}.html",
    "https://www.example.com/blog/a/b/../post-{n}",
    "/caf\u00e9/{n}?q=\u00fcber",
    "\\blog\\post-{n}.html",
    "/a/%2e%2E/post-{n}",
    " /spaced/post {n}.html ",
    "https://www.example.com./x/{n}",
    "http://0x7f.1:8080/p/{n}",
    "https://www.b\u00fccher.example/{n}",
    "post-{n}.html?q='{n}'",
    "https://www.example.com/p?{n}|x",
]


def page_links(rng: random.Random, page: int) -> tuple[str, list[str]]:
    """One page's URL and its ~30 hrefs, as they stand in the HTML."""
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
    return base, hrefs


Pages = list[tuple[str, list[str]]]


def measure(pages: Pages, repeat: int) -> dict[str, float]:
    """The figures (microseconds per link) for the trio_crawler Python imports."""
    from trio_crawler._extract import _Resolver
    from trio_crawler._settings import Settings
    from trio_crawler._urls import UrlRules

    settings = Settings()

    def fresh() -> UrlRules:
        return UrlRules(settings, [SITE + "/"])

    def crawl(rules: UrlRules, some: Pages) -> None:
        check = rules.check
        fp = rules.fingerprint
        for base, hrefs in some:
            resolve = _Resolver(base).resolve
            for href in hrefs:
                url = resolve(href)
                if type(url) is str and check(url) is None:
                    fp(url)

    def best(run: Callable[[], None], n: int) -> float:
        times = []
        for _ in range(repeat):
            gc.collect()  # the previous pass's garbage: not on this pass's clock
            start = time.process_time_ns()
            run()
            times.append(time.process_time_ns() - start)
        return min(times) / n / 1000

    def count(some: Pages) -> int:
        return sum(len(hrefs) for _, hrefs in some)

    unique = [
        (
            base,
            [f"{h.partition('#')[0]}{'&' if '?' in h else '?'}u={i}_{j}" for j, h in enumerate(hs)],
        )
        for i, (base, hs) in enumerate(pages)
    ]
    hard = [
        (base, [HARD[(i + j) % len(HARD)].format(n=f"{i}_{j}") for j in range(len(hs))])
        for i, (base, hs) in enumerate(pages)
    ]
    crawl(fresh(), pages)  # warm-up: imports, regex compilation, the suffix list
    resolved: list[str] = []
    for base, hrefs in unique:
        resolver = _Resolver(base)
        resolved += [u for u in map(resolver.resolve, hrefs) if type(u) is str]

    def resolve_only() -> None:
        for base, hrefs in unique:
            resolve = _Resolver(base).resolve
            for href in hrefs:
                resolve(href)

    def judge_only() -> None:
        rules = fresh()
        check = rules.check
        fp = rules.fingerprint
        for url in resolved:
            if check(url) is None:
                fp(url)

    def calibrate() -> None:
        for _ in range(2000):
            sum(range(1000))

    calibration = best(calibrate, 2000)
    return {
        "calibration": calibration,
        "crawl": best(lambda: crawl(fresh(), pages), count(pages)),
        "distinct": best(lambda: crawl(fresh(), unique), count(unique)),
        "hard": best(lambda: crawl(fresh(), hard), count(hard)),
        "resolve": best(resolve_only, count(unique)),
        "judge": best(judge_only, len(resolved)),
    }


LABELS = {
    "crawl": "resolve + check + fingerprint, crawl order, fresh caches",
    "distinct": "resolve + check + fingerprint, every URL distinct  ",
    "hard": "resolve + check + fingerprint, hrefs missing fast paths",
    "resolve": "  resolution alone (every href distinct)             ",
    "judge": "  check + fingerprint of resolved URLs (distinct)    ",
}


def _run_in(tree: str, args: argparse.Namespace) -> dict[str, float]:
    """This script's figures for the checkout at ``tree``, in a fresh interpreter."""
    purelib = sysconfig.get_paths()["purelib"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.abspath(tree), purelib])}
    command = [sys.executable, "-S", os.path.abspath(__file__), "--json"]
    command += ["--pages", str(args.pages), "--repeat", str(args.repeat)]
    # -S and another working directory: no editable-install hook, no '' on the path, so
    # ``trio_crawler`` is the tree's; its dependencies come from this interpreter's packages
    out = subprocess.run(command, env=env, cwd="/", check=True, capture_output=True, text=True)
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", metavar="DIR", help="another checkout, measured in turn")
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: old/new rounds")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    rng = random.Random(1234)
    pages = [page_links(rng, i) for i in range(args.pages)]
    if args.json:
        print(json.dumps(measure(pages, args.repeat)))
        return
    n = sum(len(hrefs) for _, hrefs in pages)
    print(f"{args.pages} pages, {n} hrefs ({n / args.pages:.1f}/page); microseconds per link")
    if not args.compare:
        figures = measure(pages, args.repeat)
        print(f"machine: sum(range(1000)) takes {figures['calibration']:.1f} us (a laptop: ~6-8)")
        for key, label in LABELS.items():
            print(f"{label}: {figures[key]:6.2f}")
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    old: list[dict[str, float]] = []
    new: list[dict[str, float]] = []
    for _ in range(args.rounds):
        old.append(_run_in(args.compare, args))
        new.append(_run_in(here, args))
    calibration = statistics.median(r["calibration"] for r in old + new)
    print(f"machine: sum(range(1000)) takes {calibration:.1f} us (a laptop: ~6-8 us)")
    print(f"{'':55}  {'old':>6}  {'new':>6}  (median of {args.rounds} interleaved rounds)")
    for key, label in LABELS.items():
        before = statistics.median(r[key] for r in old)
        after = statistics.median(r[key] for r in new)
        print(f"{label}: {before:6.2f}  {after:6.2f}  {after / before:5.2f}x")


if __name__ == "__main__":
    main()
