"""Micro-benchmark: decode + parse + extract of a generated ~16 KB HTML page with ~30 links.

    .venv/bin/python scripts/bench_extract.py [--iterations N] [--links N] [--size BYTES]

Prints the best-of-5 mean time per page, in milliseconds, of each stage and of the whole, and
the same extraction with urljoin for every href (the fast paths disabled), for comparison.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from selectolax.lexbor import LexborHTMLParser

from trio_crawler import _extract

PAGE_URL = "https://www.example.com/blog/2024/05/some-article.html"
CONTENT_TYPE = "text/html; charset=utf-8"

HREF_SHAPES = (
    "https://www.example.com/blog/2024/05/post-{i}.html",
    "https://cdn.example.net/assets/{i}/image.png?v=3",
    "/tags/tag-{i}",
    "/search?q=term{i}&page=2",
    "post-{i}.html",
    "../archive/{i}/",
    "//static.example.org/js/{i}.js",
    "#section-{i}",
    "mailto:author{i}@example.com",
    "  /with-spaces/{i}  ",
    "https://www.example.com/b/{i}#comments",
)


def make_page(links: int, size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    head = (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<title>An article about crawling, number 42</title>"
        '<meta name="viewport" content="width=device-width">'
        '<meta name="robots" content="index, follow">'
        '<link rel="stylesheet" href="/s.css"></head>\n<body><div class="page">\n'
    )
    tail = "</div></body></html>\n"
    words = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
        "eiusmod",
    ]
    anchors = []
    for i in range(links):
        href = rng.choice(HREF_SHAPES).format(i=i)
        rel = ' rel="nofollow"' if i % 7 == 0 else ""
        anchors.append(f'<li><a class="nav-link" href="{href}"{rel}>Link {i}</a></li>\n')
    filler_budget = size - len(head) - len(tail) - sum(map(len, anchors))
    paragraphs = []
    while filler_budget > 0:
        text = " ".join(rng.choice(words) for _ in range(30))
        para = f'<div class="c"><p>{text} <em>{rng.choice(words)}</em></p></div>\n'
        paragraphs.append(para)
        filler_budget -= len(para)
    body = []
    per = max(1, len(paragraphs) // max(1, len(anchors)))
    for i, para in enumerate(paragraphs):
        body.append(para)
        if i % per == 0 and anchors:
            body.append(f"<ul>{anchors.pop()}</ul>")
    body.extend(anchors)
    return (head + "".join(body) + tail).encode()


def per_call_ms(func: Callable[[], object], iterations: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(iterations):
            func()
        best = min(best, (time.perf_counter() - start) / iterations)
    return best * 1000


class _SlowResolver(_extract._Resolver):
    def resolve(self, href: str) -> str | _extract._Skip:
        return _extract._resolve_slow(href, self.base_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--links", type=int, default=30)
    parser.add_argument("--size", type=int, default=16 * 1024)
    args = parser.parse_args()

    body = make_page(args.links, args.size)
    text = _extract.decode_body(body, CONTENT_TYPE)[0]
    tree = LexborHTMLParser(text)
    result = _extract.extract(tree, PAGE_URL)
    print(
        f"page: {len(body)} bytes, {text.count('<a ')} <a> tags, {len(result.links)} links kept, "
        f"{result.skipped_schemes} other schemes"
    )

    def whole() -> object:
        decoded = _extract.decode_body(body, CONTENT_TYPE)[0]
        return _extract.extract(LexborHTMLParser(decoded), PAGE_URL)

    n = args.iterations
    rows = [
        ("sniff_is_html", per_call_ms(lambda: _extract.sniff_is_html(CONTENT_TYPE, body), n)),
        ("decode_body", per_call_ms(lambda: _extract.decode_body(body, CONTENT_TYPE), n)),
        ("parse (LexborHTMLParser)", per_call_ms(lambda: LexborHTMLParser(text), n)),
        ("extract", per_call_ms(lambda: _extract.extract(tree, PAGE_URL), n)),
        ("decode + parse + extract", per_call_ms(whole, n)),
    ]
    with_text = per_call_ms(lambda: _extract.extract(tree, PAGE_URL, anchor_text=True), n)
    original = _extract._Resolver
    _extract._Resolver = _SlowResolver  # type: ignore[misc]
    try:
        rows.append(
            (
                "extract, urljoin every href",
                per_call_ms(lambda: _extract.extract(tree, PAGE_URL), n),
            )
        )
    finally:
        _extract._Resolver = original  # type: ignore[misc]
    rows.append(("extract with anchor text", with_text))  # the link graph's (--report)
    for name, ms in rows:
        print(f"{name:<30} {ms:8.4f} ms/page")
    total = rows[4][1]
    print(f"{'pages/s on one core':<30} {1000 / total:8.0f}")


if __name__ == "__main__":
    main()
